import XCTest
import Foundation
import CLIPEngine
import CLIPKernels

/// The engine's worker pool (`Parallel.run` over `clip_pool_run`): every part runs exactly once,
/// parts really run at the same time, and regions from several threads or nested in a part fall
/// back instead of deadlocking.
final class ParallelTests: XCTestCase {
    /// Counts of each part over many back-to-back regions (the pattern of a forward pass).
    func testEveryPartRunsOnceInEveryRegion() {
        let lock = NSLock()
        for parts in [2, 3, 7] {
            for _ in 0..<2_000 {
                var counts = [Int](repeating: 0, count: parts)
                Parallel.run(parts) { part in
                    lock.lock(); counts[part] += 1; lock.unlock()
                }
                XCTAssertEqual(counts, [Int](repeating: 1, count: parts))
                if counts != [Int](repeating: 1, count: parts) { return }
            }
        }
    }

    /// Part 0 waits (up to 10 s) for part 1 to start: only a pool that runs them at once finishes
    /// early. Also after the workers had time to fall asleep.
    func testPartsRunConcurrently() throws {
        guard ProcessInfo.processInfo.activeProcessorCount >= 2 else { throw XCTSkip("one CPU") }
        for pause in [0.0, 0.05] {
            Thread.sleep(forTimeInterval: pause)
            let started = ManagedAtomicFlag()
            var waited = 0.0
            Parallel.run(2) { part in
                if part == 1 { started.set(); return }
                let t0 = Date()
                while !started.isSet && Date().timeIntervalSince(t0) < 10 {}
                waited = Date().timeIntervalSince(t0)
            }
            XCTAssertTrue(started.isSet)
            XCTAssertLessThan(waited, 5, "part 1 did not start while part 0 ran (pause \(pause) s)")
        }
    }

    /// Regions from two threads at once, and a region inside a part: all parts run, nothing hangs.
    func testConcurrentAndNestedRegions() {
        let lock = NSLock()
        var total = 0
        DispatchQueue.concurrentPerform(iterations: 2) { _ in
            for _ in 0..<500 {
                Parallel.run(2) { _ in
                    Parallel.run(2) { _ in lock.lock(); total += 1; lock.unlock() }
                }
            }
        }
        XCTAssertEqual(total, 2 * 500 * 2 * 2)
    }
}

extension ParallelTests {
    /// More parts than threads, claimed one at a time: every part exactly once in every region, for
    /// thread limits below, at and above the CPUs, while another thread keeps a core busy.
    func testClaimedPartsRunOnceUnderContention() {
        let stop = ManagedAtomicFlag()
        let neighbour = Thread { while !stop.isSet {} }   // a noisy neighbour on one of the cores
        neighbour.start()
        defer { stop.set() }
        let lock = NSLock()
        for threads in [1, 2, 3] {
            for parts in [2, 5, 16, 61] {
                for region in 0..<150 {
                    var counts = [Int](repeating: 0, count: parts)
                    Parallel.run(parts, threads: threads) { part in
                        if region % 50 == 0 && part % 3 == 0 { usleep(200) }   // uneven parts
                        lock.lock(); counts[part] += 1; lock.unlock()
                    }
                    XCTAssertEqual(counts, [Int](repeating: 1, count: parts), "\(parts) parts, \(threads) threads")
                    if counts != [Int](repeating: 1, count: parts) { return }
                }
            }
        }
    }

    /// No more threads run a region's parts at once than its limit allows.
    func testThreadLimitHolds() {
        let lock = NSLock()
        for threads in [1, 2] {
            var active = 0, most = 0
            var seen = Set<ObjectIdentifier>()
            for _ in 0..<100 {
                Parallel.run(12, threads: threads) { _ in
                    lock.lock(); active += 1; most = max(most, active); seen.insert(ObjectIdentifier(Thread.current)); lock.unlock()
                    usleep(50)   // long enough for the parts of other threads to overlap, if any run
                    lock.lock(); active -= 1; lock.unlock()
                }
            }
            XCTAssertLessThanOrEqual(most, threads)
            if threads == 1 { XCTAssertEqual(seen, [ObjectIdentifier(Thread.current)], "threads: 1 runs on the caller") }
        }
    }

