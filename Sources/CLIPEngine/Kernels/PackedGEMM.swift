import Foundation
import CLIPKernels

/// A constant right-hand matrix (a layer's weight) packed once, at load time, into panels of 32
/// output columns stored k-major ([K][32] per panel, zero-padded past N), the layout the 8×32
/// micro-kernels stream (`CLIPKernels`). Measured here (Zen 5, 2 threads) on ConvNeXt's shapes:
/// ~450 GFLOP/s against ~130–250 for Debian's OpenBLAS, whose Haswell kernels stop at AVX2.
///
/// In `bf16` or `int8` the panels hold only that format (k in groups of 2 or 4, `CLIP_BF16_GROUP`,
/// `CLIP_I8_GROUP`): no fp32 copy is kept, so the packed weight takes a half or a quarter of the
/// fp32 bytes (int8 adds a scale and a sum per column).
public struct PackedMatrix: @unchecked Sendable {
    public let k: Int
    public let n: Int
    public let precision: Precision
    let panels: Int
    /// The panels, in `precision`'s format (the Float-typed buffer is only their allocation).
    let storage: TensorStorage
    /// int8: per output column, the weight scale (Float) and Σ of its quantised weights (Int32 bits).
    let columnScales: TensorStorage?
    let columnSums: TensorStorage?

    static let panelWidth = Int(CLIP_PANEL_WIDTH)

    /// From nn.Linear's weight [N, K] (y = x·Wᵀ).
    public init(linearWeight w: Tensor, precision: Precision = .fp32) throws {
        guard w.rank == 2 else { throw TensorError.shapeMismatch("linear weight must be [out, in], got \(w.shape)") }
        self.init(w.storage.pointer, ld: w.shape[1], transposed: true, k: w.shape[1], n: w.shape[0], precision: precision)
    }

    /// From a [K, N] matrix (y = x·W: open_clip's `proj`, patch-conv GEMM weights).
    public init(kByN w: Tensor, precision: Precision = .fp32) throws {
        guard w.rank == 2 else { throw TensorError.shapeMismatch("matrix must be [K, N], got \(w.shape)") }
        self.init(w.storage.pointer, ld: w.shape[1], transposed: false, k: w.shape[0], n: w.shape[1], precision: precision)
    }

    /// B[kk][j] = src[kk·ld + j], or src[j·ld + kk] when `transposed`; panels packed in parallel.
    init(_ src: UnsafePointer<Float>, ld: Int, transposed: Bool, k: Int, n: Int, precision: Precision = .fp32) {
        self.k = k
        self.n = n
        self.precision = precision
        let panels = (n + Self.panelWidth - 1) / Self.panelWidth
        self.panels = panels
        let t: Int32 = transposed ? 1 : 0
        let work = k * Self.panelWidth
        switch precision {
        case .fp32:
            storage = TensorStorage(count: panels * k * Self.panelWidth)
            columnScales = nil
            columnSums = nil
            let dst = storage.pointer
            Parallel.forEachChunk(panels, workPerItem: work) { range in
                kernels.pack_panels(src, ld, t, k, n, dst, range.lowerBound, range.upperBound)
            }
        case .bf16:
            let values = panels * Self.groups(k, .bf16) * Int(CLIP_BF16_GROUP) * Self.panelWidth
            storage = TensorStorage(count: (values + 1) / 2)
            columnScales = nil
            columnSums = nil
            let dst = storage.raw.bindMemory(to: UInt16.self, capacity: values)
            Parallel.forEachChunk(panels, workPerItem: work) { range in
                kernels.pack_panels_bf16(src, ld, t, k, n, dst, range.lowerBound, range.upperBound)
            }
        case .int8:
            let values = panels * Self.groups(k, .int8) * Int(CLIP_I8_GROUP) * Self.panelWidth
            storage = TensorStorage(count: (values + 3) / 4)
            let scales = TensorStorage(count: panels * Self.panelWidth), sums = TensorStorage(count: panels * Self.panelWidth)
            columnScales = scales
            columnSums = sums
            let dst = storage.raw.bindMemory(to: Int8.self, capacity: values)
            let sumPointer = sums.raw.bindMemory(to: Int32.self, capacity: sums.count)
            Parallel.forEachChunk(panels, workPerItem: work) { range in
                kernels.pack_panels_i8(src, ld, t, k, n, dst, scales.pointer, sumPointer, range.lowerBound, range.upperBound)
            }
        }
    }

    /// Groups of k a reduced-precision row holds (⌈k/2⌉ bf16 pairs, ⌈k/4⌉ int8 quads).
    static func groups(_ k: Int, _ precision: Precision) -> Int {
        switch precision {
        case .fp32: return k
        case .bf16: return (k + Int(CLIP_BF16_GROUP) - 1) / Int(CLIP_BF16_GROUP)
        case .int8: return (k + Int(CLIP_I8_GROUP) - 1) / Int(CLIP_I8_GROUP)
        }
    }

