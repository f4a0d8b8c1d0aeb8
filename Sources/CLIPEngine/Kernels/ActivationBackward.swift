// Backward of the activations fused into `Ops.linear`: exact-erf GELU and QuickGELU, from the
// pre-activation z (vectorised in the C kernels, beside their forward).

import Foundation

extension Ops {
    /// dz = dy · act'(z) for `activation` applied to z (`.none` returns dy).
    public static func activationBackward(_ dy: Tensor, preActivation z: Tensor, _ activation: Activation) throws -> Tensor {
        try require(dy.shape == z.shape, "activationBackward: dy \(dy.shape) against z \(z.shape)")
        if activation == .none { return dy }
        let out = Tensor(uninitializedShape: z.shape)
        let zp = z.storage.pointer, gp = dy.storage.pointer, op = out.storage.pointer
        let count = z.count
        chunks((count + elementBlock - 1) / elementBlock, workPerItem: elementBlock * 40) { range in
            let lo = range.lowerBound * elementBlock, hi = min(count, range.upperBound * elementBlock)
            // d/dz z·Φ(z) = Φ(z) + z·φ(z);  d/dz z·σ(1.702z) = σ + 1.702·z·σ·(1 − σ)
            if activation == .gelu { kernels.gelu_backward(zp + lo, gp + lo, op + lo, hi - lo) }
            else { kernels.quick_gelu_backward(zp + lo, gp + lo, op + lo, hi - lo) }
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
