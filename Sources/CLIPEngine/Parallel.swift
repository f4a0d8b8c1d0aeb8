import Foundation

/// Threading policy. Waking a second core costs 50–100 µs here, so work is split only when each
/// chunk is much larger than that, and always into a few big contiguous chunks.
public enum Parallel {
    /// Number of worker threads used by kernels (defaults to the active processor count).
    nonisolated(unsafe) public static var threadCount: Int = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Below this many floating-point operations a loop runs on the calling thread.
    public static let minimumWorkPerThread = 200_000

    /// Runs `body(range)` over `0..<count` split into at most `threadCount` contiguous chunks.
    /// `workPerItem` is an estimate of the flops one index costs.
    public static func forEachChunk(_ count: Int, workPerItem: Int, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let byWork = max(1, (count * max(workPerItem, 1)) / minimumWorkPerThread)
        let chunks = min(threadCount, count, byWork)
        if chunks <= 1 { body(0..<count); return }
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let lo = count * c / chunks, hi = count * (c + 1) / chunks
            if lo < hi { body(lo..<hi) }
        }
    }
}