    /// The matrix B [k, n] the panels hold (Bᵀ [n, k], nn.Linear's layout, when `transposed`): exactly what was packed for fp32, the rounded values
    /// for bf16, the dequantised ones (q · column scale) for int8. Not a hot path: it rebuilds the
    /// open_clip value of a parameter whose fp32 copy an inference-only model released.
    public func unpacked(transposed: Bool = false) -> Tensor {
        let out = Tensor(uninitializedShape: transposed ? [n, k] : [k, n])
        let d = out.storage.pointer
        for col in 0..<n {
            for kk in 0..<k {
                let to = transposed ? col * k + kk : kk * n + col
                let at = storageIndex(kk, col)
                switch precision {
                case .fp32:
                    d[to] = storage.pointer[at]
                case .bf16:
                    let bits = storage.raw.assumingMemoryBound(to: UInt16.self)[at]
                    d[to] = Float(bitPattern: UInt32(bits) << 16)
                case .int8:
                    let q = storage.raw.assumingMemoryBound(to: Int8.self)[at]
                    d[to] = Float(q) * columnScales!.pointer[col]
                }
            }
        }
        return out
    }

    /// Where B[kk][col] lies in `storage`, counted in elements of `precision`'s format.
    /// fp32: [panel][k][32]; reduced: [panel][k/G][32][G] (the C packers' layouts).
    private func storageIndex(_ kk: Int, _ col: Int) -> Int {
        let width = Self.panelWidth
        let group = precision == .fp32 ? 1 : precision == .bf16 ? Int(CLIP_BF16_GROUP) : Int(CLIP_I8_GROUP)
        let (panel, j) = col.quotientAndRemainder(dividingBy: width)
        return panel * Self.groups(k, precision) * group * width + (kk / group) * width * group + j * group + kk % group
    }

    /// An int8 matrix exactly as the GEMM multiplies by it: the quantised values q [k, n]
    /// (row-major), each column's scale (B ≈ q · scale) and Σ q per column. Nil unless `precision`
    /// is int8. The ONNX exporter writes these, so its graph multiplies by the same integers.
    public func int8Values() -> (q: [Int8], columnScales: [Float], columnSums: [Int32])? {
        guard precision == .int8, let columnScales, let columnSums else { return nil }
        let values = storage.raw.assumingMemoryBound(to: Int8.self)
        var q = [Int8](repeating: 0, count: k * n)
        for kk in 0..<k { for col in 0..<n { q[kk * n + col] = values[storageIndex(kk, col)] } }
        let sums = columnSums.raw.assumingMemoryBound(to: Int32.self)
        return (q, (0..<n).map { columnScales.pointer[$0] }, (0..<n).map { sums[$0] })
    }

    /// Bytes held by the packed form (panels, and int8's per-column scale and sum).
    public var bytes: Int {
        storage.count * 4 + (columnScales?.count ?? 0) * 4 + (columnSums?.count ?? 0) * 4
    }
}

extension TensorStorage {
    var raw: UnsafeMutableRawPointer { UnsafeMutableRawPointer(pointer) }
}

