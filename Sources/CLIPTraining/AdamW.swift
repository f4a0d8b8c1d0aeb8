import CLIPEngine
import CLIPNN
import Foundation

/// `torch.optim.AdamW` (decoupled weight decay, bias-corrected moments, fp32 state) over
/// open_clip_train's two parameter groups.
public final class AdamW {
    public struct Settings: Equatable, Sendable {
        public var lr: Double, beta1: Double, beta2: Double, eps: Double, weightDecay: Double

        public init(lr: Double, beta1: Double, beta2: Double, eps: Double, weightDecay: Double) {
            self.lr = lr; self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
        }

        /// open_clip_train's `get_default_params(model_name)` and `--wd` default 0.2: lr 5e-4,
        /// beta1 0.9, and beta2 0.98 / eps 1e-6 when the name contains "vit" (any case), else
        /// beta2 0.999 / eps 1e-8.
        public static func openCLIPDefaults(modelName: String) -> Settings {
            modelName.lowercased().contains("vit")
                ? Settings(lr: 5e-4, beta1: 0.9, beta2: 0.98, eps: 1e-6, weightDecay: 0.2)
                : Settings(lr: 5e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.2)
        }
    }

    /// open_clip_train.main's `exclude`: no weight decay for parameters with fewer than 2
    /// dimensions or whose name contains "bn", "ln", "bias" or "logit_scale".
    public static func excludedFromWeightDecay(_ p: Parameter) -> Bool {
        let n = p.key
        return p.shape.count < 2 || n.contains("bn") || n.contains("ln") || n.contains("bias") || n.contains("logit_scale")
    }

    public var settings: Settings
    public let parameters: [Parameter]
    /// torch's per-parameter state: exp_avg, exp_avg_sq (fp32, owned here only) and the step count.
    final class Moments {
        let m: Tensor, v: Tensor
        var step = 0
        init(count: Int) { m = Tensor(zeros: [count]); v = Tensor(zeros: [count]) }
    }
    private var state: [ObjectIdentifier: Moments] = [:]
    /// Zeroed moments made ahead of a parameter's first update (`reserveState`), not yet state:
    /// torch creates a parameter's state at its first step with a gradient, and so does `update`.
    private var reserved: [ObjectIdentifier: Moments] = [:]

    public init(parameters: [Parameter], settings: Settings) {
        self.parameters = parameters
        self.settings = settings
    }

    /// The moments as tensors keyed `exp_avg.KEY` / `exp_avg_sq.KEY`, and each parameter's step
    /// count (torch's `optimizer.state_dict()`, keyed by name instead of position).
    public func exportState() -> (tensors: [String: Tensor], steps: [String: Int]) {
        var tensors: [String: Tensor] = [:], steps: [String: Int] = [:]
        for p in parameters {
            guard let s = state[ObjectIdentifier(p)] else { continue }
            tensors["exp_avg." + p.key] = try! s.m.reshaped(p.shape)
            tensors["exp_avg_sq." + p.key] = try! s.v.reshaped(p.shape)
            steps[p.key] = s.step
        }
        return (tensors, steps)
    }

    /// Restores `exportState()`'s output; every tensor must belong to a parameter, with its shape.
    public func importState(tensors: [String: Tensor], steps: [String: Int], source: String) throws {
        let byKey = Dictionary(uniqueKeysWithValues: parameters.map { ($0.key, $0) })
        var restored: [ObjectIdentifier: Moments] = [:]
        for (key, step) in steps {
            guard let p = byKey[key] else {
                throw WeightError.unreadable(key: key, source: source, reason: "optimizer state for a parameter the model does not have")
            }
            guard let m = tensors["exp_avg." + key], let v = tensors["exp_avg_sq." + key] else {
                throw WeightError.missingKey("exp_avg(_sq)." + key, source: source)
            }
            guard m.shape == p.shape, v.shape == p.shape else {
                throw WeightError.shapeMismatch(key: "exp_avg." + key, expected: p.shape, found: m.shape, source: source)
            }
            let moments = Moments(count: p.count)
            moments.m.storage.pointer.update(from: m.storage.pointer, count: p.count)
            moments.v.storage.pointer.update(from: v.storage.pointer, count: p.count)
            moments.step = step
            restored[ObjectIdentifier(p)] = moments
        }
        state = restored
        reserved = [:]
    }

    /// Allocates the moments of every unfrozen parameter without state now, before the first
    /// forward pass, instead of after the first backward. The memory is needed from the first
    /// step on either way; allocated late, it displaced the first step's activations from the
    /// large-buffer cache, and the next two steps faulted them in again (11.3, 9.6, 8.8 s, then
    /// 6.6 s per step at batch 32). Changes no result: state still begins at the first update.
    public func reserveState() {
        for p in parameters where !p.isFrozen {
            let id = ObjectIdentifier(p)
            if state[id] == nil && reserved[id] == nil { reserved[id] = Moments(count: p.count) }
        }
    }

    /// One step over every unfrozen parameter that has a gradient (as torch skips `grad is None`).
    public func step() {
        OpProfiler.measure("AdamW step") { update() }
    }

    private func update() {
        let (lr, b1, b2, eps) = (Float(settings.lr), Float(settings.beta1), Float(settings.beta2), Float(settings.eps))
        for p in parameters where !p.isFrozen {
            guard let g = p.grad else { continue }
            let wd = Self.excludedFromWeightDecay(p) ? 0 : Float(settings.weightDecay)
            let id = ObjectIdentifier(p)
            let s = state[id] ?? reserved.removeValue(forKey: id) ?? Moments(count: p.count)
            state[id] = s
            s.step += 1
            let bc1 = 1 - Foundation.pow(settings.beta1, Double(s.step))
            let bc2 = 1 - Foundation.pow(settings.beta2, Double(s.step))
            let stepSize = Float(settings.lr / bc1)
            let bc2Sqrt = Float(bc2.squareRoot())
            let gp = g.storage.pointer
            // The moments' storage is referenced by `s` alone, so writing through it is safe.
            let (m, v) = (s.m.storage.pointer, s.v.storage.pointer)
            p.updateValue { wb in
                let w = wb.baseAddress!
                Ops.adamWUpdate(weights: w, gradients: gp, firstMoments: m, secondMoments: v, count: wb.count,
                                lr: lr, beta1: b1, beta2: b2, eps: eps, weightDecay: wd, stepSize: stepSize, biasCorrection2Sqrt: bc2Sqrt)
            }
        }
    }
}

/// `torch.nn.utils.clip_grad_norm_(parameters, maxNorm, norm_type=2)`: scales every gradient by
/// min(1, maxNorm / (‖g‖ + 1e-6)), ‖g‖ the 2-norm over all of them. Returns ‖g‖ before clipping.
@discardableResult
public func clipGradNorm(_ parameters: [Parameter], maxNorm: Double) -> Double {
    var sq = 0.0
    for p in parameters where !p.isFrozen {
        guard let g = p.grad else { continue }
        sq += Ops.sumOfSquares(g.storage.pointer, count: g.count)
    }
    let total = sq.squareRoot()
    let coef = Float(min(1, maxNorm / (total + 1e-6)))
    for p in parameters where !p.isFrozen && p.grad != nil {
        p.accumulateGrad { ptr in for i in 0..<p.count { ptr[i] *= coef } }
    }
    return total
}
