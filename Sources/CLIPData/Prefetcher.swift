import CLIPEngine
import Foundation

/// Items 0..<count made in order on one background thread, at most `ahead` of the consumer, so
/// that decoding the next batch overlaps computing on this one (a DataLoader's prefetch). The
/// training loaders, `embed-image`/`classify`/`preprocess` and evaluation all read through it.
///
/// With `producers` > 1, thread p makes the items whose index ≡ p (mod producers), each thread in
/// increasing order, as PyTorch's DataLoader workers take turns (the webdataset loader: item b is
/// worker b mod workers's next batch, so each worker's state is touched by one thread only).
/// Items are still handed out in index order.
///
/// Memory is bounded by `ahead · producers + 1` items whatever `count` is. `make` may use threads
/// of its own (the image decoders do). An error from `make` is thrown by `next()` for that item, in
/// order; later items are still made.
public final class Prefetcher<Item>: @unchecked Sendable {
    public let count: Int
    private let ahead: Int
    private let producers: Int
    private let make: (Int) throws -> Item

    private let lock = NSCondition()
    private var ready: [Int: Result<Item, Error>] = [:]
    /// Each producer's next index.
    private var nextToProduce: [Int]
    private var nextToConsume: Int
    private var cancelled = false
    private var started = false

    /// - Parameters:
    ///   - start: the first item to make (resuming part way).
    ///   - ahead: how many items per producer may wait, made but not yet taken.
    ///   - producers: background threads (see above).
    public init(count: Int, start: Int = 0, ahead: Int = 2, producers: Int = 1, make: @escaping (Int) throws -> Item) {
        self.count = max(0, count)
        self.ahead = max(1, ahead)
        self.producers = max(1, producers)
        self.make = make
        let first = min(max(0, start), self.count), n = max(1, producers)
        nextToConsume = first
        // Producer p's first index at or after `first`.
        nextToProduce = (0..<n).map { p in first + ((p - first % n) + n) % n }
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
        guard !started else { return }
        started = true
        // A thread holds the prefetcher only while it makes an item or waits a moment, so one
        // dropped before its last item is freed (deinit cancels) and the threads end.
        for p in 0..<producers {
            let thread = Thread { [weak self] in
                while let prefetcher = self, prefetcher.produceOne(p) {}
            }
            thread.name = producers == 1 ? "swiftclip-prefetch" : "swiftclip-prefetch-\(p)"
            thread.start()
        }
    }

    /// Makes producer p's next item if there is room; false when it has nothing left to make.
    private func produceOne(_ p: Int) -> Bool {
        lock.lock()
        if !cancelled && nextToProduce[p] < count && nextToProduce[p] - nextToConsume >= ahead * producers {
            _ = lock.wait(until: Date(timeIntervalSinceNow: 0.2))
            lock.unlock()
            return true
        }
        if cancelled || nextToProduce[p] >= count { lock.unlock(); return false }
        let index = nextToProduce[p]
        nextToProduce[p] += producers
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
    public func batches<Input: PreprocessorInput>(count: Int, batchSize: Int,
                                                  load: @escaping (Int) throws -> Input) -> Prefetcher<Tensor> {
        Prefetcher(count: (count + batchSize - 1) / max(1, batchSize)) { b in
            let start = b * batchSize, end = min(count, start + batchSize)
            return try self.batch(count: end - start) { try load(start + $0) }
        }
    }
}
