// Backward of the activations fused into `Ops.linear` (the C kernels): exact-erf GELU and
// QuickGELU, from the pre-activation z. Plain loops.

import Foundation

extension Ops {
    /// dz = dy · act'(z) for `activation` applied to z (`.none` returns dy).
    public static func activationBackward(_ dy: Tensor, preActivation z: Tensor, _ activation: Activation) throws -> Tensor {
        try require(dy.shape == z.shape, "activationBackward: dy \(dy.shape) against z \(z.shape)")
        if activation == .none { return dy }
        let out = Tensor(uninitializedShape: z.shape)
        let zp = z.storage.pointer, gp = dy.storage.pointer, op = out.storage.pointer
        let count = z.count
        chunks((count + 1023) / 1024, workPerItem: 1024 * 20) { range in
            let lo = range.lowerBound * 1024, hi = min(count, range.upperBound * 1024)
            switch activation {
            case .gelu:
                // d/dz z·Φ(z) = Φ(z) + z·φ(z)
                for i in lo..<hi {
                    let v = zp[i]
                    let cdf = 0.5 * (1 + erf(v * 0.70710678118654752))
                    let pdf = 0.39894228040143268 * exp(-0.5 * v * v)
                    op[i] = gp[i] * (cdf + v * pdf)
                }
            case .quickGelu:
                // d/dz z·σ(1.702z) = σ + 1.702·z·σ·(1 − σ)
                for i in lo..<hi {
                    let v = zp[i]
                    let s = 1 / (1 + exp(-1.702 * v))
                    op[i] = gp[i] * (s + 1.702 * v * s * (1 - s))
                }
            case .none:
                break
            }
        }
        return out
    }

    /// act(z) elementwise, for the training forward (which keeps z for the backward).
    public static func activation(_ z: Tensor, _ activation: Activation) -> Tensor {
        switch activation {
        case .none: return z
        case .gelu: return gelu(z)
        case .quickGelu: return quickGelu(z)
        }
    }
}
