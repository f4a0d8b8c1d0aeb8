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

    /// A size the large-buffer cache does not hold, asked for at the high-water mark, is built from
    /// cached buffers' pages (moved, not faulted in afresh), the mark does not rise, live tensors
    /// keep their values, and the new buffer holds whatever it is given.
    func testACacheMissAtTheMarkReusesCachedPages() {
        let floats = { (bytes: Int) in bytes / MemoryLayout<Float>.stride }
        // Raise the mark by 32 MB past what is mapped now, then hand that buffer back.
        let grow = BufferCacheStatistics.highWaterBytes - BufferCacheStatistics.mappedBytes + (32 << 20)
        let live = Tensor(repeating: 7, shape: [floats(1 << 20) + 3])
        do {
            var big = Tensor(uninitializedShape: [floats(grow)])
            big.withUnsafeMutableBufferPointer { $0.initialize(repeating: 1) }
        }
        let mark = BufferCacheStatistics.highWaterBytes
        let (moved, fresh) = (BufferCacheStatistics.movedBytes, BufferCacheStatistics.freshBytes)
        // A different size (so no exact hit), larger than the 32 MB of headroom.
        let size = floats(grow) - floats(3 << 20) + 5
        var other = Tensor(uninitializedShape: [size])
        XCTAssertGreaterThan(BufferCacheStatistics.movedBytes - moved, 0, "no cached pages were reused")
        XCTAssertLessThan(BufferCacheStatistics.freshBytes - fresh, size * 4, "the whole buffer was mapped afresh")
        XCTAssertEqual(BufferCacheStatistics.highWaterBytes, mark, "the mark rose")
        XCTAssertLessThanOrEqual(BufferCacheStatistics.mappedBytes, mark)
        other.withUnsafeMutableBufferPointer { buffer in
            for i in stride(from: 0, to: buffer.count, by: 1021) { buffer[i] = Float(i) }
            buffer[buffer.count - 1] = -1
        }
        XCTAssertEqual(other[flat: 1021 * 5], Float(1021 * 5))
        XCTAssertEqual(other[flat: size - 1], -1)
        XCTAssertTrue(live.scalars.allSatisfy { $0 == 7 }, "a live tensor changed")
    }
}
