import XCTest
import CLIPEngine

final class TensorTests: XCTestCase {
    func testReshapeAndCopyOnWrite() throws {
        var rng = SeededGenerator(seed: 1)
        let a = Tensor.random(shape: [3, 5], using: &rng)
        var b = try a.reshaped([5, -1])
        XCTAssertEqual(b.shape, [5, 3])
        b[flat: 0] = 42
        XCTAssertNotEqual(a[flat: 0], 42, "write to a copy must not change the original")
        XCTAssertThrowsError(try a.reshaped([4, 4]))
    }

    func testSliceAndConcatenate() throws {
        var rng = SeededGenerator(seed: 2)
        let a = Tensor.random(shape: [7, 3], using: &rng)
        let parts = [try a.slice(rows: 0..<2), try a.slice(rows: 2..<7)]
        XCTAssertEqual(try Tensor.concatenate(rows: parts).scalars, a.scalars)
        XCTAssertThrowsError(try a.slice(rows: 5..<9))
    }
}
