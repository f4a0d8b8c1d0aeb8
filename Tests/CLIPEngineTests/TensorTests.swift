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

    /// The parallel fill draws exactly what one `nextGaussian()` per element would, leaves the
    /// generator (spare sample included) where those calls leave it, on both threads and on one.
    func testFillGaussianEqualsSequentialDraws() throws {
        for threads in [1, 2] {
            for count in [0, 1, 2, 3, 8, 1001, 300_001] {
                for startWithSpare in [false, true] {
                    var a = SeededGenerator(seed: UInt64(count) &+ 7)
                    if startWithSpare { _ = a.nextGaussian() }
                    var b = a
                    let expected = (0..<count).map { _ in 0.02 * a.nextGaussian() }
                    var got = [Float](repeating: .nan, count: count)
                    Parallel.withThreads(threads) {
                        got.withUnsafeMutableBufferPointer { if let p = $0.baseAddress { b.fillGaussian(p, count: count, scale: 0.02) } }
                    }
                    XCTAssertEqual(got.map(\.bitPattern), expected.map(\.bitPattern), "count \(count), spare \(startWithSpare), \(threads) thread(s)")
                    XCTAssertEqual(b.snapshot, a.snapshot, "count \(count), spare \(startWithSpare)")
                    XCTAssertEqual(b.nextGaussian().bitPattern, a.nextGaussian().bitPattern)
                    XCTAssertEqual(b.nextGaussian().bitPattern, a.nextGaussian().bitPattern)
                }
            }
        }
    }

    /// Large buffers are filled in parallel chunks: every element, the odd tail included.
    func testLargeFillsReachEveryElement() {
        for count in [(1 << 18) - 1, 1 << 18, (1 << 18) * 2 + 3, (1 << 18) * 9 + 5] {
            let t = Tensor(repeating: 1.5, shape: [count])
            XCTAssertTrue(t.withUnsafeBufferPointer { $0.allSatisfy { $0 == 1.5 } }, "count \(count)")
            let z = Tensor(zeros: [count])
            XCTAssertTrue(z.withUnsafeBufferPointer { $0.allSatisfy { $0 == 0 } }, "count \(count)")
        }
    }

    func testSliceAndConcatenate() throws {
        var rng = SeededGenerator(seed: 2)
        let a = Tensor.random(shape: [7, 3], using: &rng)
        let parts = [try a.slice(rows: 0..<2), try a.slice(rows: 2..<7)]
        XCTAssertEqual(try Tensor.concatenate(rows: parts).scalars, a.scalars)
        XCTAssertThrowsError(try a.slice(rows: 5..<9))
    }

    /// A size the large-buffer cache holds no fit for, asked for at its limit, is built from cached
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
        // A size no cached buffer fits (the cached one is over 1.5× it, so no best fit), larger than
        // the allowance: mapped + size > limit.
        let size = floats(grow) / 2 + 5
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
    /// A cached buffer up to half as large again as a request is reused for it (best fit, the
    /// smallest that holds it): passes of neighbouring batch sizes map nothing afresh. A larger one
    /// is not taken, small sizes reuse by exact size only, and the reused buffer goes back to the
    /// cache at its own size (what is live returns to what it was).
    func testALargeEnoughCachedBufferIsReusedWithBoundedWaste() {
        let floats = { (mb: Double) in [Int(mb * Double(1 << 20)) / MemoryLayout<Float>.stride] }
        BufferCache.trim()
        let live = BufferCacheStatistics.liveBytes
        do {
            var a = Tensor(uninitializedShape: floats(16)), b = Tensor(uninitializedShape: floats(10))
            a[flat: 0] = 1; b[flat: 0] = 1
        }
        XCTAssertEqual(BufferCacheStatistics.liveBytes, live)
        var fresh = BufferCacheStatistics.freshBytes
        do {
            // 13 MB takes the 16 MB buffer (the 10 MB one is too small), 8 MB the 10 MB one.
            var c = Tensor(uninitializedShape: floats(13)), d = Tensor(uninitializedShape: floats(8))
            c.withUnsafeMutableBufferPointer { $0.initialize(repeating: 3) }
            d.withUnsafeMutableBufferPointer { $0.initialize(repeating: 4) }
            XCTAssertEqual(BufferCacheStatistics.freshBytes, fresh, "a large enough cached buffer was not reused")
            XCTAssertEqual(BufferCacheStatistics.liveBytes - live, 26 << 20, "live bytes count the reused buffers' own sizes")
            XCTAssertTrue(c.scalars.allSatisfy { $0 == 3 } && d.scalars.allSatisfy { $0 == 4 })
        }
        XCTAssertEqual(BufferCacheStatistics.liveBytes, live, "the reused buffers did not go back at their own sizes")
        do {
            // Both cached buffers are back at full size: 15 MB fits the 16 MB one again.
            var e = Tensor(uninitializedShape: floats(15)); e[flat: 0] = 1
            XCTAssertEqual(BufferCacheStatistics.freshBytes, fresh)
        }
        // Cached buffers over 1.5× the request are not taken: 5 MB is mapped afresh beside 10 and 16 MB.
        do { var f = Tensor(uninitializedShape: floats(5)); f[flat: 0] = 1 }
        XCTAssertGreaterThan(BufferCacheStatistics.freshBytes, fresh, "a buffer over 1.5× the request was reused")
        fresh = BufferCacheStatistics.freshBytes
        // Under 1 MB only the exact size is reused: 640 KB does not take the 768 KB buffer.
        do { var g = Tensor(uninitializedShape: floats(0.75)); g[flat: 0] = 1 }
        fresh = BufferCacheStatistics.freshBytes
        do { var h = Tensor(uninitializedShape: floats(0.625)); h[flat: 0] = 1 }
        XCTAssertGreaterThan(BufferCacheStatistics.freshBytes, fresh, "a small size reused a buffer of another size")
        XCTAssertLessThanOrEqual(BufferCacheStatistics.mappedBytes, BufferCacheStatistics.limitBytes)
        BufferCache.trim()
    }
}
