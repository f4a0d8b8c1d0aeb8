import CLIPEngine
import Foundation

/// One training batch: images after the training transform, their captions, and which samples
/// they are (indices into the source, in batch order).
public struct TrainingBatch: @unchecked Sendable {
    public let images: Tensor
    public let captions: [String]
    public let indices: [Int]
    /// Samples of this batch that could not be read (left out, so the batch is smaller); index −1
    /// for a problem that is not one sample's (a webdataset shard cut short).
    public let skipped: [(index: Int, message: String)]
    /// Where each sample comes from: its index as text (CSV, synthetic), "SHARD#KEY" (webdataset).
    public let keys: [String]

    public init(images: Tensor, captions: [String], indices: [Int], skipped: [(index: Int, message: String)], keys: [String]? = nil) {
        self.images = images
        self.captions = captions
        self.indices = indices
        self.skipped = skipped
        self.keys = keys ?? indices.map(String.init)
    }
}

/// Where the training loop takes an epoch's batches from (`BatchLoader`, `WebDatasetLoader`).
public protocol TrainingBatchSource: AnyObject {
    /// Batches in the epoch (per rank).
    var batchCount: Int { get }
    /// The next batch, or nil after the last one.
    func next() throws -> TrainingBatch?
    /// Stops background work.
    func cancel()
}

/// open_clip's training data pipeline for one epoch: a fresh seeded shuffle, batches of
/// `batchSize` in that order with the last partial batch dropped (`drop_last=True`), each image
/// decoded and augmented by `workers` threads, and up to `prefetch` batches prepared ahead on a
/// background thread while the trainer computes.
///
/// Deterministic whatever the threads do: the order depends only on (seed, epoch), and each
/// sample's crop is drawn from a generator seeded by (seed, epoch, index), so a run resumed at
/// batch k sees exactly the batches an uninterrupted run would. A sample whose image cannot be
/// read is left out of its batch with a message naming the file (and CSV line); the trainer
/// counts them.
public final class BatchLoader: @unchecked Sendable, TrainingBatchSource {
    public let source: any CaptionedImageSource
    public let transform: TrainTransform
    public let batchSize: Int
    public let order: [Int]
    public var batchCount: Int { order.count / (batchSize * worldSize) }
    private let workers: Int
    private let seed: UInt64, epoch: Int
    private let rank: Int, worldSize: Int

    private var prefetcher: Prefetcher<TrainingBatch>!

    /// - Parameters:
    ///   - startBatch: the first batch to produce (resuming mid-epoch).
    ///   - samples: use only the first `samples` of the shuffled order (`--train-num-samples`).
    ///   - rank, worldSize: data parallel: global batch b is `order[b·B ..< (b+1)·B]` with
    ///     B = batchSize · worldSize, and rank r takes its rows `r·batchSize ..< (r+1)·batchSize`, so
    ///     that W ranks together see exactly the batches one process with batch B sees.
    public init(source: any CaptionedImageSource, transform: TrainTransform, batchSize: Int, seed: UInt64, epoch: Int,
                workers: Int, prefetch: Int = 2, startBatch: Int = 0, samples: Int? = nil, rank: Int = 0, worldSize: Int = 1) throws {
        guard batchSize >= 1 else { throw TensorError.invalidArgument("batch size must be at least 1, got \(batchSize)") }
        guard worldSize >= 1, (0..<worldSize).contains(rank) else { throw TensorError.invalidArgument("rank \(rank) of \(worldSize)") }
        let n = min(samples ?? source.count, source.count)
        guard n >= batchSize * worldSize else {
            throw TensorError.invalidArgument("\(n) training samples make no batch of \(batchSize)"
                + (worldSize > 1 ? " per rank × \(worldSize) ranks" : "") + " (the last partial batch is dropped, as open_clip does)")
        }
        self.source = source
        self.transform = transform
        self.batchSize = batchSize
        self.seed = seed
        self.epoch = epoch
        self.workers = max(1, workers)
        self.rank = rank
        self.worldSize = worldSize
        var rng = SeededGenerator(seed: Self.mix(seed, UInt64(epoch), 0x5348_5546))
        var order = Array(0..<source.count)
        order.shuffle(using: &rng)
        self.order = Array(order.prefix(n))
        prefetcher = Prefetcher(count: self.order.count / (batchSize * worldSize), start: startBatch, ahead: prefetch) { [weak self] in
            guard let self else { throw CancellationError() }
            return try self.makeBatch($0)
        }
    }

    deinit { cancel() }

    /// A seed from three numbers (per-epoch shuffles, per-sample crops, per-rank generators).
    public static func mix(_ a: UInt64, _ b: UInt64, _ c: UInt64) -> UInt64 {
        var g = SeededGenerator(seed: a ^ (b &* 0x9E37_79B9_7F4A_7C15) ^ (c &* 0xC2B2_AE3D_27D4_EB4F))
        return g.next()
    }

    /// The next batch, or nil after the last one.
    public func next() throws -> TrainingBatch? { try prefetcher.next() }

    /// Stops the background thread (the batches not yet taken are dropped).
    public func cancel() { prefetcher.cancel() }

    /// Batch `b` of this epoch, built by `workers` threads.
    public func makeBatch(_ b: Int) throws -> TrainingBatch {
        let first = (b * worldSize + rank) * batchSize
        let indices = Array(order[first..<(first + batchSize)])
        let s = transform.imageSize, sampleCount = 3 * s * s
        let staging = UnsafeMutablePointer<Float>.allocate(capacity: indices.count * sampleCount)
        defer { staging.deallocate() }
        final class Slots: @unchecked Sendable { var failed: [String?]; init(_ n: Int) { failed = Array(repeating: nil, count: n) } }
        let slots = Slots(indices.count)
        let parts = min(workers, indices.count)
        DispatchQueue.concurrentPerform(iterations: parts) { part in
            for slot in stride(from: part, to: indices.count, by: parts) {
                let i = indices[slot]
                do {
                    let image = try source.image(at: i)
                    var rng = SeededGenerator(seed: Self.mix(seed, UInt64(epoch), UInt64(i)))
                    transform.write(image, into: staging + slot * sampleCount, using: &rng)
                } catch {
                    slots.failed[slot] = "\(source.describe(i)): \(error)"
                }
            }
        }
        let kept = indices.indices.filter { slots.failed[$0] == nil }
        let images = Tensor(uninitializedShape: [kept.count, 3, s, s])
        for (row, slot) in kept.enumerated() {
            (images.storage.pointer + row * sampleCount).update(from: staging + slot * sampleCount, count: sampleCount)
        }
        return TrainingBatch(images: images, captions: kept.map { source.caption(at: indices[$0]) },
                             indices: kept.map { indices[$0] },
                             skipped: indices.indices.compactMap { slot in slots.failed[slot].map { (indices[slot], $0) } })
    }
}
