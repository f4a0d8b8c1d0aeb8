import CLIPFuzzTargets
import Foundation
import XCTest

/// Replays, in the normal test suite, every committed fuzz input through the same target functions
/// that libFuzzer drives: the seed corpus (valid files, which must parse; damaged ones named
/// `invalid-*`, which must throw) and each crasher the fuzzer found (which must now end in a typed
/// error or a result, never a trap). A regression crashes this test process, which fails the suite.
final class FuzzRegressionTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()

    func inputs(_ folder: String, _ target: FuzzTarget) throws -> [URL] {
        let dir = Self.root.appendingPathComponent(folder).appendingPathComponent(target.rawValue)
        guard FileManager.default.fileExists(atPath: dir.path) else { return [] }
        return try FileManager.default.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil)
            .filter { !$0.lastPathComponent.hasPrefix(".") }.sorted { $0.path < $1.path }
    }

    func testEverySeedParses() throws {
        for target in FuzzTarget.allCases {
            let seeds = try inputs("Seeds", target)
            XCTAssertFalse(seeds.isEmpty, "no seeds for \(target)")
            for url in seeds {
                let bytes = [UInt8](try Data(contentsOf: url))
                if url.lastPathComponent.hasPrefix("invalid-") {
                    // A seed of a damaged input (a truncated tar, a runaway brace range): a typed error.
                    XCTAssertThrowsError(try target.run(bytes), "\(target) seed \(url.lastPathComponent)")
                } else {
                    XCTAssertNoThrow(try target.run(bytes), "\(target) seed \(url.lastPathComponent)")
                }
            }
        }
    }

    func testEveryRegressionInputEndsWithoutATrap() throws {
        var replayed = 0
        for target in FuzzTarget.allCases {
            for url in try inputs("Regressions", target) {
                _ = try? target.run([UInt8](Data(contentsOf: url)))
                replayed += 1
            }
        }
        XCTAssertGreaterThan(replayed, 0, "the regression corpus is empty")
    }
}
