import CLIPServer
import Foundation
import XCTest

/// The queue's rules without a model: rows go back to their own requests, a full queue refuses at
/// once (503), a request still queued at its deadline gets 504.
final class BatchQueueTests: XCTestCase {
    func testConcurrentRequestsShareAPassAndGetTheirOwnRows() async throws {
        let queue = BatchQueue<Int, Int>(name: "test", maxBatch: 64, maxWait: .milliseconds(300), capacity: 1000) { items in items.map { $0 * 10 } }
        let deadline = ContinuousClock.now + .seconds(60)
        let results = try await withThrowingTaskGroup(of: (Int, [Int]).self) { group in
            for r in 0..<8 { group.addTask { (r, try await queue.submit([r * 100, r * 100 + 1, r * 100 + 2], deadline: deadline)) } }
            var all: [Int: [Int]] = [:]
            for try await (r, rows) in group { all[r] = rows }
            return all
        }
        for r in 0..<8 { XCTAssertEqual(results[r], [r * 1000, r * 1000 + 10, r * 1000 + 20]) }
        XCTAssertEqual(queue.statistics.items, 24)
        XCTAssertLessThan(queue.statistics.passes, 8, "eight requests within the wait should share passes")
        queue.stop()
    }

    func testFullQueueIsRefusedAndQueuedRequestsMeetTheirDeadline() async throws {
        let gate = DispatchSemaphore(value: 0), started = DispatchSemaphore(value: 0)
        let queue = BatchQueue<Int, Int>(name: "test", maxBatch: 1, maxWait: .zero, capacity: 1) { items in
            started.signal(); gate.wait(); return items
        }
        let far = ContinuousClock.now + .seconds(60)
        // The first request is taken by the worker, which blocks in its pass.
        let first = Task { try await queue.submit([1], deadline: far) }
        await Task.detached { started.wait() }.value
        // The second waits in the queue (capacity 1) with a short deadline.
        let second = Task { try await queue.submit([2], deadline: .now + .milliseconds(200)) }
        while queue.depth == 0 { try await Task.sleep(for: .milliseconds(5)) }
        do {
            _ = try await queue.submit([3], deadline: far)
            XCTFail("a full queue accepted a request")
        } catch let e as APIError {
            XCTAssertEqual(e.status.code, 503); XCTAssertEqual(e.code, "queue_full"); XCTAssertEqual(e.retryAfter, 1)
        }
        do {
            _ = try await second.value
            XCTFail("a request past its deadline got rows")
        } catch let e as APIError {
            XCTAssertEqual(e.status.code, 504); XCTAssertEqual(e.code, "deadline_exceeded")
        }
        gate.signal()
        let firstRows = try await first.value
        XCTAssertEqual(firstRows, [1])
        queue.stop()
    }
}
