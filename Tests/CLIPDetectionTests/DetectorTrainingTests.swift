import CLIPData
import CLIPDetection
import CLIPEngine
import CLIPNN
import CLIPTraining
import Foundation
import XCTest

/// train-detector's run: loss goes down, checkpoints resume bit for bit, bad inputs name the file.
final class DetectorTrainingTests: XCTestCase {
    func samples(_ count: Int, width: Int, rng: inout SeededGenerator) -> [DetectorTraining.Sample] {
        (0..<count).map { i in
            let box = Box(x0: Double(8 + i % 3 * 5), y0: 10, x1: Double(40 + i % 2 * 10), y1: 50)
            let targets = DetectionLoss.assign([.init(box: box, classIndex: i % 2)], gridWidth: 4, gridHeight: 4, stride: 16)
            // Features that carry the target: rows of positive locations are shifted.
            let rows = Tensor.random(shape: [16, width], using: &rng)
            var data = rows.scalars
            for loc in targets.keys { for c in 0..<width { data[loc * width + c] += c % 2 == i % 2 ? 1.5 : 0 } }
            return DetectorTraining.Sample(rows: try! Tensor(shape: [16, width], data: data), targets: targets, gridWidth: 4, gridHeight: 4, stride: 16)
        }
    }

    func testTrainingLowersTheLossAndResumesExactly() throws {
        var rng = SeededGenerator(seed: 21)
        let data = samples(12, width: 10, rng: &rng)
        let texts = Ops.l2Normalize(Tensor.random(shape: [2, 6], using: &rng))
        let config = BoxHeadConfig(inputWidth: 10, hidden: 16, embedDim: 6, imageSize: 64, vocabulary: ["x", "y"])
        var options = DetectorTraining.Options()
        options.batchSize = 4; options.lr = 5e-3
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("det-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }

        let straight = try DetectorTraining(head: BoxHead(config: config, seed: 1), texts: texts, options: options, arguments: [:])
        let first = try straight.epoch(data)
        var last = first
        for _ in 0..<5 { last = try straight.epoch(data) }
        XCTAssertLessThan(last.total, first.total * 0.8, "loss \(first.total) -> \(last.total)")

        // 3 epochs, checkpoint, resume for 3 more: the same weights as 6 straight.
        let a = try DetectorTraining(head: BoxHead(config: config, seed: 1), texts: texts, options: options, arguments: ["run": "a"])
        for _ in 0..<3 { _ = try a.epoch(data) }
        let url = dir.appendingPathComponent("det.safetensors")
        try a.saveCheckpoint(to: url)
        let loaded = try BoxHead.load(url)
        XCTAssertEqual(loaded.config, config)
        let b = try DetectorTraining(head: loaded, texts: texts, options: options, arguments: ["run": "a"], resume: url)
        XCTAssertEqual(b.state.epoch, 3)
        for _ in 0..<3 { _ = try b.epoch(data) }
        for (p, q) in zip(straight.head.parameters, b.head.parameters) {
            XCTAssertEqual(p.key, q.key)
            XCTAssertEqual(p.value.scalars, q.value.scalars, "\(p.key) after resume")
        }
        // A head file is not a training checkpoint without its state; a missing optimizer file is named.
        try FileManager.default.removeItem(at: Checkpoint.optimizerURL(for: url))
        XCTAssertThrowsError(try DetectorTraining(head: loaded, texts: texts, options: options, arguments: [:], resume: url)) {
            XCTAssertTrue("\($0)".contains("optimizer"), "\($0)")
        }
    }

    func testMissingImageIsNamed() throws {
        let dense = try DenseCLIP(model: loadAtto())
        let dataset = COCODataset(images: [.init(id: 1, file_name: "nowhere.png", width: 64, height: 64)],
                                  annotations: [.init(id: 1, image_id: 1, category_id: 1, bbox: [1, 1, 20, 20])],
                                  categories: [.init(id: 1, name: "red circle")])
        XCTAssertThrowsError(try DetectorTraining.cacheFeatures(dense: dense, dataset: dataset, images: URL(fileURLWithPath: "/tmp/none-\(UUID())"),
                                                                imageSize: 64, vocabulary: ["red circle"])) {
            XCTAssertTrue("\($0)".contains("nowhere.png"), "\($0)")
        }
    }

    /// The detector end to end on a tiny random model: boxes inside the image, HF pipeline JSON keys.
    func testDetectorOutputShape() throws {
        let model = try loadAtto()
        var rng = SeededGenerator(seed: 2)
        let image = RGBImage(width: 80, height: 64, pixels: (0..<(80 * 64 * 3)).map { _ in UInt8.random(in: 0...255, using: &rng) })
        let dense = try DenseCLIP(model: model)
        let head = try BoxHead(config: BoxHeadConfig(inputWidth: dense.stageWidths[2] + dense.stageWidths[3], hidden: 8, embedDim: 32,
                                                     imageSize: 64, vocabulary: ["red circle"]), seed: 3)
        // The fixture's text tower has a 1000-token vocabulary: feed text embeddings directly.
        let texts = Ops.l2Normalize(Tensor.random(shape: [2, 32], using: &rng))
        let detector = try OpenVocabularyDetector(model: model, head: head, tokenizer: nil)
        var o = OpenVocabularyDetector.Options()
        o.threshold = 0; o.minimumObjectness = 0
        let found = try detector.detect(image, labels: ["red circle", "blue square"], texts: texts, options: o)
        XCTAssertFalse(found.isEmpty)
        for d in found {
            XCTAssertTrue(d.box.xmin >= 0 && d.box.ymin >= 0 && d.box.xmax <= 80 && d.box.ymax <= 64, "\(d.box)")
            XCTAssertTrue((0...1).contains(d.score))
        }
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(found[0])) as? [String: Any]
        XCTAssertEqual(Set(json?.keys.map { $0 } ?? []), ["score", "label", "box"])
        XCTAssertEqual(Set((json?["box"] as? [String: Any])?.keys.map { $0 } ?? []), ["xmin", "ymin", "xmax", "ymax"])
    }
}
