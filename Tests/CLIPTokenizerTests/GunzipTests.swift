import CLIPEngine
import CLIPTokenizer
import Foundation
import XCTest

final class GunzipTests: XCTestCase {
    struct Case: Decodable {
        let name: String
        let gzip: String
        let raw: String
        let crc32: UInt32
    }

    struct Cases: Decodable { let cases: [Case] }

    func testPythonGzipOutputs() throws {
        let data = try Data(contentsOf: Paths.fixtures.appendingPathComponent("gzip.json"))
        let cases = try JSONDecoder().decode(Cases.self, from: data).cases
        XCTAssertEqual(cases.count, 9)
        for c in cases {
            let gz = [UInt8](Data(base64Encoded: c.gzip)!)
            let raw = [UInt8](Data(base64Encoded: c.raw)!)
            XCTAssertEqual(try gunzip(gz), raw, c.name)
            XCTAssertEqual(crc32(raw), c.crc32, c.name)
        }
    }

    func testRealVocabularyFile() throws {
        let gz = [UInt8](try Data(contentsOf: Paths.vocab))
        let raw = try gunzip(gz)
        XCTAssertEqual(raw.count, 3_194_984)
        XCTAssertEqual(crc32(raw), 0xE7F1_8A90)
        let text = String(decoding: raw.prefix(60), as: UTF8.self)
        XCTAssertTrue(text.hasPrefix("\"bpe_simple_vocab_16e6.txt#version: 0.2\ni n\n"), text)
    }

    func testBadInputsThrow() throws {
        let data = try Data(contentsOf: Paths.fixtures.appendingPathComponent("gzip.json"))
        let dynamic = try JSONDecoder().decode(Cases.self, from: data).cases.first { $0.name == "dynamic" }!
        let gz = [UInt8](Data(base64Encoded: dynamic.gzip)!)
        XCTAssertThrowsError(try gunzip([])) { XCTAssertEqual($0 as? GzipError, .notGzip) }
        XCTAssertThrowsError(try gunzip([0x50, 0x4B, 3, 4, 0, 0, 0, 0, 0, 0, 0])) { XCTAssertEqual($0 as? GzipError, .notGzip) }
        // Every truncation fails cleanly (no trap).
        for n in stride(from: 1, to: gz.count, by: 7) {
            XCTAssertThrowsError(try gunzip(Array(gz.prefix(n))), "prefix \(n)")
        }
        var badCRC = gz
        badCRC[gz.count - 8] ^= 1
        XCTAssertThrowsError(try gunzip(badCRC)) {
            guard case .checksumMismatch = $0 as? GzipError else { return XCTFail("\($0)") }
        }
        // Flipped bits in the compressed data: an error or a checksum mismatch, never a crash.
        for k in stride(from: 10, to: gz.count - 8, by: 5) {
            var bad = gz
            bad[k] ^= 0x5A
            _ = try? gunzip(bad)
        }
    }
}
