import CLIPEngine
import Foundation
import XCTest
import CLIPData

/// The training side of the data layer: open_clip's RandomResizedCrop, the synthetic set, the
/// PNG writer and the prefetching, deterministic batch loader.
final class TrainingDataTests: XCTestCase {
    struct CropCase: Decodable { let image: String; let top: Int; let left: Int; let height: Int; let width: Int; let size: Int; let file: String }
    struct CropManifest: Decodable { let cases: [CropCase] }

    /// torchvision's `F.resized_crop` on `Image.open(p)` then `convert("RGB")` (open_clip_train's
    /// CsvDataset), for RGB photos and every other mode Pillow opens PNGs and JPEGs in.
    func testResizedCropIsTorchvisionsByteForByte() throws {
        let folder = Fixtures.url("resized_crop")
        let manifest = try JSONDecoder().decode(CropManifest.self, from: Data(contentsOf: folder.appendingPathComponent("manifest.json")))
        XCTAssertEqual(manifest.cases.count, 13)
        for c in manifest.cases {
            let image = try ImageDecoder.decodeImage(contentsOf: Fixtures.url(c.image))
            let t = try TrainTransform(imageSize: c.size)
            let got = t.resizedCrop(image, top: c.top, left: c.left, height: c.height, width: c.width)
            let want = [UInt8](try Data(contentsOf: folder.appendingPathComponent(c.file)))
            XCTAssertEqual(got.pixels.count, want.count, c.file)
            let differing = zip(got.pixels, want).filter { $0 != $1 }.count
            XCTAssertEqual(differing, 0, "\(c.file): \(differing) bytes differ from torchvision")
        }
    }

    func testScaleOneOnASquareImageOfTheModelSizeIsTheEvalTransform() throws {
        // open_clip's --aug-cfg scale='(1.0,1.0)' trick: every try overflows, the fallback is the whole image.
        let image = SyntheticShapes(uncheckedSeed: 3, size: 64).sample(0).image
        let t = try TrainTransform(imageSize: 64, scale: (1, 1))
        var rng = SeededGenerator(seed: 1)
        for _ in 0..<20 {
            let p = t.cropParameters(width: 64, height: 64, using: &rng)
            XCTAssertTrue(p == (0, 0, 64, 64) || p.height * p.width == 64 * 64, "\(p)")
        }
        var a = [Float](repeating: 0, count: 3 * 64 * 64)
        a.withUnsafeMutableBufferPointer { t.write(image, into: $0.baseAddress!, using: &rng) }
        XCTAssertEqual(a, Preprocessor(imageSize: 64)(image).scalars)
    }

    func testCropParametersFollowScaleAndRatio() throws {
        let t = try TrainTransform(imageSize: 32, scale: (0.3, 0.6), ratio: (0.5, 2))
        var rng = SeededGenerator(seed: 9)
        var fractions: [Double] = []
        for _ in 0..<2000 {
            let p = t.cropParameters(width: 320, height: 240, using: &rng)
            XCTAssertTrue(p.top >= 0 && p.left >= 0 && p.top + p.height <= 240 && p.left + p.width <= 320, "\(p)")
            let fraction = Double(p.width * p.height) / (320 * 240)
            XCTAssertTrue(fraction > 0.28 && fraction < 0.62, "area fraction \(fraction)")
            let aspect = Double(p.width) / Double(p.height)
            XCTAssertTrue(aspect > 0.47 && aspect < 2.1, "aspect \(aspect)")
            fractions.append(fraction)
        }
        let mean = fractions.reduce(0, +) / Double(fractions.count)
        XCTAssertEqual(mean, 0.45, accuracy: 0.02, "uniform area fraction")
        XCTAssertThrowsError(try TrainTransform(imageSize: 32, scale: (0.9, 0.5)))
        XCTAssertThrowsError(try TrainTransform(imageSize: 32, ratio: (0, 1)))
    }

    func testPNGEncoderRoundTripsThroughLibpng() throws {
        var rng = SeededGenerator(seed: 4)
        let image = RGBImage(width: 301, height: 250, pixels: (0..<(301 * 250 * 3)).map { _ in UInt8.random(in: 0...255, using: &rng) })
        let decoded = try ImageDecoder.decode(PNGEncoder.encode(image), name: "random.png")
        XCTAssertEqual(decoded, image)
    }

