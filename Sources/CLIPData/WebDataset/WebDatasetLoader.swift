import CLIPEngine
import Foundation

/// One webdataset sample as img2dataset writes it: the tar members `KEY.EXT` sharing a key,
/// grouped as webdataset's `group_by_keys` does (consecutive members; the key is the name up to
/// the first dot of its last component, the extension the rest, lower-cased).
public struct WebDatasetSample: Sendable {
    public let shard: String
    public let key: String
    /// The image member's bytes and extension (`jpg`, `png`, `jpeg`, `webp`: open_clip's order).
    public let image: Data
    public let imageExtension: String
    public let caption: String

    /// What seeds this sample's crop: the key as a number when it is one (img2dataset's keys are;
    /// make-shards writes the CSV row), otherwise the FNV-1a hash of the key. So a shard made
    /// from a CSV gives each sample the crop it gets when training from the CSV.
    public var cropID: UInt64 {
        if !key.isEmpty, key.utf8.count <= 18, key.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let n = UInt64(key) { return n }
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in key.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        return h
    }

    public static let imageExtensions = ["jpg", "png", "jpeg", "webp"]
}

/// Reads samples from shards one after another, streaming each (`TarReader`). Problems never
/// stop it: a member that cannot be read ends its shard, an incomplete sample is dropped, and each
/// becomes a message naming the shard and the key, appended to `messages`.
public struct WebDatasetSampleReader {
    /// Warnings since the caller last emptied it.
    public var messages: [String] = []
    private var reader: TarReader?
    private var pending: (key: String, ext: String, data: Data)?

    public init() {}

    /// Splits a member name into (key, extension) as webdataset's `base_plus_ext`; nil without a dot.
    public static func split(_ name: String) -> (key: String, ext: String)? {
        let slash = name.lastIndex(of: "/").map { name.index(after: $0) } ?? name.startIndex
        guard let dot = name[slash...].firstIndex(of: "."), dot > slash else { return nil }
        return (String(name[..<dot]), String(name[name.index(after: dot)...]).lowercased())
    }

    /// The next complete sample, opening shards from `nextShard` as needed; nil when it has none left.
    public mutating func next(nextShard: () -> String?) -> WebDatasetSample? {
        while true {
            if reader == nil {
                guard let shard = nextShard() else { return nil }
                do { reader = try TarReader(path: shard) } catch {
                    messages.append("\(error); shard skipped")
                    continue
                }
                pending = nil
            }
            let shard = reader!.path
            var members: [String: Data] = [:]
            var key: String?
            var duplicate: String?
            if let p = pending { key = p.key; members[p.ext] = p.data; pending = nil }
            while true {
                let member: TarMember?
                do { member = try reader!.next() } catch {
                    // The group read so far is whole unless the member cut short is one of its own.
                    let own = (error as? TarError)?.member.flatMap(Self.split)?.key == key && key != nil
                    messages.append("\(error); the rest of the shard is skipped" + (own ? " (sample \(key!) dropped)" : ""))
                    if own { key = nil }
                    member = nil
                }
                guard let m = member else {
                    for (name, size) in reader!.oversized { messages.append("\(shard): member \(name) (\(size) bytes) is too large; skipped") }
                    reader = nil
                    break
                }
                guard let (k, ext) = Self.split(m.name) else { continue }
                if key == nil { key = k }
                if k != key { pending = (k, ext, m.data); break }
                if members[ext] != nil { duplicate = "\(k).\(ext)" }
                members[ext] = m.data
            }
            guard let k = key else { continue }
            if let duplicate {
                messages.append("\(shard): sample \(k): member \(duplicate) appears twice; sample skipped")
                continue
            }
            guard let ext = WebDatasetSample.imageExtensions.first(where: { members[$0] != nil }) else {
                messages.append("\(shard): sample \(k) has no image (\(WebDatasetSample.imageExtensions.joined(separator: "/"))) among its members "
                                + members.keys.sorted().map { "\(k).\($0)" }.joined(separator: ", ") + "; skipped")
                continue
            }
            guard let text = members["txt"] else {
                messages.append("\(shard): sample \(k) has no caption (\(k).txt); skipped")
                continue
            }
            guard let caption = String(data: text, encoding: .utf8) else {
                messages.append("\(shard): sample \(k): \(k).txt is not UTF-8 text; skipped")
                continue
            }
            return WebDatasetSample(shard: shard, key: k, image: members[ext]!, imageExtension: ext, caption: caption)
        }
    }
}

