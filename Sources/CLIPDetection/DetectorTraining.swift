import CLIPData
import CLIPEngine
import CLIPNN
import CLIPTraining
import Foundation

/// Trains a `BoxHead` on COCO-format annotations over a frozen CLIP ConvNeXt. The backbone's
/// stage-3/4 features of every training image are computed once and kept (`cacheFeatures`), so
/// each epoch is only the head's passes. Checkpoints are `train`'s: the head's weights (with its
/// config and the `TrainingState` in the metadata) and AdamW's moments, each written atomically;
/// `resume` continues from one.
public final class DetectorTraining {
    public struct Options: Sendable {
        public var epochs = 30
        public var batchSize = 16
        public var lr = 2e-3
        public var weightDecay = 0.05
        public var seed: UInt64 = 0
        public var imageSize = 256
        public var hidden = 256
        /// Train F-VLM's in-vocabulary embedding head too.
        public var embedding = true
        public var lossWeights = DetectionLoss.Weights()
        public init() {}
    }

    /// One training image: its head input rows and targets.
    public struct Sample {
        public let rows: Tensor
        public let targets: [Int: DetectionLoss.Target]
        public let gridWidth: Int, gridHeight: Int
        public let stride: Double
        public init(rows: Tensor, targets: [Int: DetectionLoss.Target], gridWidth: Int, gridHeight: Int, stride: Double) {
            self.rows = rows; self.targets = targets; self.gridWidth = gridWidth; self.gridHeight = gridHeight; self.stride = stride
        }
    }

    /// The categories with a box in `dataset`, in id order: what the embedding head learns.
    public static func vocabulary(of dataset: COCODataset) -> [String] {
        let boxed = Set(dataset.annotations.map(\.category_id))
        return dataset.categories.filter { boxed.contains($0.id) }.sorted { $0.id < $1.id }.map(\.name)
    }

    /// Runs the frozen backbone over every image of `dataset` (files under `images`), stretched to
    /// `imageSize`², and keeps the head's input rows and the assigned targets.
    public static func cacheFeatures(dense: DenseCLIP, dataset: COCODataset, images root: URL, imageSize: Int,
                                     vocabulary: [String], progress: (Int, Int) -> Void = { _, _ in }) throws -> [Sample] {
        let classIndex = Dictionary(uniqueKeysWithValues: vocabulary.enumerated().map { ($1, $0) })
        let names = Dictionary(uniqueKeysWithValues: dataset.categories.map { ($0.id, $0.name) })
        var byImage: [Int: [COCODataset.Annotation]] = [:]
        for a in dataset.annotations { byImage[a.image_id, default: []].append(a) }
        let preprocessor = Preprocessor(imageSize: imageSize)
        var samples: [Sample] = []
        for (i, image) in dataset.images.enumerated() {
            let url = root.appendingPathComponent(image.file_name)
            let decoded = try ImageDecoder.decode(contentsOf: url)
            guard decoded.width == image.width, decoded.height == image.height else {
                throw DetectionError.badFile(url.path, "is \(decoded.width)×\(decoded.height) but the annotations say \(image.width)×\(image.height)")
            }
            let input = try preprocessor.stretched(decoded).reshaped([1, 3, imageSize, imageSize])
            let stages = try dense.stages(input)
            let rows = try BoxHead.inputRows(stage3: stages[2], stage4: stages[3], image: 0)
            let (gh, gw) = (stages[2].shape[1], stages[2].shape[2])
            let stride = Double(imageSize) / Double(gw)
            let sx = Double(imageSize) / Double(image.width), sy = Double(imageSize) / Double(image.height)
            let objects = (byImage[image.id] ?? []).map { a in
                DetectionLoss.Target(box: Box(x0: a.bbox[0], y0: a.bbox[1], x1: a.bbox[0] + a.bbox[2], y1: a.bbox[1] + a.bbox[3]).scaled(x: sx, y: sy),
                                     classIndex: names[a.category_id].flatMap { classIndex[$0] })
            }
            samples.append(Sample(rows: rows, targets: DetectionLoss.assign(objects, gridWidth: gw, gridHeight: gh, stride: stride),
                                  gridWidth: gw, gridHeight: gh, stride: stride))
            progress(i + 1, dataset.images.count)
        }
        return samples
    }

