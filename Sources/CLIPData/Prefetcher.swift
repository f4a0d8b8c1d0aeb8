import CLIPEngine
import Foundation

/// Items 0..<count made in order on one background thread, at most `ahead` of the consumer, so
/// that decoding the next batch overlaps computing on this one (a DataLoader's prefetch). The
/// training loader, `embed-image`/`classify`/`preprocess` and evaluation all read through it.
///
/// Memory is bounded by `ahead + 1` items whatever `count` is. `make` may use threads of its own
/// (the image decoders do). An error from `make` is thrown by `next()` for that item, in order;
/// later items are still made.
public final class Prefetcher<Item>: @unchecked Sendable {
    public let count: Int
    private let ahead: Int
    private let make: (Int) throws -> Item

    private let lock = NSCondition()
    private var ready: [Int: Result<Item, Error>] = [:]
    private var nextToProduce: Int
    private var nextToConsume: Int
    private var cancelled = false
    private var producer: Thread?

    /// - Parameters:
    ///   - start: the first item to make (resuming part way).
    ///   - ahead: how many items may wait, made but not yet taken.
    public init(count: Int, start: Int = 0, ahead: Int = 2, make: @escaping (Int) throws -> Item) {
        self.count = max(0, count)
        self.ahead = max(1, ahead)
        self.make = make
        nextToProduce = min(max(0, start), self.count)
        nextToConsume = nextToProduce
    }

    deinit { cancel() }

    /// The next item, or nil after the last one.
    public func next() throws -> Item? {
        startIfNeeded()
        lock.lock()
        defer { lock.unlock() }
        guard nextToConsume < count else { return nil }
        while ready[nextToConsume] == nil { lock.wait() }
        let result = ready.removeValue(forKey: nextToConsume)!
        nextToConsume += 1
        lock.broadcast()
        return try result.get()
    }

    /// Stops the background thread after the item it is making; items not yet taken are dropped.
    public func cancel() {
        lock.lock()
        cancelled = true
        lock.broadcast()
        lock.unlock()
    }

    private func startIfNeeded() {
        lock.lock()
        defer { lock.unlock() }
        guard producer == nil else { return }
        // The thread holds the prefetcher only while it makes an item or waits a moment, so one
        // dropped before its last item is freed (deinit cancels) and the thread ends.
        let thread = Thread { [weak self] in
            while let prefetcher = self, prefetcher.produceOne() {}
        }
        thread.name = "swiftclip-prefetch"
        producer = thread
        thread.start()
    }

    /// Makes the next item if there is room; false when there is nothing left to make.
    private func produceOne() -> Bool {
        lock.lock()
        if !cancelled && nextToProduce < count && nextToProduce - nextToConsume >= ahead {
            _ = lock.wait(until: Date(timeIntervalSinceNow: 0.2))
            lock.unlock()
            return true
        }
        if cancelled || nextToProduce >= count { lock.unlock(); return false }
        let index = nextToProduce
        nextToProduce += 1
        lock.unlock()
        let result = Result { try make(index) }
        lock.lock()
        ready[index] = result
        lock.broadcast()
        lock.unlock()
        return true
    }
}

extension Preprocessor {
    /// The eval transform over items 0..<count in batches of `batchSize`, each batch decoded on a
    /// background thread while the previous one is used (evaluation's loader). `load` must be
    /// thread-safe, as every dataset's `image(at:)` is.
    public func batches(count: Int, batchSize: Int, load: @escaping (Int) throws -> RGBImage) -> Prefetcher<Tensor> {
        Prefetcher(count: (count + batchSize - 1) / max(1, batchSize)) { b in
            let start = b * batchSize, end = min(count, start + batchSize)
            return try self.batch(count: end - start) { try load(start + $0) }
        }
    }
}