    /// A part that cannot finish until every other part has: only a pool whose other thread goes on
    /// claiming parts (not one fixed share per thread) lets it finish; waits up to 10 s. Also with
    /// the pool contended and parts of 0.5 ms: a worker that yields after a burst comes back.
    func testOtherThreadTakesThePartsASlowOneHasNotStarted() throws {
        guard ProcessInfo.processInfo.activeProcessorCount >= 2 else { throw XCTSkip("one CPU") }
        let lock = NSLock()
        for (pause, contended) in [(0.0, false), (0.05, false), (0.0, true)] {
            Thread.sleep(forTimeInterval: pause)
            if contended { clip_pool_note_contention() }
            var done = 0
            var finishedInTime = false
            Parallel.run(16, threads: 2) { part in
                if part == 0 {
                    let t0 = Date()
                    while Date().timeIntervalSince(t0) < 10 {
                        lock.lock(); let d = done; lock.unlock()
                        if d == 15 { finishedInTime = true; break }
                    }
                } else {
                    if contended { usleep(500) }   // 15 parts of ≥ 0.5 ms: several bursts
                    lock.lock(); done += 1; lock.unlock()
                }
            }
            XCTAssertTrue(finishedInTime, "the other thread did not take parts 1-15 while part 0 ran (pause \(pause) s, contended \(contended))")
        }
    }

    /// forEachChunk at several parts per thread: contiguous chunks that cover every index once.
    func testChunksCoverEveryIndexOnce() {
        let saved = Parallel.partsPerThread
        defer { Parallel.partsPerThread = saved }
        let lock = NSLock()
        for perThread in [1, 4, 16] {
            Parallel.partsPerThread = perThread
            for count in [1, 7, 64, 1_000, 100_003] {
                var counts = [Int](repeating: 0, count: count)
                Parallel.withThreads(2) {
                    Parallel.forEachChunk(count, workPerItem: 5_000) { range in
                        lock.lock(); for i in range { counts[i] += 1 }; lock.unlock()
                    }
                }
                XCTAssertEqual(counts.min(), 1, "count \(count), \(perThread) parts per thread")
                XCTAssertEqual(counts.max(), 1, "count \(count), \(perThread) parts per thread")
            }
        }
    }
}

/// The contended mode (`clip_pool_note_contention`, ThreadPool.c): workers run in bursts and yield
/// between parts; the caller that waits on a preempted worker's part switches the mode on.
extension ParallelTests {
    /// With the pool contended, parts longer than a worker's burst (and time off the CPU inside a
    /// part, as a preemption) make workers yield and come back: still every part exactly once.
    func testBurstsRunEveryPartOnceWhenContended() {
        let lock = NSLock()
        for threads in [2, 3] {
            for parts in [2, 5, 16, 61] {
                for region in 0..<40 {
                    clip_pool_note_contention()
                    XCTAssertEqual(clip_pool_contended(), 1)
                    var counts = [Int](repeating: 0, count: parts)
                    Parallel.run(parts, threads: threads) { part in
                        if region % 8 == 0 && part % 4 == 1 { usleep(2_500) }   // past a 2 ms burst
                        lock.lock(); counts[part] += 1; lock.unlock()
                    }
                    XCTAssertEqual(counts, [Int](repeating: 1, count: parts), "\(parts) parts, \(threads) threads")
                    if counts != [Int](repeating: 1, count: parts) { return }
                }
            }
        }
    }

