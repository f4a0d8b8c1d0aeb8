import CLIPKernels

/// The C kernel table chosen for this CPU on first use (AVX-512, AVX2+FMA or the portable build),
/// capped by `SWIFTCLIP_ISA`. Every SIMD inner loop of the engine goes through it: Swift has no
/// per-function target attribute, so the ISA-specific code lives in the `CLIPKernels` C target.
let kernels: clip_kernel_table = clip_kernels().pointee

/// Which kernel variant the engine runs, for `swiftclip info` and the benchmarks.
public enum KernelLevel {
    /// "avx512", "avx2" or "baseline".
    public static var active: String { String(cString: kernels.name) }
    /// The best variant this CPU supports, whatever `SWIFTCLIP_ISA` says.
    public static var cpuBest: String {
        clip_kernels_for_level(clip_kernels_cpu_level()).map { String(cString: $0.pointee.name) } ?? "baseline"
    }
    /// `SWIFTCLIP_ISA` was set to a value other than avx512, avx2, baseline (and was ignored).
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
