import Foundation
import CLIPKernels

/// The engine's one thread pool (`clip_pool_run`: the caller and workers that spin briefly between
/// regions; libdispatch's when another thread's region is running) with a budget per call. Work is
/// split only when each chunk is much larger than a region's start (~0.1 µs for an empty region
/// with the pool awake, 50–100 µs to wake a sleeping core), into contiguous chunks: up to
/// `partsPerThread` per thread, claimed one at a time, so that when another process holds one of
/// the cores (a noisy neighbour) the threads that run take the chunks of the one that does not.
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

    /// Chunks per thread a region is split into where the work allows (each still at least
    /// `minimumWorkPerThread`). 1 is the old one-equal-part-per-thread split, which waits for the
    /// slowest core. `SWIFTCLIP_PARTS_PER_THREAD` (1…64) overrides the default, for measuring.
    nonisolated(unsafe) public static var partsPerThread: Int = {
        if let text = ProcessInfo.processInfo.environment["SWIFTCLIP_PARTS_PER_THREAD"], let n = Int(text), (1...64).contains(n) {
            return n
        }
        return 4
    }()

    /// Runs `body(range)` over `0..<count` split into contiguous chunks, up to `partsPerThread`
    /// per thread of the `budget`, claimed dynamically. `workPerItem` is an estimate of the flops
    /// one index costs.
    public static func forEachChunk(_ count: Int, workPerItem: Int, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let byWork = max(1, (count * max(workPerItem, 1)) / minimumWorkPerThread)
        let threads = min(budget, count, byWork)
        if threads <= 1 { body(0..<count); return }
        let chunks = max(threads, min(count, byWork, threads * partsPerThread))
        run(chunks, threads: threads) { c in
            let lo = count * c / chunks, hi = count * (c + 1) / chunks
            if lo < hi { body(lo..<hi) }
        }
    }

    /// Runs `body(0) … body(parts − 1)` concurrently on the pool, each with a budget of one thread.
    public static func run(_ parts: Int, _ body: (Int) -> Void) {
        run(parts, threads: parts, body)
    }

    /// Runs `body(0) … body(parts − 1)` on at most `threads` threads (the caller one of them), each
    /// claiming the next unstarted part when it finishes one; each part with a budget of one thread.
    public static func run(_ parts: Int, threads: Int, _ body: (Int) -> Void) {
        if parts <= 1 || threads <= 1 { for part in 0..<max(parts, 0) { body(part) }; return }
        let ran = withoutActuallyEscaping(body) { body in
            var job = body
            return withUnsafeMutablePointer(to: &job) { job in
                clip_pool_run_threads(parts, threads, { context, part in
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