extension Ops {
    /// C[m, n] (=|+=) act(A[m, k] · B + bias), A row-major with leading dimension `lda`: the C
    /// kernel's register tiles (8×32 AVX-512, 6×16 AVX2, 4×8 portable) with bias and the residual
    /// add in registers and the activation over each stored tile while it is in L1. Threads take
    /// runs of whole micro-tiles of rows, or (few rows: text tokens, late ConvNeXt stages at batch 1) column panels.
    /// A bf16 or int8 B first converts A's rows (in parallel) to that format: rounded to bf16, or
    /// quantised to uint8 with a scale and zero point per row.
    static func packedGEMM(_ a: UnsafePointer<Float>, m: Int, lda: Int, _ b: PackedMatrix,
                           _ c: UnsafeMutablePointer<Float>, ldc: Int,
                           bias: UnsafePointer<Float>?, activation: Activation, accumulate: Bool,
                           normalization: InputNormalization? = nil) {
        precondition(normalization == nil || (fusesNormalization(m: m, b) && lda == b.k),
                     "a normalised input is fused only into a bf16 GEMM, or an fp32 one split by rows, over contiguous rows")
        guard m > 0, b.n > 0 else { return }
        let code = activation.kernelCode, acc: Int32 = accumulate ? 1 : 0
        switch b.precision {
        case .fp32:
            let weights = UnsafePointer(b.storage.pointer)
            guard let normalization else {
                scheduleGEMM(m: m, b) { rows, panels in
                    kernels.gemm_packed(a, lda, weights, b.k, b.n, c, ldc, bias, code, acc,
                                        rows.lowerBound, rows.upperBound, panels.lowerBound, panels.upperBound)
                }
                return
            }
            // Each row block is normalised into a scratch block (in L2) right before its tiles read it.
            let scratchFloats = kernels.gemm_row_block * b.k
            normalization.withKernelOperands { scale, shift, rowsPerScale, eps, layerNorm in
                scheduleGEMM(m: m, b) { rows, panels in
                    let scratch = TensorStorage(count: scratchFloats)
                    kernels.gemm_packed_normalized(a, weights, b.k, b.n, c, ldc, bias, code, acc,
                                                   rows.lowerBound, rows.upperBound, panels.lowerBound, panels.upperBound,
                                                   scale, shift, rowsPerScale, eps, layerNorm, scratch.pointer)
                }
            }
        case .bf16:
            let ld = PackedMatrix.groups(b.k, .bf16) * Int(CLIP_BF16_GROUP)
            let rows = TensorStorage(count: (m * ld + 1) / 2)
            let converted = rows.raw.bindMemory(to: UInt16.self, capacity: m * ld)
            if let normalization {
                normalization.withKernelOperands { scale, shift, rowsPerScale, eps, layerNorm in
                    Parallel.forEachChunk(m, workPerItem: b.k * (layerNorm != 0 ? 8 : 4)) { r in
                        kernels.normalize_rows_bf16(a, b.k, converted, ld, scale, shift, rowsPerScale, eps, layerNorm,
                                                    r.lowerBound, r.upperBound)
                    }
                }
            } else {
                Parallel.forEachChunk(m, workPerItem: b.k * 4) { r in
                    kernels.round_rows_bf16(a + r.lowerBound * lda, lda, b.k, converted + r.lowerBound * ld, ld, r.count)
                }
            }
            let weights = UnsafePointer(b.storage.raw.assumingMemoryBound(to: UInt16.self))
            // Each concurrent call of the widening kernel widens its panel and row block into its own
            // scratch; `vdpbf16ps` reads the bf16 operands directly and needs none.
            let scratchFloats = bf16UsesDot ? 1 : (b.k + 1) / 2 * 2 * (PackedMatrix.panelWidth + kernels.gemm_row_block)
            scheduleGEMM(m: m, b) { r, panels in
                let scratch = TensorStorage(count: scratchFloats)
                bf16GEMM(converted, ld, weights, b.k, b.n, c, ldc, bias, code, acc,
                         r.lowerBound, r.upperBound, panels.lowerBound, panels.upperBound, scratch.pointer)
            }
            withExtendedLifetime(rows) {}
        case .int8:
            let ld = PackedMatrix.groups(b.k, .int8) * Int(CLIP_I8_GROUP)
            let rows = TensorStorage(count: (m * ld + 3) / 4), scales = TensorStorage(count: m), zeros = TensorStorage(count: m)
            let quantised = rows.raw.bindMemory(to: UInt8.self, capacity: m * ld)
            let zeroPoints = zeros.raw.bindMemory(to: Int32.self, capacity: m)
            Parallel.forEachChunk(m, workPerItem: b.k * 8) { r in
                kernels.quantize_rows_u8(a + r.lowerBound * lda, lda, b.k, quantised + r.lowerBound * ld, ld,
                                         scales.pointer + r.lowerBound, zeroPoints + r.lowerBound, r.count)
            }
            let weights = UnsafePointer(b.storage.raw.assumingMemoryBound(to: Int8.self))
            let columnScales = UnsafePointer(b.columnScales!.pointer)
            let columnSums = UnsafePointer(b.columnSums!.raw.assumingMemoryBound(to: Int32.self))
            scheduleGEMM(m: m, b) { r, panels in
                kernels.gemm_i8(quantised, ld, scales.pointer, zeroPoints, weights, columnScales, columnSums,
                                b.k, b.n, c, ldc, bias, code, acc,
                                r.lowerBound, r.upperBound, panels.lowerBound, panels.upperBound)
            }
            withExtendedLifetime((rows, scales, zeros)) {}
        }
    }

    /// Threads a product on the C kernels is worth: one per 20 MFLOP, up to the budget.
    static func threadsForPackedGEMM(flops: Int) -> Int {
        min(Parallel.budget, max(1, flops / 20_000_000))
    }

    /// Whether a GEMM of m rows by `b` applies its input's normalisation itself (`linear(…,
    /// normalizedBy:)`): bf16 while converting every row; fp32 block by block into a scratch block
    /// when its threads split the rows (split by panels, every thread would normalise every row:
    /// the normalisation is then applied once, first); int8 never (it needs each row's range first).
    static func fusesNormalization(m: Int, _ b: PackedMatrix) -> Bool {
        switch b.precision {
        case .bf16: return true
        case .fp32: return !splitsPanels(m: m, b)
        case .int8: return false
        }
    }

