import CLIPData
import CLIPEngine
import Foundation
import XCTest

/// Nesting is bounded while the stream is read, so freeing the values can never overflow the stack.
final class PickleLimitsTests: XCTestCase {
    func assertTooDeep(_ bytes: [UInt8], line: UInt = #line) {
        XCTAssertThrowsError(try Pickle.load(bytes, file: "deep.pkl"), line: line) { e in
            XCTAssertTrue("\(e)".contains("nested deeper than \(Pickle.maximumDepth)"), "\(e)", line: line)
        }
    }

    func testDeepListsTuplesDictsAndObjectsAreRefused() {
        // The case: 50,000 nested lists (EMPTY_LIST × n, APPEND × n-1).
        assertTooDeep([0x80, 0x02] + [UInt8](repeating: 0x5D, count: 50_000) + [UInt8](repeating: 0x61, count: 49_999) + [0x2E])
        // Tuples of tuples (EMPTY_TUPLE, TUPLE1 × n) and MARK … TUPLE.
        assertTooDeep([0x80, 0x02, 0x29] + [UInt8](repeating: 0x85, count: 100_000) + [0x2E])
        assertTooDeep([0x80, 0x02] + [UInt8](repeating: 0x28, count: 1_000) + [0x29] + [UInt8](repeating: 0x74, count: 1_000) + [0x2E])
        // Dicts: {0: {0: {...}}} as EMPTY_DICT, then (BININT1 0, EMPTY_DICT) … SETITEM × n.
        assertTooDeep([0x80, 0x02, 0x7D] + Array([[UInt8]](repeating: [0x4B, 0x00, 0x7D], count: 100).joined())
            + [UInt8](repeating: 0x73, count: 100) + [0x2E])
    }

    func testDepthAtTheLimitIsAccepted() throws {
        let n = Pickle.maximumDepth
        let ok = [0x80, 0x02] + [UInt8](repeating: 0x5D, count: n) + [UInt8](repeating: 0x61, count: n - 1) + [0x2E]
        guard case .list = try Pickle.load(ok) else { return XCTFail("not a list") }
        assertTooDeep([0x80, 0x02] + [UInt8](repeating: 0x5D, count: n + 1) + [UInt8](repeating: 0x61, count: n) + [0x2E])
    }

    /// Memo references could otherwise grow a container after it was nested and hide its depth.
    func testGrowingANestedContainerIsRefused() {
        // l = []; memo[0] = l; outer = [l]; then APPEND to l again through the memo.
        let bytes: [UInt8] = [0x80, 0x02, 0x5D, 0x71, 0x00, 0x5D, 0x68, 0x00, 0x61, 0x68, 0x00, 0x4B, 0x01, 0x61, 0x2E]
        XCTAssertThrowsError(try Pickle.load(bytes)) { e in
            XCTAssertTrue("\(e)".contains("already nested"), "\(e)")
        }
    }

    func testDataErrorsHaveNoMadeUpByteOffset() throws {
        // A dict whose 'data' is an int: a data error, not one at byte 0.
        let value = try Pickle.load([0x80, 0x02, 0x7D, 0x8C, 0x04] + Array("data".utf8) + [0x4B, 0x01, 0x73, 0x2E])
        guard case .dict(let d) = value, let data = d["data"] else { return XCTFail("not a dict") }
        XCTAssertThrowsError(try PickledArray(data, file: "x.pkl", what: "'data'")) { e in
            XCTAssertEqual("\(e)", "x.pkl: unexpected pickle contents: 'data': expected a NumPy array, found int")
        }
    }

    /// Found while writing the fuzz targets: a shape of 2^62 rows made `rows × 3072` trap.
    func testCIFARShapeThatOverflowsIsAnError() throws {
        let file = repoRoot.appendingPathComponent("Tests/CLIPFuzzTests/Regressions/pickle/shape_times_3072_overflows.pkl")
        assertThrows(DatasetError.self, containing: [file.path, "truncated", "4611686018427387904 × 3072"]) {
            _ = try CIFARDataset.loadPython(.cifar10, test: file, meta: nil)
        }
    }
}
