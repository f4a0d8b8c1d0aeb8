import Foundation

/// Gathers the items of concurrent requests into forward passes: a worker thread waits for the first
/// request, then up to `maxWait` for more, and runs at most `maxBatch` items at once (a request
/// with more items than that runs alone, split by `run`). Each request gets its own rows back, in
/// order. The queue holds at most `capacity` items; a request that does not fit is refused at once
/// (`queue_full`, 503), and one still queued at its deadline is answered `deadline_exceeded` (504) —
/// a pass already running is not interrupted.
public final class BatchQueue<Item, Row>: @unchecked Sendable {
    public struct Statistics: Sendable { public var passes = 0; public var items = 0 }

    private struct Job {
        let id: UInt64
        let items: [Item]
        let deadline: ContinuousClock.Instant
        let continuation: CheckedContinuation<[Row], Error>
    }

    public let name: String
    public let maxBatch: Int
    public let maxWait: Duration
    public let capacity: Int
    private let run: ([Item]) throws -> [Row]
    private let onPass: (_ batchSize: Int, _ queueDepth: Int, _ seconds: Double) -> Void
    private let condition = NSCondition()
    private var jobs: [Job] = []
    private var queuedItems = 0
    private var nextID: UInt64 = 0
    private var stopped = false
    private var counts = Statistics()
    /// Passes run and items they held so far.
    public var statistics: Statistics { condition.withLock { counts } }

    /// - Parameters:
    ///   - run: one forward pass over `items`, returning one row per item (called on the worker thread).
    ///   - onPass: called after each pass with its size, the items still queued and its duration (metrics).
    public init(name: String, maxBatch: Int, maxWait: Duration, capacity: Int,
         onPass: @escaping (Int, Int, Double) -> Void = { _, _, _ in }, run: @escaping ([Item]) throws -> [Row]) {
        self.name = name
        self.maxBatch = max(1, maxBatch)
        self.maxWait = maxWait
        self.capacity = max(1, capacity)
        self.run = run
        self.onPass = onPass
        let thread = Thread { [unowned self] in self.workerLoop() }
        thread.name = "swiftclip-\(name)-batcher"
        thread.start()
    }

    /// Items waiting for a pass.
    public var depth: Int { condition.lock(); defer { condition.unlock() }; return queuedItems }

    /// Queues `items` and returns their rows once a pass has run them.
    public func submit(_ items: [Item], deadline: ContinuousClock.Instant) async throws -> [Row] {
        guard !items.isEmpty else { return [] }
        let id: UInt64 = condition.withLock { nextID += 1; return nextID }
        let timer = Task { [weak self] in
            try? await Task.sleep(until: deadline, clock: .continuous)
            self?.expire(id)
        }
        defer { timer.cancel() }
        return try await withCheckedThrowingContinuation { continuation in
            condition.lock()
            defer { condition.unlock() }
            if stopped {
                continuation.resume(throwing: APIError(.serviceUnavailable, "shutting_down", "the server is shutting down", retryAfter: 1))
            } else if queuedItems + items.count > capacity {
                continuation.resume(throwing: APIError(.serviceUnavailable, "queue_full",
                    "the \(name) queue holds \(queuedItems) of \(capacity) items; retry later", retryAfter: 1))
            } else {
                jobs.append(Job(id: id, items: items, deadline: deadline, continuation: continuation))
                queuedItems += items.count
                condition.signal()
            }
        }
    }

    /// Answers a job still queued at its deadline.
    private func expire(_ id: UInt64) {
        condition.lock()
        guard let index = jobs.firstIndex(where: { $0.id == id }) else { condition.unlock(); return }
        let job = jobs.remove(at: index)
        queuedItems -= job.items.count
        condition.unlock()
        job.continuation.resume(throwing: deadlineExceeded)
    }

    private var deadlineExceeded: APIError {
        APIError(.gatewayTimeout, "deadline_exceeded", "the request waited past its deadline in the \(name) queue")
    }

    /// Stops the worker once the queue is empty; later submissions are refused.
    public func stop() { condition.withLock { stopped = true; condition.broadcast() } }

    private func workerLoop() {
        while true {
            condition.lock()
            while jobs.isEmpty && !stopped { condition.wait() }
            if jobs.isEmpty && stopped { condition.unlock(); return }
            // Wait up to maxWait after the first request for the batch to fill.
            let until = Date().addingTimeInterval(Double(maxWait.components.attoseconds) / 1e18 + Double(maxWait.components.seconds))
            while queuedItems < maxBatch && !stopped && condition.wait(until: until) {}
            var taken: [Job] = [], count = 0
            let now = ContinuousClock.now
            var expired: [Job] = []
            while let job = jobs.first, taken.isEmpty || count + job.items.count <= maxBatch {
                jobs.removeFirst()
                queuedItems -= job.items.count
                if job.deadline <= now { expired.append(job); continue }
                taken.append(job)
                count += job.items.count
            }
            let depth = queuedItems
            condition.unlock()
            for job in expired { job.continuation.resume(throwing: deadlineExceeded) }
            guard !taken.isEmpty else { continue }
            let started = ContinuousClock.now
            let result = Result { try run(taken.flatMap(\.items)) }
            let elapsed = (ContinuousClock.now - started).components
            condition.withLock { counts.passes += 1; counts.items += count }
            onPass(count, depth, Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18)
            switch result {
            case .success(let rows) where rows.count == count:
                var start = 0
                for job in taken {
                    job.continuation.resume(returning: Array(rows[start..<(start + job.items.count)]))
                    start += job.items.count
                }
            case .success(let rows):
                let e = APIError(.internalServerError, "internal", "\(name) pass returned \(rows.count) rows for \(count) items")
                for job in taken { job.continuation.resume(throwing: e) }
            case .failure(let error):
                for job in taken { job.continuation.resume(throwing: error) }
            }
        }
    }
}
