/// The number format a model's GEMM weights are stored and multiplied in (`--precision`).
///
/// - `fp32`: IEEE single precision throughout.
/// - `bf16`: weights rounded to bfloat16 once when packed (half the bytes); each GEMM rounds its
///   input rows to bf16 as it consumes them and sums the products in fp32 (`vdpbf16ps` on
///   AVX512_BF16 CPUs, widened to fp32 FMAs elsewhere). Everything between GEMMs stays fp32.
/// - `int8`: weights quantised symmetrically per output channel when packed (a quarter of the
///   bytes); each GEMM quantises its input rows to uint8 with a per-row scale and zero point
///   (ONNX Runtime's `quantize_dynamic` scheme, per row instead of per tensor), sums in int32
///   (`vpdpbusd` on VNNI CPUs, widened elsewhere) and rescales to fp32 in the epilogue.
///
/// See docs/precision.md for which layers use it and what it costs in accuracy.
public enum Precision: String, CaseIterable, Sendable, CustomStringConvertible {
    case fp32, bf16, int8

    public var description: String { rawValue }

    /// Whether a GEMM in this format normalises its input while converting it (`Ops.linear`'s
    /// `normalizedBy`): bf16 converts every input row anyway, so LayerNorm's or GRN's output never
    /// needs an fp32 copy; fp32 reads the input as it is and int8 needs each row's range first.
    public var fusesInputNormalization: Bool { self == .bf16 }

    /// Bytes one packed weight takes.
    public var bytesPerWeight: Int {
        switch self {
        case .fp32: return 4
        case .bf16: return 2
        case .int8: return 1
        }
    }
}
