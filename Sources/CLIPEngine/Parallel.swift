import Foundation
import CLIPKernels

/// The engine's one thread pool (`clip_pool_run`: the caller and workers that spin briefly between
/// regions; libdispatch's when another thread's region is running) with a budget per call. Work is
/// split only when each chunk is much larger than a region's start (~0.1 µs for an empty region
/// with the pool awake, 50–100 µs to wake a sleeping core), and always into a few big contiguous
/// chunks.
///
/// Budgets: `threadCount` caps the whole process (`--threads`; several MPI ranks or servers on one
/// machine each take their share); `withThreads(n)` lowers it for the calls made inside `body` on
/// this thread (a server handling two requests gives each half). Chunks run with a budget of 1,
/// so kernels called inside a chunk never fan out again.
public enum Parallel {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var processThreads = max(1, ProcessInfo.processInfo.activeProcessorCount)
    @TaskLocal private static var callBudget: Int?

    /// Threads kernels may use in this process (default: the active processor count).
    public static var threadCount: Int {
        get { lock.lock(); defer { lock.unlock() }; return processThreads }
        set { lock.lock(); processThreads = max(1, newValue); lock.unlock() }
    }

    /// Runs `body` with at most `threads` threads for the kernels it calls on this thread.
    public static func withThreads<R>(_ threads: Int, _ body: () throws -> R) rethrows -> R {
        try $callBudget.withValue(max(1, threads), operation: body)
    }

    /// Threads available to the current call: the process cap and this thread's budget.
    public static var budget: Int { min(threadCount, callBudget ?? Int.max) }

    /// Below this many floating-point operations a loop runs on the calling thread.
    public static let minimumWorkPerThread = 200_000

    /// Runs `body(range)` over `0..<count` split into at most `budget` contiguous chunks.
    /// `workPerItem` is an estimate of the flops one index costs.
    public static func forEachChunk(_ count: Int, workPerItem: Int, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let byWork = max(1, (count * max(workPerItem, 1)) / minimumWorkPerThread)
        let chunks = min(budget, count, byWork)
        if chunks <= 1 { body(0..<count); return }
        run(chunks) { c in
            let lo = count * c / chunks, hi = count * (c + 1) / chunks
            if lo < hi { body(lo..<hi) }
        }
    }

    /// Runs `body(0) … body(parts − 1)` concurrently on the pool, each with a budget of one thread.
    public static func run(_ parts: Int, _ body: (Int) -> Void) {
        if parts <= 1 { if parts == 1 { body(0) }; return }
        let ran = withoutActuallyEscaping(body) { body in
            var job = body
            return withUnsafeMutablePointer(to: &job) { job in
                clip_pool_run(parts, { context, part in
                    let body = context!.assumingMemoryBound(to: ((Int) -> Void).self).pointee
                    Parallel.$callBudget.withValue(1) { body(part) }
                }, job) == 0
            }
        }
        if !ran {
            // Another thread's region holds the pool (a data loader beside the model, a second request).
            DispatchQueue.concurrentPerform(iterations: parts) { part in
                $callBudget.withValue(1) { body(part) }
            }
        }
    }
}
