import CLIPData
import CLIPEngine
import CLIPTraining
import Foundation
import XCTest

/// Training from webdataset shards that make-shards wrote from a CSV sees the same samples as
/// training from the CSV: with the whole set as one batch per epoch, the two runs end with the
/// same weights (the shuffles differ, the batch's contents and each sample's crop do not).
final class WebDatasetTrainingTests: XCTestCase {
    func testShardsMadeFromACSVTrainLikeTheCSV() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("swiftclip-wds-train-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let set = try SyntheticShapes(seed: 7, count: 8, imageSize: 40)
        var csv = "filepath\ttitle\n"
        for i in 0..<8 {
            try PNGEncoder.encode(set.sample(i).image).write(to: dir.appendingPathComponent("\(i).png"))
            csv += "\(i).png\t\(set.sample(i).caption)\n"
        }
        let csvURL = dir.appendingPathComponent("train.csv")
        try Data(csv.utf8).write(to: csvURL)
        let shards = try ShardWriter.write(CSVPairs(file: csvURL), to: dir.appendingPathComponent("shards"), samplesPerShard: 3)
        XCTAssertEqual(shards.shards.count, 3)

        func run(_ name: String, _ change: (inout TrainingOptions) -> Void) throws -> TrainingRun {
            var o = TrainingOptions(model: TrainingRunTests.config.path)
            o.logs = dir.appendingPathComponent("logs")
            o.name = name
            o.epochs = 2
            o.batchSize = 8
            o.workers = 1
            o.lr = 1e-3
            o.warmup = 1
            o.seed = 5
            o.eps = 1e-6   // open_clip's ViT default; keeps AdamW from amplifying rounding noise in zero-gradient weights (below)
            change(&o)
            let r = try TrainingRun(options: o, tokenizer: TrainingRunTests.tokenizer)
            try r.run()
            return r
        }
        let fromCSV = try run("csv") { $0.datasetType = .csv; $0.trainData = csvURL }
        // sizes.json gives the epoch's 8 samples; the brace list names the three shards.
        let fromShards = try run("shards") {
            $0.datasetType = .webdataset
            $0.trainData = URL(fileURLWithPath: dir.appendingPathComponent("shards").path + "/{00000..00002}.tar")
        }
        XCTAssertEqual(fromShards.batchesPerEpoch, 1)
        XCTAssertEqual(fromShards.trainer.step, 2)
        XCTAssertEqual(fromCSV.model.parameters.parameters.map(\.key), fromShards.model.parameters.parameters.map(\.key))
        let error = relativeError(fromCSV.model.parameters.parameters.flatMap(\.value.scalars),
                                  fromShards.model.parameters.parameters.flatMap(\.value.scalars))
        print("shards against CSV: relative error of the weights after 2 steps \(error)")
        XCTAssertLessThanOrEqual(error, 1e-5, "weights after 2 steps: shards against CSV")
        XCTAssertNotEqual(fromCSV.model.parameters.parameters.last!.value.scalars,
                          TrainingRunTests.initialWeights()[fromCSV.model.parameters.parameters.last!.key]!, "training changed the weights")
    }
}

/// ‖a − b‖ / ‖b‖ over a whole model's weights. (Per tensor it would not do: the key part of
/// attention's in_proj_bias has an exactly zero gradient in exact arithmetic, so its values after
/// a few AdamW steps are rounding noise amplified by g / (√v + ε), whatever the summation order.)
func relativeError(_ a: [Float], _ b: [Float]) -> Double {
    var d = 0.0, n = 0.0
    for (x, y) in zip(a, b) { d += Double(x - y) * Double(x - y); n += Double(y) * Double(y) }
    return n == 0 ? d.squareRoot() : (d / n).squareRoot()
}
