import Foundation
import CLIPKernels

/// The C kernel table chosen for this CPU on first use (AVX-512, AVX2+FMA or the portable build),
/// capped by `SWIFTCLIP_ISA`. Every SIMD inner loop of the engine goes through it: Swift has no
/// per-function target attribute, so the ISA-specific code lives in the `CLIPKernels` C target.
let kernels: clip_kernel_table = clip_kernels().pointee

/// The bf16 GEMMs: `vdpbf16ps` where the level has it and this CPU runs it faster than widening bf16
/// to fp32 FMAs (AMD Zen 4/5; not Intel's Sapphire/Emerald Rapids: docs/precision.md), else the
/// widening ones. SWIFTCLIP_BF16_KERNEL=dot or =widen overrides the choice.
let bf16UsesDot: Bool = {
    guard kernels.gemm_bf16_dot != nil, kernels.gemm_at_bf16_dot != nil else { return false }
    switch ProcessInfo.processInfo.environment["SWIFTCLIP_BF16_KERNEL"] {
    case "dot": return true
    case "widen": return false
    default: return clip_kernels_bf16_dot_preferred() != 0
    }
}()
let bf16GEMM = bf16UsesDot ? kernels.gemm_bf16_dot! : kernels.gemm_bf16
let bf16WeightGradientGEMM = bf16UsesDot ? kernels.gemm_at_bf16_dot! : kernels.gemm_at_bf16

/// Which kernel variant the engine runs, for `swiftclip info` and the benchmarks.
public enum KernelLevel {
    /// "avx512bf16", "avx512", "avx2" or "baseline".
    public static var active: String { String(cString: kernels.name) }
    /// The best variant this CPU supports, whatever `SWIFTCLIP_ISA` says.
    public static var cpuBest: String {
        clip_kernels_for_level(clip_kernels_cpu_level()).map { String(cString: $0.pointee.name) } ?? "baseline"
    }
    /// "dot" (`vdpbf16ps`) or "widen" (bf16 widened to fp32 FMAs): the bf16 GEMM in use.
    public static var bf16Kernel: String { bf16UsesDot ? "dot" : "widen" }
    /// `SWIFTCLIP_ISA` was set to a value other than avx512bf16, avx512, avx2, baseline (and was ignored).
    public static var requestIgnored: Bool { clip_kernels_isa_request_invalid() != 0 }
}

extension Activation {
    var kernelCode: Int32 {
        switch self {
        case .none: return Int32(CLIP_ACTIVATION_NONE.rawValue)
        case .gelu: return Int32(CLIP_ACTIVATION_GELU.rawValue)
        case .quickGelu: return Int32(CLIP_ACTIVATION_QUICK_GELU.rawValue)
        }
    }
}

extension Ops {
    /// row[i] = act(row[i] + bias[i]) over `count` floats (bias nullable).
    @inline(__always)
    static func applyBiasActivation(_ row: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>?,
                                    _ count: Int, _ activation: Activation) {
        switch activation {
        case .none: if let bias { kernels.add(row, bias, count) }
        case .gelu: kernels.gelu(row, bias, row, count)
        case .quickGelu: kernels.quick_gelu(row, bias, row, count)
        }
    }
}

extension Ops {
    /// torch.optim.AdamW's update of `count` weights in place (decoupled weight decay; the bias
    /// corrections folded into `stepSize` = lr/(1 − β1^t) and `biasCorrection2Sqrt` = √(1 − β2^t)).
    public static func adamWUpdate(weights: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>,
                                   firstMoments: UnsafeMutablePointer<Float>, secondMoments: UnsafeMutablePointer<Float>,
                                   count: Int, lr: Float, beta1: Float, beta2: Float, eps: Float, weightDecay: Float,
                                   stepSize: Float, biasCorrection2Sqrt: Float) {
        let block = 4096
        chunks((count + block - 1) / block, workPerItem: block * 12) { range in
            let lo = range.lowerBound * block, hi = min(count, range.upperBound * block)
            kernels.adamw_update(weights + lo, gradients + lo, firstMoments + lo, secondMoments + lo, hi - lo,
                                 lr, beta1, beta2, eps, weightDecay, stepSize, biasCorrection2Sqrt)
        }
    }

    /// Σ x² over `count` floats (Double sum of vector partial sums).
    public static func sumOfSquares(_ x: UnsafePointer<Float>, count: Int) -> Double {
        kernels.sum_squares(x, count)
    }
}
