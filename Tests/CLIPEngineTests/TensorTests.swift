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

    /// A size the large-buffer cache does not hold, asked for at its limit, is built from cached
    /// buffers' pages (moved, not faulted in afresh), the limit does not rise, live tensors keep
    /// their values, and the new buffer holds whatever it is given.
    func testACacheMissAtTheLimitReusesCachedPages() {
        let floats = { (bytes: Int) in bytes / MemoryLayout<Float>.stride }
        BufferCache.trim()   // nothing cached; the peak restarts from what is live
        let live = Tensor(repeating: 7, shape: [floats(1 << 20) + 3])
        // The new peak is at most 2·grow, so the idle allowance is at most grow / 2.
        let grow = max(128 << 20, BufferCacheStatistics.liveBytes)
        do {
            var big = Tensor(uninitializedShape: [floats(grow)])
            big.withUnsafeMutableBufferPointer { $0.initialize(repeating: 1) }
        }
        let limit = BufferCacheStatistics.limitBytes
        let (moved, fresh) = (BufferCacheStatistics.movedBytes, BufferCacheStatistics.freshBytes)
        // A different size (so no exact hit), larger than the allowance: mapped + size > limit.
        let size = floats(grow) - floats(3 << 20) + 5
        var other = Tensor(uninitializedShape: [size])
        XCTAssertGreaterThan(BufferCacheStatistics.movedBytes - moved, 0, "no cached pages were reused")
        XCTAssertLessThan(BufferCacheStatistics.freshBytes - fresh, size * 4, "the whole buffer was mapped afresh")
        XCTAssertEqual(BufferCacheStatistics.limitBytes, limit, "the limit rose")
        XCTAssertLessThanOrEqual(BufferCacheStatistics.mappedBytes, limit)
        other.withUnsafeMutableBufferPointer { buffer in
            for i in stride(from: 0, to: buffer.count, by: 1021) { buffer[i] = Float(i) }
            buffer[buffer.count - 1] = -1
        }
        XCTAssertEqual(other[flat: 1021 * 5], Float(1021 * 5))
        XCTAssertEqual(other[flat: size - 1], -1)
        XCTAssertTrue(live.scalars.allSatisfy { $0 == 7 }, "a live tensor changed")
    }

    /// A pass that asks for more distinct sizes over its course than it holds at its peak (as a
    /// forward pass does) maps nothing afresh the second time: the idle allowance keeps them all.
    /// With the cache capped at the peak, each pass unmapped some sizes to map others.
    func testARepeatedPassMapsNothingAfresh() {
        let megabytes = { (mb: Int) in [(mb << 20) / MemoryLayout<Float>.stride + 1] }
        BufferCache.trim()
        func pass() {
            do { var a = Tensor(uninitializedShape: megabytes(8)); a[flat: 0] = 1 }
            do { var b = Tensor(uninitializedShape: megabytes(6)); b[flat: 0] = 1 }
            do {
                var c = Tensor(uninitializedShape: megabytes(5)), d = Tensor(uninitializedShape: megabytes(3))
                c[flat: 0] = 1
                d[flat: 0] = 1
            }
        }
        pass()
        let fresh = BufferCacheStatistics.freshBytes
        pass()
        XCTAssertEqual(BufferCacheStatistics.freshBytes, fresh, "the second pass mapped buffers afresh")
        XCTAssertLessThanOrEqual(BufferCacheStatistics.mappedBytes, BufferCacheStatistics.limitBytes)
        BufferCache.trim()
        XCTAssertEqual(BufferCacheStatistics.mappedBytes, BufferCacheStatistics.liveBytes, "trim left buffers cached")
    }
}
