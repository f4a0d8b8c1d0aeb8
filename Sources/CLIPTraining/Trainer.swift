import CLIPDistributed
import CLIPEngine
import CLIPModels
import CLIPNN
import Foundation

/// One training step as open_clip_train's `train_one_epoch` does it (accum_freq 1): learning rate
/// from the schedule, zero_grad, model forward (normalised features, exp(logit_scale)), ClipLoss,
/// backward, optional clip_grad_norm_, AdamW step, logit_scale clamped to [0, ln 100].
public final class CLIPTrainer {
    public let model: CLIPModel
    public let optimizer: AdamW
    public var schedule: LearningRateSchedule
    public var gradClipNorm: Double?
    /// open_clip's `--grad-checkpointing`: blocks keep only their input and are recomputed in backward.
    public var gradCheckpointing = false
    /// Runs right before the optimizer changes the weights and moments: `swiftclip train` waits
    /// there for a checkpoint still being written from them (`TrainingRun.saveCheckpoint`).
    public var beforeUpdate: (() throws -> Void)?
    /// Steps taken so far (the schedule's step; set when resuming).
    public var step = 0
    /// Draws stochastic-depth masks.
    public var rng: SeededGenerator

    /// Data parallel (`enableDataParallel`): the job, open_clip's `--gather-with-grad` and
    /// `--local-loss`, and the gradient allreduce.
    public private(set) var communicator = Communicator.single
    public private(set) var gatherWithGrad = false, localLoss = false
    public private(set) var allreduce: GradientAllreduce?
    /// Pairs in the last step's global batch (all ranks together).
    public private(set) var lastGlobalBatch = 0

    public struct StepResult {
        public let loss: Double, learningRate: Double, gradNorm: Double?
        /// Pairs in the step's global batch (all ranks' micro-batches).
        public let samples: Int
    }

    public init(model: CLIPModel, settings: AdamW.Settings, schedule: LearningRateSchedule, gradClipNorm: Double? = nil, seed: UInt64 = 0) {
        self.rng = SeededGenerator(seed: seed)
        self.model = model
        self.optimizer = AdamW(parameters: model.parameters.parameters, settings: settings)
        self.schedule = schedule
        self.gradClipNorm = gradClipNorm
    }

    /// `--lock-image` as open_clip's `lock_image_tower()` (unlocked_groups 0): a timm tower freezes
    /// its trunk (`visual.trunk.*`; the projection head still trains), a ViT freezes everything.
    public func lockImageTower(_ locked: Bool = true) {
        if case .timm = model.config.vision {
            model.parameters.freeze(under: "visual.trunk.", locked)
        } else {
            model.parameters.freeze(under: "visual.", locked)
        }
    }

    /// `--lock-text` as open_clip's `lock_text_tower()` (unlocked_layers 0): every text parameter
    /// (embeddings, transformer, ln_final, text_projection); logit_scale still trains.
    public func lockTextTower(_ locked: Bool = true) {
        for p in model.parameters.parameters where !p.key.hasPrefix("visual.") && p.key != "logit_scale" { p.isFrozen = locked }
    }

    /// Makes the steps data parallel over `communicator` (call after locking towers: frozen
    /// parameters are left out of the allreduce). The loss is open_clip's ClipLoss over the global
    /// batch with all-gathered features (`DistributedClipLoss`); gradients are averaged over ranks.
    public func enableDataParallel(communicator: Communicator, gatherWithGrad: Bool, localLoss: Bool,
                                   bucketBytes: Int = GradientAllreduce.defaultBucketBytes) {
        self.communicator = communicator
        self.gatherWithGrad = gatherWithGrad
        self.localLoss = localLoss
        guard communicator.size > 1 else { allreduce = nil; return }
        let reducer = GradientAllreduce(parameters: model.parameters.parameters, communicator: communicator, bucketBytes: bucketBytes)
        allreduce = reducer
        for p in model.parameters.parameters { p.onGradientAccess = { [weak reducer] in reducer?.progress() } }
    }

    /// The loss and every parameter's gradient at the current values (gradients are zeroed first).
    /// Data parallel: the loss over the global batch, and this rank's gradients before averaging.
    public func lossAndGradients(images: Tensor, tokens: [[Int]]) throws -> Double {
        OpProfiler.measure("zero_grad") { model.parameters.zeroGrad() }
        let (image, text, saved) = try model.forwardForTraining(images: images, tokens: tokens, checkpointing: gradCheckpointing, rng: &rng)
        // The packed weights are rebuilt by the next forward (the optimizer changes the weights)
        // and backward does not read them: free them before backward's peak (fp32 convnext_v2_tiny:
        // ~250 MB). Not with checkpointing, whose backward reruns the blocks' forward.
        if !gradCheckpointing { for p in model.parameters.parameters where !p.isFrozen { p.dropDerivedForms() } }
        let (imageN, textN) = (Ops.l2Normalize(image), Ops.l2Normalize(text))
        let loss: Double, dImage: Tensor, dText: Tensor, dScale: Double
        if communicator.size > 1 {
            let r = try OpProfiler.measure("ClipLoss") {
                try DistributedClipLoss.compute(image: imageN, text: textN, logitScale: model.logitScale, communicator: communicator,
                                                gatherWithGrad: gatherWithGrad, localLoss: localLoss)
            }
            (loss, dImage, dText, dScale, lastGlobalBatch) = (r.loss, r.dImage, r.dText, r.dLogitScale, r.globalBatch)
        } else {
            let r = try OpProfiler.measure("ClipLoss") { try ClipLoss.compute(image: imageN, text: textN, logitScale: model.logitScale) }
            (loss, dImage, dText, dScale, lastGlobalBatch) = (r.loss, r.dImage, r.dText, r.dLogitScale, imageN.shape[0])
        }
        if let g = model.logitScaleParameter.gradPointer() { g[0] += Float(dScale) }
        try model.backward(image: try Ops.l2NormalizeBackward(dImage, input: image),
                           text: try Ops.l2NormalizeBackward(dText, input: text), saved: saved,
                           afterText: { [allreduce] in try allreduce?.startEarlyBuckets() })
        return loss
    }

