import CLIPEngine
import Foundation

/// An int8 GEMM weight as SwiftCLIP packs it (`PackedMatrix` in int8): the quantised values
/// q [K, N] (int8, symmetric per output column), each column's scale [N] (float) and Σq [N] (int32).
struct QuantizedWeight {
    let values: String
    let columnScales: String
    let columnSums: String
}

/// A float value's rows (its last axis) quantised as SwiftCLIP's `quantize_rows_u8`: the uint8
/// values, and per row the scale (float) and zero point (int32), both with a trailing axis of 1.
struct QuantizedRows {
    let values: String
    let scale: String
    let zeroPoint: String
}

/// SwiftCLIP's int8 GEMM (`export-onnx --precision int8`) in standard ONNX ops, written to compute
/// what `Ops.packedGEMM` computes for an int8 `PackedMatrix` (docs/precision.md, docs/onnx.md).
extension GraphBuilder {
    /// Initializers `<name>.int8` [K, N], `<name>.column_scale` [N] and `<name>.column_sum` [N],
    /// read from SwiftCLIP's own int8 packing of the weight, so the graph multiplies by the integers
    /// SwiftCLIP's GEMM multiplies by.
    func quantizedWeight(_ name: String, _ packed: PackedMatrix) -> QuantizedWeight {
        guard let (q, scales, sums) = packed.int8Values() else { preconditionFailure("'\(name)' is not packed in int8") }
        addInitializer(name + ".int8", dims: [packed.k, packed.n], type: .int8, raw: q.withUnsafeBufferPointer { Data(buffer: $0) })
        addInitializer(name + ".column_sum", dims: [packed.n], type: .int32,
                       raw: sums.map(\.littleEndian).withUnsafeBufferPointer { Data(buffer: $0) })
        return QuantizedWeight(values: name + ".int8", columnScales: floatInitializer(name + ".column_scale", scales, dims: [packed.n]),
                               columnSums: name + ".column_sum")
    }

    /// Each row of x quantised as `quantize_rows_u8` does it: the range [min(x, 0), max(x, 0)],
    /// scale = range / 255 (1 when the range is 0), zero = round(−min / scale),
    /// q = clamp(round(x · (1 / scale)) + zero, 0, 255), rounding half to even. Written out rather
    /// than as `QuantizeLinear`, which divides by the scale where the kernel multiplies by its
    /// reciprocal (the two can round a value to different sides of a tie). Emitted once per x.
    func quantizedRows(_ x: String) -> QuantizedRows {
        if let done = quantizedRowsByInput[x] { return done }
        let zero = floatScalar(0)
        let low = op("Min", reduce("ReduceMin", x, axes: [-1], keepdims: true), zero)
        let high = op("Max", reduce("ReduceMax", x, axes: [-1], keepdims: true), zero)
        let range = op("Div", op("Sub", high, low), floatScalar(255))
        let scale = op("Where", op("Equal", range, zero), floatScalar(1), range)
        let zeroPoint = op("Round", op("Div", op("Neg", low), scale))
        let q = op("Add", op("Round", op("Mul", x, op("Div", floatScalar(1), scale))), zeroPoint)
        let rows = QuantizedRows(values: cast(op("Clip", q, zero, floatScalar(255)), to: .uint8), scale: scale,
                                 zeroPoint: cast(op("Clip", zeroPoint, zero, floatScalar(255)), to: .int32))
        quantizedRowsByInput[x] = rows
        return rows
    }

    /// x [..., K] · W [K, N] as SwiftCLIP's int8 GEMM: Σ qa·qw (`MatMulInteger`, uint8 × int8)
    /// minus zero·Σqw in int32, then float(that) · (row scale · column scale). ONNX Runtime's
    /// `MatMulInteger` takes only a per-tensor zero point for A, so the per-row zero point is
    /// subtracted through the column sums, as the kernel's epilogue does.
    func quantizedMatMul(_ x: String, _ w: QuantizedWeight) -> String {
        let rows = quantizedRows(x)
        let sums = op("Sub", op("MatMulInteger", rows.values, w.values), op("Mul", rows.zeroPoint, w.columnSums))
        return op("Mul", cast(sums, to: .float), op("Mul", rows.scale, w.columnScales))
    }

    func cast(_ x: String, to type: Onnx_TensorProto.DataType) -> String {
        op("Cast", x, attributes: [Self.attribute("to", int: Int(type.rawValue))])
    }
}