/// open_clip's webdataset pipeline (`get_wds_dataset`) for one rank and one epoch:
///
/// - shards reshuffled from (seed, epoch), split across ranks (`split_by_node`) and then across
///   the `workers` loader threads (`split_by_worker`); each worker cycles through its shards until
///   it has made its batches. With `resampled` (`--dataset-resampled`), each worker instead draws
///   shards with replacement from all of them, seeded by (seed, epoch, rank, worker).
/// - samples pass a shuffle buffer seeded per (seed, epoch, rank, worker): the first sample leaves
///   once `initial` are in it, and it then grows by one per sample to `size` (open_clip's 5000 /
///   1000, `_SAMPLE_SHUFFLE_SIZE` / `_SAMPLE_SHUFFLE_INITIAL`);
/// - batches of `batchSize` samples; batch b comes from worker b mod workers, as PyTorch's
///   DataLoader interleaves its workers, each on its own thread. An image that does not decode is
///   left out of its batch (a message naming shard and key), so the batch is smaller, as with CSV.
///   Each crop is seeded by (seed, epoch, `cropID`).
///
/// `batchCount` batches (per rank) make the epoch, as open_clip's `with_epoch`. Resuming at batch
/// k replays the first k batches' samples without decoding them, so it sees exactly what an
/// uninterrupted run would.
public final class WebDatasetLoader: @unchecked Sendable, TrainingBatchSource {
    public let shards: [String]
    public let transform: TrainTransform
    public let batchSize: Int
    public let batchCount: Int
    public let workers: Int
    private let seed: UInt64, epoch: Int
    private var streams: [Stream] = []
    private var prefetcher: Prefetcher<TrainingBatch>!

    public static let defaultBuffer = (size: 5000, initial: 1000)

    /// Batches per rank per epoch as open_clip computes them: ceil(samples / global batch),
    /// rounded up to a multiple of the workers.
    public static func batchesPerEpoch(samples: Int, batchSize: Int, worldSize: Int, workers: Int) -> Int {
        let global = batchSize * worldSize
        let batches = (samples + global - 1) / global
        let perWorker = (batches + workers - 1) / workers
        return perWorker * workers
    }

    public init(shards: [String], transform: TrainTransform, batchSize: Int, seed: UInt64, epoch: Int, batchCount: Int,
                workers: Int, rank: Int = 0, worldSize: Int = 1, resampled: Bool = false,
                buffer: (size: Int, initial: Int) = WebDatasetLoader.defaultBuffer, prefetch: Int = 2, startBatch: Int = 0) throws {
        let workers = max(1, workers)
        guard batchSize >= 1, batchCount >= 0, worldSize >= 1, (0..<worldSize).contains(rank) else {
            throw TensorError.invalidArgument("webdataset: batch size \(batchSize), \(batchCount) batches, rank \(rank) of \(worldSize)")
        }
        guard !shards.isEmpty else { throw TensorError.invalidArgument("webdataset: no shards") }
        if !resampled && shards.count < workers * worldSize {
            throw TensorError.invalidArgument("webdataset: \(shards.count) shard(s) for \(workers) worker(s) × \(worldSize) rank(s): "
                + "each needs at least one (use fewer --workers, more shards, or --dataset-resampled)")
        }
        self.shards = shards
        self.transform = transform
        self.batchSize = batchSize
        self.batchCount = batchCount
        self.workers = workers
        self.seed = seed
        self.epoch = epoch
        var order = shards
        var shardRNG = SeededGenerator(seed: BatchLoader.mix(seed, UInt64(epoch), 0x5348_5244))
        order.shuffle(using: &shardRNG)
        let mine = stride(from: rank, to: order.count, by: worldSize).map { order[$0] }
        for w in 0..<workers {
            let streamSeed = BatchLoader.mix(seed, UInt64(epoch), UInt64(rank) << 32 | UInt64(w) << 8 | 0x57)
            let assigned = resampled ? shards : stride(from: w, to: mine.count, by: workers).map { mine[$0] }
            streams.append(Stream(shards: assigned, resampled: resampled, seed: streamSeed,
                                  buffer: (max(1, buffer.size), max(1, min(buffer.initial, buffer.size)))))
        }
        let first = max(0, startBatch)
        // Replay: each worker takes (without decoding) the samples of its batches before `first`.
        for (w, s) in streams.enumerated() {
            for _ in 0..<max(0, (first - w + workers - 1) / workers) { _ = try s.take(batchSize) }
            s.reader.messages.removeAll()
        }
        // Batch b is worker (b mod workers)'s; Prefetcher's producer p makes exactly those.
        prefetcher = Prefetcher(count: batchCount, start: first, ahead: prefetch, producers: workers) { [weak self] b in
            guard let self else { throw CancellationError() }
            return try self.makeBatch(stream: self.streams[b % self.workers], index: b)
        }
    }

