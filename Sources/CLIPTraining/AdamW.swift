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

    public init(parameters: [Parameter], settings: Settings) {
        self.parameters = parameters
        self.settings = settings
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
            let s = state[ObjectIdentifier(p)] ?? Moments(count: p.count)
            state[ObjectIdentifier(p)] = s
            s.step += 1
            let bc1 = 1 - Foundation.pow(settings.beta1, Double(s.step))
            let bc2 = 1 - Foundation.pow(settings.beta2, Double(s.step))
            let stepSize = Float(settings.lr / bc1)
            let bc2Sqrt = Float(bc2.squareRoot())
            let gp = g.storage.pointer
            let decay = 1 - lr * wd
            // The moments' storage is referenced by `s` alone, so writing through it is safe.
            let (m, v) = (s.m.storage.pointer, s.v.storage.pointer)
            p.updateValue { wb in
                let w = wb.baseAddress!
                Parallel.forEachChunk(wb.count, workPerItem: 12) { range in
                    for i in range {
                        w[i] *= decay
                        let gi = gp[i]
                        m[i] += (gi - m[i]) * (1 - b1)          // exp_avg.lerp_(grad, 1 − β1)
                        v[i] = v[i] * b2 + (1 - b2) * gi * gi
                        let denom = v[i].squareRoot() / bc2Sqrt + eps
                        w[i] -= stepSize * (m[i] / denom)
                    }
                }
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
        let gp = g.storage.pointer
        var s: Float = 0
        for i in 0..<g.count { s += gp[i] * gp[i] }
        sq += Double(s)
    }
    let total = sq.squareRoot()
    let coef = Float(min(1, maxNorm / (total + 1e-6)))
    for p in parameters where !p.isFrozen && p.grad != nil {
        _ = p.accumulateGrad { ptr in for i in 0..<p.count { ptr[i] *= coef } }
    }
    return total
}
