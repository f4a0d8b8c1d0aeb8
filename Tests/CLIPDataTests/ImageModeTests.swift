import CLIPData
import Foundation
import XCTest

/// Every Pillow mode through open_clip's eval transform (`image_transform_v2` with several
/// preprocess_cfgs), applied to the image as Pillow opens it: Fixtures/modes, written by
/// tools/reference/make_mode_fixtures.py. Exact: every byte and every float equal.
final class ImageModeTests: XCTestCase {
    struct Config: Decodable {
        let size: Int
        let resize_mode: String
        let interpolation: String
        let fill_color: Int
    }

    struct Entry: Decodable {
        let file: String
        let mode: String
        let width: Int
        let height: Int
        let pixels: String
        let tensor: String?
    }

    struct Refused: Decodable {
        let file: String
        let pillow: String
    }

    struct Manifest: Decodable {
        let configs: [Config]
        let images: [Entry]
        let refused: [Refused]
    }

    static let folder = Fixtures.folder.appendingPathComponent("modes")

    func manifest() throws -> Manifest {
        try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: Self.folder.appendingPathComponent("manifest.json")))
    }

    func preprocessor(_ c: Config) throws -> Preprocessor {
        let interpolation = try XCTUnwrap(Interpolation(rawValue: c.interpolation))
        let mode = try XCTUnwrap(ResizeMode(rawValue: c.resize_mode))
        return Preprocessor(imageSize: c.size, interpolation: interpolation, resizeMode: mode, fillColor: c.fill_color)
    }

    func testEveryModeMatchesOpenCLIPExactly() throws {
        let m = try manifest()
        XCTAssertGreaterThanOrEqual(m.images.count, 28)
        var report: [String] = []
        var checked = 0
        for entry in m.images {
            let image = try ImageDecoder.decodeImage(contentsOf: Self.folder.appendingPathComponent(entry.file))
            XCTAssertEqual(image.mode.rawValue, entry.mode, "\(entry.file): Pillow opens it as \(entry.mode)")
            XCTAssertEqual(image.width, entry.width)
            XCTAssertEqual(image.height, entry.height)
            let expected = [UInt8](try Data(contentsOf: Self.folder.appendingPathComponent(entry.pixels)))
            var offset = 0
            for c in m.configs {
                let n = c.size * c.size * 3
                let ours = try preprocessor(c).resizeAndCrop(image)
                let cmp = compareBytes(ours.pixels, Array(expected[offset..<(offset + n)]))
                if cmp.differing > 0 {
                    report.append("\(entry.file) [\(entry.mode)] S=\(c.size) \(c.resize_mode) \(c.interpolation): "
                                  + "\(cmp.differing)/\(n) bytes differ, max \(cmp.maxDiff)")
                }
                XCTAssertEqual(cmp.differing, 0, "\(entry.file) S=\(c.size) \(c.resize_mode) \(c.interpolation)")
                offset += n
                checked += 1
            }
            if let tensor = entry.tensor {
                let want = try Fixtures.npyFloat32("modes/" + tensor)
                let got = try preprocessor(m.configs[0])(image)
                XCTAssertEqual(want.shape, got.shape)
                XCTAssertEqual(got.scalars.map(\.bitPattern), want.values.map(\.bitPattern), "\(entry.file) tensor")
            }
        }
        print("image modes: \(checked) (image, preprocess_cfg) pairs checked, \(report.count) differ"
              + (report.isEmpty ? "" : ":\n  " + report.joined(separator: "\n  ")))
    }

    /// libjpeg warnings (junk before a marker, an APP segment shorter than its data) decode as in
    /// Pillow, and the warning is reported, naming the file.
    func testJPEGWarningsDecodeAndAreReported() throws {
        final class Sink: @unchecked Sendable { var lines: [String] = [] }
        let sink = Sink()
        let saved = ImageDecoder.warningHandler
        ImageDecoder.warningHandler = { name, message in sink.lines.append("\(name): \(message)") }
        defer { ImageDecoder.warningHandler = saved }
        let url = Self.folder.appendingPathComponent("warn_extraneous_40x30.jpg")
        let image = try ImageDecoder.decodeImage(contentsOf: url)
        XCTAssertEqual(image.width, 40)
        XCTAssertTrue(sink.lines.contains { $0.contains("warn_extraneous_40x30.jpg") && $0.contains("extraneous bytes") },
                      "\(sink.lines)")
        // The clean file decodes to the same pixels, without a warning.
        sink.lines = []
        let clean = try ImageDecoder.decodeImage(contentsOf: Self.folder.appendingPathComponent("rgb_40x30.jpg"))
        XCTAssertEqual(clean, image)
        XCTAssertEqual(sink.lines, [])
        // A fatal error after a warning stays an error (TurboJPEG then reports TJERR_WARNING): 55
        // bytes claiming 12737 x 8252 with an undefined quantization table (found by fuzzing;
        // Pillow: "broken data stream").
        let bomb = Fixtures.folder.deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("CLIPFuzzTests/Regressions/image/jpeg_fatal_after_warning_bomb.jpg")
        XCTAssertThrowsError(try ImageDecoder.decodeImage(contentsOf: bomb)) { error in
            guard case ImageError.corrupt(_, _, let message) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(message.contains("Quantization table"), message)
        }
        // Data that ends early stays an error, as in Pillow.
        let bytes = try Data(contentsOf: url)
        XCTAssertThrowsError(try ImageDecoder.decodeImage(bytes.prefix(bytes.count - 2), name: "no-eoi.jpg")) { error in
            guard case ImageError.truncated = error else { return XCTFail("\(error)") }
        }
    }

    /// What Pillow refuses although it starts well (a JPEG without its end after a warning, a PNG
    /// chunk cut inside its data after the image) is a `truncated` error naming the file.
    func testFilesPillowRefusesAreRefused() throws {
        let refused = try manifest().refused
        XCTAssertEqual(refused.count, 2)
        for r in refused {
            let url = Self.folder.appendingPathComponent(r.file)
            XCTAssertThrowsError(try ImageDecoder.decodeImage(contentsOf: url), r.pillow) { error in
                guard case ImageError.truncated(let path, _, _) = error else { return XCTFail("\(r.file): \(error)") }
                XCTAssertEqual(path, url.path)
            }
        }
    }

    /// convert("RGB") of the opened image: what `decode` gives, for every mode.
    func testDecodeIsDecodeImageConvertedToRGB() throws {
        for entry in try manifest().images {
            let url = Self.folder.appendingPathComponent(entry.file)
            XCTAssertEqual(try ImageDecoder.decode(contentsOf: url), try ImageDecoder.decodeImage(contentsOf: url).rgb())
        }
    }
}