    deinit { cancel() }

    public func next() throws -> TrainingBatch? { try prefetcher.next() }
    public func cancel() { prefetcher?.cancel() }

    func makeBatch(stream: Stream, index: Int) throws -> TrainingBatch {
        let samples = try stream.take(batchSize)
        let s = transform.imageSize, sampleCount = 3 * s * s
        var kept: [(sample: WebDatasetSample, position: Int)] = []
        let staging = UnsafeMutablePointer<Float>.allocate(capacity: samples.count * sampleCount)
        defer { staging.deallocate() }
        var skipped = stream.reader.messages.map { (index: -1, message: $0) }
        stream.reader.messages.removeAll()
        for (i, sample) in samples.enumerated() {
            do {
                let image = try ImageDecoder.decode(sample.image, name: "\(sample.key).\(sample.imageExtension)")
                var rng = SeededGenerator(seed: BatchLoader.mix(seed, UInt64(epoch), sample.cropID))
                transform.write(image, into: staging + kept.count * sampleCount, using: &rng)
                kept.append((sample, index * batchSize + i))
            } catch {
                skipped.append((index * batchSize + i, "\(sample.shard): sample \(sample.key) (\(sample.key).\(sample.imageExtension)): \(error)"))
            }
        }
        let images = Tensor(uninitializedShape: [kept.count, 3, s, s])
        if !kept.isEmpty { images.storage.pointer.update(from: staging, count: kept.count * sampleCount) }
        return TrainingBatch(images: images, captions: kept.map(\.sample.caption), indices: kept.map(\.position), skipped: skipped,
                             keys: kept.map { "\($0.sample.shard)#\($0.sample.key)" })
    }

    /// One worker's samples: its shards (in order, cycling; or drawn at random) through the
    /// shuffle buffer. Touched only by its producer thread (and by `init` before that starts).
    final class Stream: @unchecked Sendable {
        let shards: [String]
        let resampled: Bool
        var reader = WebDatasetSampleReader()
        var rng: SeededGenerator
        let buffer: (size: Int, initial: Int)
        var pool: [WebDatasetSample] = []
        var taken = 0
        var exhausted = false
        private var opened = 0, openedAtLastSample = 0
        private var passEnded = false, samplesThisPass = 0

        init(shards: [String], resampled: Bool, seed: UInt64, buffer: (size: Int, initial: Int)) {
            self.shards = shards
            self.resampled = resampled
            self.rng = SeededGenerator(seed: seed)
            self.buffer = buffer
        }

        /// The next shard to open; nil at the end of a pass over this worker's shards (or, when
        /// resampling, after many draws in a row without one sample: the shards hold none).
        private func nextShard() -> String? {
            if resampled {
                if opened - openedAtLastSample > 4 * shards.count + 16 { return nil }
                opened += 1
                return shards[Int(rng.next() % UInt64(shards.count))]
            }
            guard opened < shards.count else { passEnded = true; return nil }
            defer { opened += 1 }
            return shards[opened]
        }

        /// The next `count` samples out of the shuffle buffer. As webdataset's pipeline repeated
        /// by `with_epoch`, each pass over the shards drains its buffer before the next pass begins.
        func take(_ count: Int) throws -> [WebDatasetSample] {
            var out: [WebDatasetSample] = []
            while out.count < count {
                let target = min(buffer.size, buffer.initial + taken)
                while !passEnded && pool.count < target {
                    guard let s = reader.next(nextShard: nextShard) else { passEnded = true; break }
                    samplesThisPass += 1
                    openedAtLastSample = opened
                    pool.append(s)
                }
                if pool.isEmpty {
                    guard !resampled && samplesThisPass > 0 else {
                        throw DatasetError.malformed(file: shards.prefix(3).joined(separator: ", ") + (shards.count > 3 ? ", …" : ""),
                                                     message: "no readable webdataset samples in these shards"
                                                        + (reader.messages.isEmpty ? "" : " (" + reader.messages.joined(separator: "; ") + ")"))
                    }
                    // The next pass over the same shards.
                    opened = 0
                    passEnded = false
                    samplesThisPass = 0
                    continue
                }
                let k = Int(rng.next() % UInt64(pool.count))
                pool.swapAt(k, pool.count - 1)
                out.append(pool.removeLast())
                taken += 1
            }
            return out
        }
    }
}
