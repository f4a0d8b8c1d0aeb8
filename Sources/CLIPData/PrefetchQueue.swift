import Foundation

/// Batches `start..<end` made ahead on `producers` background threads — thread `p` makes the
/// batches whose index ≡ p (mod producers), in order, as PyTorch DataLoader workers do — and
/// handed out in index order. At most `prefetch` batches per producer wait ahead of the consumer.
/// The result does not depend on the threads' timing: each batch is a function of its index
/// (and of its producer's own state, touched only by that producer).
final class PrefetchQueue: @unchecked Sendable {
    private let lock = NSCondition()
    private var ready: [Int: Result<TrainingBatch, Error>] = [:]
    private var nextToConsume: Int
    private let end: Int, producers: Int, prefetch: Int
    private var cancelled = false
    private var threads: [Thread] = []
    private let make: (_ producer: Int, _ index: Int) throws -> TrainingBatch

    init(start: Int, end: Int, producers: Int, prefetch: Int, make: @escaping (_ producer: Int, _ index: Int) throws -> TrainingBatch) {
        nextToConsume = start
        self.end = end
        self.producers = max(1, producers)
        self.prefetch = max(1, prefetch)
        self.make = make
    }

    deinit { cancel() }

    /// The next batch in index order, or nil after the last one; a producer's error is rethrown here.
    func next() throws -> TrainingBatch? {
        startIfNeeded()
        lock.lock()
        defer { lock.unlock() }
        guard nextToConsume < end else { return nil }
        while ready[nextToConsume] == nil { lock.wait() }
        let result = ready.removeValue(forKey: nextToConsume)!
        nextToConsume += 1
        lock.broadcast()
        return try result.get()
    }

    /// Stops the producers (batches not yet taken are dropped).
    func cancel() {
        lock.lock()
        cancelled = true
        lock.broadcast()
        lock.unlock()
    }

    private func startIfNeeded() {
        lock.lock()
        defer { lock.unlock() }
        guard threads.isEmpty else { return }
        let first = nextToConsume
        for p in 0..<producers {
            // This producer's first index at or after `first`.
            let start = first + ((p - first % producers) + producers) % producers
            let thread = Thread { [weak self] in self?.produce(producer: p, from: start) }
            thread.name = "swiftclip-loader-\(p)"
            threads.append(thread)
            thread.start()
        }
    }

    private func produce(producer: Int, from start: Int) {
        var index = start
        while index < end {
            lock.lock()
            while !cancelled && index - nextToConsume >= prefetch * producers { lock.wait() }
            if cancelled { lock.unlock(); return }
            lock.unlock()
            let result = Result { try make(producer, index) }
            lock.lock()
            ready[index] = result
            lock.broadcast()
            let failed = (try? result.get()) == nil
            lock.unlock()
            if failed { return }
            index += producers
        }
    }
}
