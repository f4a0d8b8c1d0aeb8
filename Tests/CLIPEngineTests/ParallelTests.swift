import XCTest
import Foundation
import CLIPEngine

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

/// A flag one thread sets and another polls (a lock keeps it simple and race-free).
private final class ManagedAtomicFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.lock(); value = true; lock.unlock() }
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
}
