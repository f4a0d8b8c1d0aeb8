import CLIPData
import CLIPEngine
import Foundation
import XCTest

/// Resize + CenterCrop + ToTensor + Normalize against open_clip's eval transform.
final class PreprocessTests: XCTestCase {
    /// Resized 8-bit pixels equal Pillow's in >= 99.9% of samples and never differ by more than 1.
    func testResizeAndCropMatchesPillow() throws {
        var report: [String] = []
        var crops = 0
        for fixture in Fixtures.manifest.images {
            let image = try ImageDecoder.decode(contentsOf: Fixtures.url(fixture.file))
            for crop in fixture.crops {
                let ours = Preprocessor(imageSize: crop.size).resizeAndCrop(image)
                XCTAssertEqual(ours.width, crop.size)
                XCTAssertEqual(ours.height, crop.size)
                let cmp = compareBytes(ours.pixels, try Fixtures.bytes(crop.file))
                report.append(String(format: "%@ @%d: exact %.5f, max diff %d", fixture.file, crop.size, cmp.exact, cmp.maxDiff))
                XCTAssertGreaterThanOrEqual(cmp.exact, 0.999, "\(fixture.file) at \(crop.size)")
                XCTAssertLessThanOrEqual(cmp.maxDiff, 1, "\(fixture.file) at \(crop.size)")
                crops += 1
            }
        }
        XCTAssertGreaterThan(crops, 20)
        print("resize parity:\n  " + report.joined(separator: "\n  "))
    }

    /// ToTensor + Normalize on the same 8-bit pixels: within 1e-6 of torchvision, channels first.
    func testNormalisedTensorMatchesTorchvision() throws {
        var checked = 0
        for fixture in Fixtures.manifest.images {
            for crop in fixture.crops {
                guard let tensorFile = crop.tensor else { continue }
                let expected = try Fixtures.npyFloat32(tensorFile)
                XCTAssertEqual(expected.shape, [3, crop.size, crop.size])
                let pixels = try Fixtures.bytes(crop.file)
                let pre = Preprocessor(imageSize: crop.size)
                // An image already S x S goes through Resize and CenterCrop unchanged.
                let t = pre(RGBImage(width: crop.size, height: crop.size, pixels: pixels))
                XCTAssertEqual(t.shape, [3, crop.size, crop.size])
                var maxErr: Float = 0
                for (a, b) in zip(t.scalars, expected.values) { maxErr = max(maxErr, abs(a - b)) }
                XCTAssertLessThanOrEqual(maxErr, 1e-6, tensorFile)
                print("normalised \(tensorFile): max |ours - torchvision| = \(maxErr)")
                // And from the file: equal wherever the resized pixels are.
                let full = pre(try ImageDecoder.decode(contentsOf: Fixtures.url(fixture.file)))
                var far = 0
                for (a, b) in zip(full.scalars, expected.values) where abs(a - b) > 1e-6 { far += 1 }
                XCTAssertLessThanOrEqual(Double(far), 0.001 * Double(expected.values.count), tensorFile)
                checked += 1
            }
        }
        XCTAssertEqual(checked, 3)
    }

    /// A larger random sweep, when one was written with
    /// `make_image_fixtures.py --sweep DIR` and SWIFTCLIP_IMAGE_SWEEP=DIR is set.
    func testPillowSweepWhenRequested() throws {
        guard let folder = ProcessInfo.processInfo.environment["SWIFTCLIP_IMAGE_SWEEP"] else {
            throw XCTSkip("set SWIFTCLIP_IMAGE_SWEEP to a folder written by make_image_fixtures.py --sweep")
        }
        let dir = URL(fileURLWithPath: folder)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".png") }.sorted()
        XCTAssertFalse(files.isEmpty)
        var samples = 0, differing = 0, maxDiff = 0, worst = 1.0
        for f in files {
            let size = try XCTUnwrap(Int(f.dropLast(4).split(separator: "_")[1]))
            let image = try ImageDecoder.decode(contentsOf: dir.appendingPathComponent(f))
            let ours = Preprocessor(imageSize: size).resizeAndCrop(image)
            let expected = [UInt8](try Data(contentsOf: dir.appendingPathComponent(String(f.dropLast(4)) + ".crop")))
            let cmp = compareBytes(ours.pixels, expected)
            samples += expected.count
            differing += cmp.differing
            maxDiff = max(maxDiff, cmp.maxDiff)
            worst = min(worst, cmp.exact)
            XCTAssertGreaterThanOrEqual(cmp.exact, 0.999, "\(f) (\(image.width)x\(image.height))")
            XCTAssertLessThanOrEqual(cmp.maxDiff, 1, "\(f) (\(image.width)x\(image.height))")
        }
        print("sweep: \(files.count) images, \(samples) samples, \(differing) differ, max diff \(maxDiff), worst exact \(worst)")
    }

    func testResizedSizeFollowsTorchvision() {
        let pre = Preprocessor(imageSize: 224)
        XCTAssertTrue(pre.resizedSize(width: 640, height: 427) == (335, 224))  // int(224 * 640 / 427) = 335
        XCTAssertTrue(pre.resizedSize(width: 3, height: 500) == (224, 37333))
        XCTAssertTrue(pre.resizedSize(width: 224, height: 224) == (224, 224))
        XCTAssertTrue(pre.resizedSize(width: 1000, height: 37) == (6054, 224))
    }

    func testBatchContinuesPastFailures() throws {
        let names = ["china.jpg", "empty.jpg", "palette_150x100.png", "truncated.png", "image.gif",
                     "gray16_47x33.png", "huge_100000x100000.png", "missing.png"]
        let urls = names.map(Fixtures.url)
        let pre = Preprocessor(imageSize: 64)
        let result = pre.batch(urls)
        XCTAssertEqual(result.succeeded.map(\.lastPathComponent), ["china.jpg", "palette_150x100.png", "gray16_47x33.png"])
        XCTAssertEqual(result.failures.map(\.url.lastPathComponent),
                       ["empty.jpg", "truncated.png", "image.gif", "huge_100000x100000.png", "missing.png"])
        for f in result.failures { XCTAssertTrue("\(f.error)".contains(f.url.path), "\(f.error)") }
        let tensor = try XCTUnwrap(result.tensor)
        XCTAssertEqual(tensor.shape, [3, 3, 64, 64])
        for (n, url) in result.succeeded.enumerated() {
            let single = pre(try ImageDecoder.decodeImage(contentsOf: url))  // batch(urls) reads files as Image.open does
            XCTAssertEqual(try tensor.slice(rows: n..<(n + 1)).scalars, single.scalars, url.lastPathComponent)
        }
        let none = pre.batch([Fixtures.url("empty.jpg")])
        XCTAssertNil(none.tensor)
        XCTAssertEqual(none.failures.count, 1)
        XCTAssertNil(pre.batch([]).tensor)
    }

    func testOpenAIConstants() {
        XCTAssertEqual(Preprocessor.openAIMean.0, 0.48145466, accuracy: 1e-8)
        XCTAssertEqual(Preprocessor.openAIStd.2, 0.27577711, accuracy: 1e-8)
    }
}