    /// A caller that waits on another thread's part far longer than its own parts took (here a
    /// worker's part sleeps 0.2 s, as a preempted one would be off the CPU; the caller's own part
    /// takes at most 50 ms) switches the mode on.
    func testCallerWaitingOnAnotherThreadsPartNotesContention() throws {
        guard ProcessInfo.processInfo.activeProcessorCount >= 2 else { throw XCTSkip("one CPU") }
        let caller = ObjectIdentifier(Thread.current)
        let lock = NSLock()
        for _ in 0..<50 {
            var otherThreadRan = false, started = false
            Parallel.run(2, threads: 2) { part in
                if ObjectIdentifier(Thread.current) == caller {
                    let t0 = Date()   // give the worker its part (up to 50 ms), then return at once
                    while Date().timeIntervalSince(t0) < 0.05 { lock.lock(); let s = started; lock.unlock(); if s { break } }
                } else {
                    lock.lock(); started = true; otherThreadRan = true; lock.unlock()
                    usleep(200_000)
                }
            }
            if otherThreadRan {
                XCTAssertEqual(clip_pool_contended(), 1, "the caller waited ~0.2 s on a worker's part")
                return
            }
        }
        XCTFail("no worker took a part in 50 regions")
    }
}

/// Where the contended pool's workers run (`steer_off_caller`, ThreadPool.c).
extension ParallelTests {
    /// One region of two parts on two threads, the caller's part waiting (up to 50 ms) for a
    /// worker to start the other: where each ran, and how many CPUs the worker might use (nil
    /// when no worker took a part).
    private func placementInOneRegion() -> (caller: Int32, worker: Int32, workerChoices: Int32)? {
        let caller = ObjectIdentifier(Thread.current), lock = NSLock()
        var callerCPU: Int32 = -1, workerCPU: Int32 = -1, workerChoices: Int32 = -1, started = false
        Parallel.run(2, threads: 2) { _ in
            var cpu: Int32 = -1
            let choices = clip_thread_placement(&cpu)
            if ObjectIdentifier(Thread.current) == caller {
                let t0 = Date()
                while Date().timeIntervalSince(t0) < 0.05 { lock.lock(); let s = started; lock.unlock(); if s { break } }
                lock.lock(); callerCPU = cpu; lock.unlock()
            } else {
                lock.lock(); started = true; workerCPU = cpu; workerChoices = choices; lock.unlock()
            }
        }
        return workerChoices < 0 ? nil : (callerCPU, workerCPU, workerChoices)
    }

    /// While contended, a worker on the caller's CPU moves off it (the caller is pinned to the
    /// worker's CPU to make them meet); once the contention has passed, it may run anywhere again.
    func testContendedWorkersKeepOffTheCallersCPUAndMoveFreelyAfter() throws {
        var cpu: Int32 = -1
        let all = clip_thread_placement(&cpu)
        guard all >= 2, all == Int32(ProcessInfo.processInfo.activeProcessorCount) else {
            throw XCTSkip("needs two CPUs and a thread free to use all of them")
        }
        defer { _ = clip_thread_pin(-1) }
        var steered = false
        for _ in 0..<200 where !steered {
            clip_pool_note_contention()
            guard let seen = placementInOneRegion() else { continue }
            if seen.workerChoices == all - 1 {
                // Only steering narrows a worker's CPUs (this process may use all of them).
                XCTAssertNotEqual(seen.worker, seen.caller, "a steered worker ran on the caller's CPU")
                steered = true
            } else if seen.workerChoices == all, seen.worker >= 0 {
                // Not steered yet: bring the caller to the worker's CPU, so that it must move.
                XCTAssertEqual(clip_thread_pin(seen.worker), 0)
            }
        }
        XCTAssertTrue(steered, "the worker never kept off its caller's CPU in 200 contended regions")
        XCTAssertEqual(clip_thread_pin(-1), 0)
        Thread.sleep(forTimeInterval: 0.3)   // the contended mode lasts ~0.2 s after its last sign
        XCTAssertEqual(clip_pool_contended(), 0)
        var freed = false
        for _ in 0..<200 where !freed {
            if let seen = placementInOneRegion() { XCTAssertEqual(seen.workerChoices, all, "still steered after the contention"); freed = true }
        }
        XCTAssertTrue(freed, "no worker took a part in 200 regions")
    }
}

/// A flag one thread sets and another polls (a lock keeps it simple and race-free).
private final class ManagedAtomicFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.lock(); value = true; lock.unlock() }
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
}
