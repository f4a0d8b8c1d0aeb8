import CLIPData
import Foundation
import XCTest

/// Decoded pixels equal Pillow's `Image.open(p).convert("RGB")`, byte for byte.
final class DecodeTests: XCTestCase {
    func testSHA256() {
        XCTAssertEqual(sha256Hex(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    func testDecodedPixelsEqualPillow() throws {
        XCTAssertGreaterThan(Fixtures.manifest.images.count, 20)
        for fixture in Fixtures.manifest.images {
            let image = try ImageDecoder.decode(contentsOf: Fixtures.url(fixture.file))
            XCTAssertEqual(image.width, fixture.width, fixture.file)
            XCTAssertEqual(image.height, fixture.height, fixture.file)
            let digest = sha256Hex(image.pixels)
            var detail = ""
            if digest != fixture.decoded_sha256, let raw = fixture.decoded_rgb {
                let cmp = compareBytes(image.pixels, try Fixtures.bytes(raw))
                detail = " (\(cmp.differing) bytes differ, max diff \(cmp.maxDiff))"
            }
            XCTAssertEqual(digest, fixture.decoded_sha256, "\(fixture.file) [Pillow mode \(fixture.mode)]\(detail)")
        }
    }

    func testFormatIsSniffedFromContentNotName() throws {
        let png = try Data(contentsOf: Fixtures.url("tiny_1x1.png"))
        let image = try ImageDecoder.decode(png, name: "actually-a-png.jpg")
        XCTAssertEqual(image.pixels, [200, 30, 90])
        let jpeg = try Data(contentsOf: Fixtures.url("china_gray_200x150.jpg"))
        XCTAssertEqual(try ImageDecoder.decode(jpeg, name: "photo.png").width, 200)
    }

    /// Every broken fixture throws the expected case, and the message names the file.
    func testBrokenFilesGiveClearErrors() throws {
        func expectError(_ file: String, _ check: (ImageError) -> Bool) {
            let url = Fixtures.url(file)
            XCTAssertThrowsError(try ImageDecoder.decode(contentsOf: url), file) { error in
                guard let e = error as? ImageError else { return XCTFail("\(file): not an ImageError: \(error)") }
                XCTAssertTrue(check(e), "\(file): unexpected error \(e)")
                XCTAssertTrue(e.description.contains(url.path), "\(file): message does not name the file: \(e)")
                XCTAssertEqual(e.path, url.path)
            }
        }
        expectError("empty.jpg") { if case .empty = $0 { return true } else { return false } }
        expectError("truncated.jpg") { if case .truncated(_, "JPEG", _) = $0 { return true } else { return false } }
        expectError("truncated.png") { if case .truncated(_, "PNG", _) = $0 { return true } else { return false } }
        expectError("random.jpg") { if case .unsupportedFormat = $0 { return true } else { return false } }
        expectError("image.gif") { if case .unsupportedFormat(_, "GIF") = $0 { return true } else { return false } }
        expectError("image.bmp") { if case .unsupportedFormat(_, "BMP") = $0 { return true } else { return false } }
        expectError("huge_100000x100000.png") {
            if case .tooLarge(_, 100_000, 100_000) = $0 { return true } else { return false }
        }
        expectError("huge_65000x65000.jpg") {
            if case .tooLarge(_, 65_000, 65_000) = $0 { return true } else { return false }
        }
        expectError("no-such-file.png") { if case .unreadable = $0 { return true } else { return false } }
        XCTAssertEqual(Fixtures.manifest.broken.count, 8)
    }

    func testCorruptDataInsideValidHeaders() throws {
        // A JPEG SOI followed by garbage, and a PNG signature followed by garbage.
        var jpeg: [UInt8] = [0xFF, 0xD8, 0xFF, 0xE0]
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<500 { jpeg.append(UInt8.random(in: 0...255, using: &rng)) }
        XCTAssertThrowsError(try ImageDecoder.decode(Data(jpeg), name: "garbage.jpg")) { error in
            XCTAssertTrue("\(error)".hasPrefix("garbage.jpg: "), "\(error)")
        }
        var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        for _ in 0..<500 { png.append(UInt8.random(in: 0...255, using: &rng)) }
        XCTAssertThrowsError(try ImageDecoder.decode(Data(png), name: "garbage.png")) { error in
            guard case ImageError.corrupt(let path, "PNG", let message) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(path, "garbage.png")
            XCTAssertFalse(message.isEmpty)
        }
        // Every prefix of a small PNG that cuts its image data fails cleanly (no crash, no hang).
        // (A cut after the image data, e.g. a missing IEND, decodes, as in Pillow: no_iend_31x17.png.)
        let full = try Fixtures.bytes("palette4_trns_90x70.png")
        for n in stride(from: 0, to: full.count - 16, by: 7) {
            XCTAssertThrowsError(try ImageDecoder.decode(Data(full[0..<n]), name: "prefix\(n).png"))
        }
        XCTAssertNoThrow(try ImageDecoder.decode(Data(full), name: "full.png"))
    }
}