    public let head: BoxHead
    public let optimizer: AdamW
    public let options: Options
    /// Unit text embeddings of the vocabulary, as Float64 rows (the embedding head's classes).
    let texts: [[Double]]
    public private(set) var state: TrainingState
    var rng: SeededGenerator

    /// A new run, or one resumed from `resume` (a checkpoint this class wrote).
    public init(head: BoxHead, texts: Tensor?, options: Options, arguments: [String: String], resume: URL? = nil) throws {
        self.head = head
        self.options = options
        optimizer = AdamW(parameters: head.parameters,
                          settings: .init(lr: options.lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: options.weightDecay))
        if let t = texts {
            let d = t.shape[1]
            let s = t.scalars
            self.texts = (0..<t.shape[0]).map { r in (0..<d).map { Double(s[r * d + $0]) } }
        } else {
            self.texts = []
        }
        rng = SeededGenerator(seed: options.seed)
        state = TrainingState(epoch: 0, batchesDone: 0, step: 0, rng: rng.snapshot, arguments: arguments, checkpointID: UUID().uuidString)
        if let resume {
            guard let saved = try Checkpoint.state(of: resume) else {
                throw DetectionError.badFile(resume.path, "holds no training state (not a train-detector checkpoint)")
            }
            try Checkpoint.restoreOptimizer(optimizer, from: resume, state: saved)
            state = saved
            rng = try SeededGenerator(snapshot: saved.rng)
        }
    }

    /// One epoch over `samples` in a seeded shuffled order; returns the mean loss parts.
    public func epoch(_ samples: [Sample]) throws -> DetectionLoss.Parts {
        guard !samples.isEmpty else { throw DetectionError.invalidArgument("no training images") }
        var order = Array(samples.indices)
        order.shuffle(using: &rng)
        var mean = DetectionLoss.Parts()
        var batches = 0
        for start in stride(from: 0, to: order.count, by: options.batchSize) {
            let batch = order[start..<min(order.count, start + options.batchSize)].map { samples[$0] }
            let parts = try step(batch)
            mean.objectness += parts.objectness; mean.box += parts.box; mean.embedding += parts.embedding; mean.total += parts.total
            mean.positives += parts.positives
            batches += 1
        }
        let n = Double(max(batches, 1))
        mean.objectness /= n; mean.box /= n; mean.embedding /= n; mean.total /= n
        state.epoch += 1
        state.rng = rng.snapshot
        return mean
    }

    /// One optimiser step on a batch (all samples must share one grid).
    public func step(_ batch: [Sample]) throws -> DetectionLoss.Parts {
        guard let first = batch.first, batch.allSatisfy({ $0.gridWidth == first.gridWidth && $0.gridHeight == first.gridHeight }) else {
            throw DetectionError.invalidArgument("a batch needs images of one feature grid")
        }
        let rows = try Tensor.concatenate(rows: batch.map(\.rows))
        let (out, saved) = try head.forward(rows)
        let (parts, grad) = DetectionLoss.loss(outputs: out.scalars.map(Double.init), width: head.outputWidth, targets: batch.map(\.targets),
                                               gridWidth: first.gridWidth, gridHeight: first.gridHeight, stride: first.stride,
                                               texts: texts, scale: head.config.logitScale, weights: options.lossWeights)
        guard parts.total.isFinite else { throw DetectionError.invalidArgument("loss is \(parts.total) at step \(state.step)") }
        for p in head.parameters { p.zeroGrad() }
        try head.backward(try Tensor(shape: out.shape, data: grad.map(Float.init)), saved: saved)
        optimizer.step()
        state.step += 1
        return parts
    }

    /// Writes the head and the optimizer state (atomic; the optimizer file first).
    public func saveCheckpoint(to url: URL) throws {
        state.checkpointID = UUID().uuidString
        try Checkpoint.prepare(weights: head.weights, metadata: head.metadata, optimizer: optimizer, state: state, to: url).write()
    }
}