    func testSyntheticSamplesAreDeterministicAndDescribed() throws {
        let set = try SyntheticShapes(seed: 5, count: 50, imageSize: 48)
        XCTAssertEqual(set.sample(7).image, set.sample(7).image)
        XCTAssertNotEqual(set.sample(7).image, set.sample(8).image)
        var colours = Set<Int>()
        for i in 0..<50 {
            let s = set.sample(i)
            colours.insert(s.colour)
            XCTAssertTrue(s.caption.contains(SyntheticShapes.colours[s.colour].name), s.caption)
            // The shape's colour is in the picture.
            let rgb = SyntheticShapes.colours[s.colour].rgb
            let hits = stride(from: 0, to: s.image.pixels.count, by: 3).filter {
                s.image.pixels[$0] == rgb.0 && s.image.pixels[$0 + 1] == rgb.1 && s.image.pixels[$0 + 2] == rgb.2
            }.count
            XCTAssertGreaterThan(hits, 48 * 48 / 50, "sample \(i): \(s.caption)")
        }
        XCTAssertEqual(colours.count, SyntheticShapes.colours.count)
        XCTAssertThrowsError(try SyntheticShapes(seed: 0, count: 0, imageSize: 48))
    }

    func testLoaderIsDeterministicResumableAndDropsTheLastPartialBatch() throws {
        let source = try SyntheticShapes(seed: 2, count: 23, imageSize: 40)
        let t = try TrainTransform(imageSize: 32)
        func batches(workers: Int, epoch: Int, start: Int = 0) throws -> [TrainingBatch] {
            let loader = try BatchLoader(source: source, transform: t, batchSize: 5, seed: 11, epoch: epoch, workers: workers, startBatch: start)
            var out: [TrainingBatch] = []
            while let b = try loader.next() { out.append(b) }
            return out
        }
        let a = try batches(workers: 1, epoch: 0), b = try batches(workers: 3, epoch: 0)
        XCTAssertEqual(a.count, 4, "23 samples in batches of 5, last partial batch dropped")
        XCTAssertEqual(a.map(\.indices), b.map(\.indices))
        XCTAssertEqual(a.map(\.images.scalars), b.map(\.images.scalars), "threads do not change the batches")
        XCTAssertEqual(Set(a.flatMap(\.indices)).count, 20)
        XCTAssertEqual(a[0].captions, a[0].indices.map { source.sample($0).caption })
        let resumed = try batches(workers: 2, epoch: 0, start: 2)
        XCTAssertEqual(resumed.map(\.indices), Array(a[2...]).map(\.indices))
        XCTAssertEqual(resumed.map(\.images.scalars), Array(a[2...]).map(\.images.scalars), "resumed mid-epoch: the same batches")
        let next = try batches(workers: 1, epoch: 1)
        XCTAssertNotEqual(next.map(\.indices), a.map(\.indices), "a fresh shuffle each epoch")
        XCTAssertThrowsError(try BatchLoader(source: source, transform: t, batchSize: 24, seed: 0, epoch: 0, workers: 1))
    }

    func testAnUnreadableImageIsLeftOutNamingFileAndLine() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("swiftclip-loader-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let set = try SyntheticShapes(seed: 1, count: 4, imageSize: 32)
        var csv = "filepath\ttitle\n"
        for i in 0..<4 {
            let name = "\(i).png"
            if i == 2 { try Data("not a png".utf8).write(to: dir.appendingPathComponent(name)) }
            else { try PNGEncoder.encode(set.sample(i).image).write(to: dir.appendingPathComponent(name)) }
            csv += "\(name)\tcaption \(i)\n"
        }
        try Data(csv.utf8).write(to: dir.appendingPathComponent("train.csv"))
        let pairs = try CSVPairs(file: dir.appendingPathComponent("train.csv"))
        let loader = try BatchLoader(source: pairs, transform: TrainTransform(imageSize: 32), batchSize: 4, seed: 0, epoch: 0, workers: 2)
        let batch = try XCTUnwrap(loader.next())
        XCTAssertEqual(batch.images.shape, [3, 3, 32, 32])
        XCTAssertEqual(batch.skipped.count, 1)
        XCTAssertEqual(batch.skipped.first?.index, 2)
        let message = batch.skipped.first?.message ?? ""
        XCTAssertTrue(message.contains("2.png") && message.contains("train.csv line 4"), message)
        XCTAssertFalse(batch.captions.contains("caption 2"))
    }
}

extension SyntheticShapes {
    init(uncheckedSeed seed: UInt64, size: Int) { try! self.init(seed: seed, count: 1, imageSize: size) }
}