    /// Gradients with open_clip_train's `--accum-freq` semantics over `microBatches`: the features
    /// of every micro-batch are first computed without keeping activations; then, for each
    /// micro-batch j in turn, its towers run again keeping activations, the loss is taken over the
    /// whole accumulated batch (fresh features in j's rows, cached ones elsewhere) and only j's
    /// rows are backpropagated. logit_scale receives the gradient of each of these losses, as in
    /// open_clip (accum_freq times the full-batch one). Returns the last micro-batch's loss (what
    /// open_clip logs).
    public func accumulatedLossAndGradients(_ microBatches: [(images: Tensor, tokens: [[Int]])]) throws -> Double {
        guard !microBatches.isEmpty else { throw TensorError.invalidArgument("no micro-batches to accumulate") }
        if microBatches.count == 1 { return try lossAndGradients(images: microBatches[0].images, tokens: microBatches[0].tokens) }
        guard communicator.size == 1 else {
            throw TensorError.invalidArgument("--accum-freq above 1 is not implemented for data-parallel (MPI) training yet")
        }
        model.parameters.zeroGrad()
        var cachedImage: [Tensor] = [], cachedText: [Tensor] = []
        let stochastic = ((model.visual as? TimmImageTower)?.dropPath ?? 0) > 0
        for batch in microBatches {
            // The inference path keeps nothing; a tower with stochastic depth takes the training path
            // instead, drawing masks as open_clip's no_grad pass (in train mode) does.
            let image = stochastic ? try model.visual.forwardForTraining(batch.images, rng: &rng).output
                                   : try model.encodeImage(batch.images)
            cachedImage.append(Ops.l2Normalize(image))
            cachedText.append(Ops.l2Normalize(try model.encodeText(batch.tokens)))
        }
        var last = 0.0
        for (j, batch) in microBatches.enumerated() {
            let (image, text, saved) = try model.forwardForTraining(images: batch.images, tokens: batch.tokens, checkpointing: gradCheckpointing, rng: &rng)
            var images = cachedImage, texts = cachedText
            images[j] = Ops.l2Normalize(image)
            texts[j] = Ops.l2Normalize(text)
            let loss = try ClipLoss.compute(image: Tensor.concatenate(rows: images), text: Tensor.concatenate(rows: texts),
                                            logitScale: model.logitScale)
            if let g = model.logitScaleParameter.gradPointer() { g[0] += Float(loss.dLogitScale) }
            let offset = images[..<j].reduce(0) { $0 + $1.shape[0] }, rows = images[j].shape[0]
            try model.backward(image: Ops.l2NormalizeBackward(loss.dImage.slice(rows: offset..<offset + rows), input: image),
                               text: Ops.l2NormalizeBackward(loss.dText.slice(rows: offset..<offset + rows), input: text), saved: saved)
            last = loss.loss
        }
        lastGlobalBatch = microBatches.reduce(0) { $0 + $1.images.shape[0] }
        return last
    }

    /// One optimiser step on one batch.
    @discardableResult
    public func step(images: Tensor, tokens: [[Int]]) throws -> StepResult {
        try step(microBatches: [(images, tokens)])
    }

    /// One optimiser step over `microBatches` (`--accum-freq` = their count).
    @discardableResult
    public func step(microBatches: [(images: Tensor, tokens: [[Int]])]) throws -> StepResult {
        let lr = schedule.learningRate(at: step)
        optimizer.settings.lr = lr
        optimizer.reserveState()   // no-op once every trainable parameter has its moments
        let loss = try accumulatedLossAndGradients(microBatches)
        try allreduce?.finish()
        let norm = gradClipNorm.map { clipGradNorm(model.parameters.parameters, maxNorm: $0) }
        try beforeUpdate?()
        optimizer.step()
        model.logitScaleParameter.updateValue { $0[0] = min(max($0[0], 0), Float(Foundation.log(100.0))) }
        step += 1
        return StepResult(loss: loss, learningRate: lr, gradNorm: norm, samples: lastGlobalBatch)
    }
}