    /// Whether `scheduleGEMM` splits B's panels (few rows) rather than C's rows.
    private static func splitsPanels(m: Int, _ b: PackedMatrix) -> Bool {
        let blocks = (m + kernels.gemm_row_block - 1) / kernels.gemm_row_block
        let threads = threadsForPackedGEMM(flops: 2 * m * b.n * b.k)
        return threads > 1 && blocks < 2 * threads
    }

    /// Splits C's rows (or, with few rows, B's panels) over the threads the product is worth, in
    /// up to `Parallel.partsPerThread` parts per thread claimed dynamically (a core that another
    /// process slows down takes fewer of them).
    private static func scheduleGEMM(m: Int, _ b: PackedMatrix, _ compute: (Range<Int>, Range<Int>) -> Void) {
        let rowBlock = kernels.gemm_row_block
        let threads = threadsForPackedGEMM(flops: 2 * m * b.n * b.k)
        if threads <= 1 {
            compute(0..<m, 0..<b.panels)
        } else if !splitsPanels(m: m, b) {
            // Parts of whole micro-tiles, not of row blocks: with few blocks, parts of whole blocks
            // are uneven (m = 392, ConvNeXt's last stage at batch 8: 128 + 128 | 128 + 8 rows).
            let tile = rowBlock / 16, tiles = (m + tile - 1) / tile
            let parts = min(tiles, threads * Parallel.partsPerThread)
            Parallel.run(parts, threads: threads) { t in
                compute(tiles * t / parts * tile ..< min(m, tiles * (t + 1) / parts * tile), 0..<b.panels)
            }
        } else {
            let parts = min(threads * Parallel.partsPerThread, b.panels)
            Parallel.run(parts, threads: threads) { t in compute(0..<m, (b.panels * t / parts)..<(b.panels * (t + 1) / parts)) }
        }
    }
}

extension Ops {
    /// y = activation(n(x) · W + bias) with W pre-packed; x: [..., K]; n the input's normalisation
    /// (`normalizedBy`, nil: none), fused into the conversion of x where W is bf16, else applied first.
    public static func linear(_ x: Tensor, packed w: PackedMatrix, bias: Tensor?, activation: Activation = .none,
                              normalizedBy normalization: InputNormalization? = nil) throws -> Tensor {
        let rows = try checkPacked("linear", x, w, bias)
        let (x, fused) = try normalizedInput(x, normalization, w, rows: rows)
        var y = Tensor(uninitializedShape: Array(x.shape.dropLast()) + [w.n])
        y.withUnsafeMutableBufferPointer { out in
            packedGEMM(x.storage.pointer, m: rows, lda: w.k, w, out.baseAddress!, ldc: w.n,
                       bias: bias?.storage.pointer, activation: activation, accumulate: false, normalization: fused)
        }
        return y
    }

    /// residual += n(x) · W + bias (a residual branch's last layer, fused: no temporary, no extra
    /// pass); `normalizedBy` as for `linear`.
    public static func linearAccumulate(_ x: Tensor, packed w: PackedMatrix, bias: Tensor?, into residual: inout Tensor,
                                        normalizedBy normalization: InputNormalization? = nil) throws {
        let rows = try checkPacked("linear", x, w, bias)
        guard residual.count == rows * w.n, residual.shape.last == w.n else {
            throw TensorError.shapeMismatch("linear: residual \(residual.shape) for output [\(rows), \(w.n)]")
        }
        let (x, fused) = try normalizedInput(x, normalization, w, rows: rows)
        residual.withUnsafeMutableBufferPointer { out in
            packedGEMM(x.storage.pointer, m: rows, lda: w.k, w, out.baseAddress!, ldc: w.n,
                       bias: bias?.storage.pointer, activation: .none, accumulate: true, normalization: fused)
        }
    }

    /// The GEMM's input and the normalisation left for it to fuse: checked, then either passed on
    /// (`fusesNormalization`) or applied here.
    private static func normalizedInput(_ x: Tensor, _ normalization: InputNormalization?, _ w: PackedMatrix, rows: Int)
        throws -> (Tensor, InputNormalization?) {
        guard let normalization else { return (x, nil) }
        if fusesNormalization(m: rows, w) {
            try normalization.check(x)
            return (x, normalization)
        }
        return (try normalization.apply(to: x), nil)
    }

    private static func checkPacked(_ op: String, _ x: Tensor, _ w: PackedMatrix, _ bias: Tensor?) throws -> Int {
        guard x.rank >= 1, x.shape.last == w.k else {
            throw TensorError.shapeMismatch("\(op): input \(x.shape) for a weight with \(w.k) inputs")
        }
        if let bias, bias.shape != [w.n] {
            throw TensorError.shapeMismatch("\(op): bias \(bias.shape) for \(w.n) outputs")
        }
        return x.count / max(w.k, 1)
    }
}
