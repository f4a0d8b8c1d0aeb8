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
    /// Steps taken so far (the schedule's step).
    public private(set) var step = 0

    public struct StepResult {
        public let loss: Double, learningRate: Double, gradNorm: Double?
    }

    public init(model: CLIPModel, settings: AdamW.Settings, schedule: LearningRateSchedule, gradClipNorm: Double? = nil) {
        self.model = model
        self.optimizer = AdamW(parameters: model.parameters.parameters, settings: settings)
        self.schedule = schedule
        self.gradClipNorm = gradClipNorm
    }

    /// `--lock-image` / `--lock-text`: freeze a tower (no gradients, no updates).
    public func lockImageTower(_ locked: Bool = true) { model.parameters.freeze(under: "visual.", locked) }
    public func lockTextTower(_ locked: Bool = true) {
        for p in model.parameters.parameters where !p.key.hasPrefix("visual.") && p.key != "logit_scale" { p.isFrozen = locked }
    }

    /// The loss and every parameter's gradient at the current values (gradients are zeroed first).
    public func lossAndGradients(images: Tensor, tokens: [[Int]]) throws -> Double {
        model.parameters.zeroGrad()
        let (image, text, saved) = try model.forwardForTraining(images: images, tokens: tokens)
        let (imageN, textN) = (Ops.l2Normalize(image), Ops.l2Normalize(text))
        let loss = try ClipLoss.compute(image: imageN, text: textN, logitScale: model.logitScale)
        if let g = model.logitScaleParameter.gradPointer() { g[0] += Float(loss.dLogitScale) }
        try model.backward(image: try Ops.l2NormalizeBackward(loss.dImage, input: image),
                           text: try Ops.l2NormalizeBackward(loss.dText, input: text), saved: saved)
        return loss.loss
    }

    /// One optimiser step on one batch.
    @discardableResult
    public func step(images: Tensor, tokens: [[Int]]) throws -> StepResult {
        let lr = schedule.learningRate(at: step)
        optimizer.settings.lr = lr
        let loss = try lossAndGradients(images: images, tokens: tokens)
        let norm = gradClipNorm.map { clipGradNorm(model.parameters.parameters, maxNorm: $0) }
        optimizer.step()
        model.logitScaleParameter.updateValue { $0[0] = min(max($0[0], 0), Float(Foundation.log(100.0))) }
        step += 1
        return StepResult(loss: loss, learningRate: lr, gradNorm: norm)
    }
}
