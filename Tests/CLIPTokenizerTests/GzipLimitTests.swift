import CLIPTokenizer
import Foundation
import XCTest

/// A gzip bomb costs no more than the limit: inflation stops at `maximumBytes`.
final class GzipLimitTests: XCTestCase {
    struct Case: Decodable { let name: String; let gzip: String; let raw: String }
    struct Cases: Decodable { let cases: [Case] }

    func testOutputLimitIsExactForEveryBlockKind() throws {
        let cases = try JSONDecoder().decode(Cases.self, from: Data(contentsOf: Paths.fixtures.appendingPathComponent("gzip.json"))).cases
        for c in cases {
            let gz = [UInt8](Data(base64Encoded: c.gzip)!), raw = [UInt8](Data(base64Encoded: c.raw)!)
            XCTAssertEqual(try gunzip(gz, maximumBytes: raw.count), raw, c.name)
            guard !raw.isEmpty else { continue }
            XCTAssertThrowsError(try gunzip(gz, maximumBytes: raw.count - 1), c.name) { e in
                XCTAssertEqual(e as? GzipError, .outputTooLarge(limit: raw.count - 1), c.name)
            }
        }
    }

    func testVocabularyBombIsRefusedQuickly() throws {
        let bomb = FileManager.default.temporaryDirectory.appendingPathComponent("bomb-\(UUID().uuidString).txt.gz")
        defer { try? FileManager.default.removeItem(at: bomb) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "head -c 134217728 /dev/zero | gzip -1 > '\(bomb.path)'"]  // 128 MiB of zeros, ~0.5 MB
        try p.run(); p.waitUntilExit()
        let start = Date()
        XCTAssertThrowsError(try CLIPTokenizer(vocabularyURL: bomb)) { e in
            XCTAssertTrue("\(e)".contains(bomb.path) && "\(e)".contains("decompresses to more than \(CLIPTokenizer.maximumVocabularyBytes) bytes"), "\(e)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
    }

    func testVocabularyThatIsADirectoryIsNamed() throws {
        let dir = FileManager.default.temporaryDirectory
        XCTAssertThrowsError(try CLIPTokenizer(vocabularyURL: dir)) { e in
            XCTAssertTrue("\(e)".contains("is a directory"), "\(e)")
        }
    }
}
