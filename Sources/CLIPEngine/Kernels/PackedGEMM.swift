import Foundation

/// A constant right-hand matrix (a layer's weight) packed once, at load time, into panels of 32
/// output columns stored k-major ([K][32] per panel, zero-padded past N), the layout the 8×32
/// micro-kernel streams. Measured here (Zen 5, 2 threads) on ConvNeXt's shapes: ~450 GFLOP/s
/// against ~130–250 for Debian's OpenBLAS, whose Haswell kernels stop at AVX2.
public struct PackedMatrix: @unchecked Sendable {
    public let k: Int
    public let n: Int
    let panels: Int
    let storage: TensorStorage

    static let panelWidth = 32

    /// From nn.Linear's weight [N, K] (y = x·Wᵀ).
    public init(linearWeight w: Tensor) throws {
        guard w.rank == 2 else { throw TensorError.shapeMismatch("linear weight must be [out, in], got \(w.shape)") }
        self.init(k: w.shape[1], n: w.shape[0]) { kk, j in w.storage.pointer[j * w.shape[1] + kk] }
    }

    /// From a [K, N] matrix (y = x·W: open_clip's `proj`, patch-conv GEMM weights).
    public init(kByN w: Tensor) throws {
        guard w.rank == 2 else { throw TensorError.shapeMismatch("matrix must be [K, N], got \(w.shape)") }
        self.init(k: w.shape[0], n: w.shape[1]) { kk, j in w.storage.pointer[kk * w.shape[1] + j] }
    }

    private init(k: Int, n: Int, element: (Int, Int) -> Float) {
        self.k = k
        self.n = n
        panels = (n + Self.panelWidth - 1) / Self.panelWidth
        storage = TensorStorage(count: panels * k * Self.panelWidth)
        let p = storage.pointer
        for panel in 0..<panels {
            for kk in 0..<k {
                for j in 0..<Self.panelWidth {
                    let col = panel * Self.panelWidth + j
                    p[(panel * k + kk) * Self.panelWidth + j] = col < n ? element(kk, col) : 0
                }
            }
        }
    }
}

/// What happens to each output tile while it is hot: bias and the residual add in registers,
/// the activation over the stored 8×32 tile (still in L1) through VectorMath's out-of-line loops
/// (inlining GELU sixteen times into the kernel made LLVM fall back to narrow vectors).
struct GEMMEpilogue {
    var bias: UnsafePointer<Float>?
    var activation: Activation
    /// C += result (a residual connection) instead of C = result. Not combined with an activation.
    var accumulate: Bool

    @inline(__always)
    func applyActivation(_ row: UnsafeMutablePointer<Float>, count: Int) {
        switch activation {
        case .none: break
        case .gelu: VectorMath.apply(GeluFunction.self, row, row, count)
        case .quickGelu: VectorMath.apply(QuickGeluFunction.self, row, row, count)
        }
    }
}

extension Ops {
    /// C[m, n] (=|+=) epilogue(A[m, k] · B), A row-major with leading dimension `lda`.
    static func packedGEMM(_ a: UnsafePointer<Float>, m: Int, lda: Int, _ b: PackedMatrix,
                     _ c: UnsafeMutablePointer<Float>, ldc: Int, epilogue: GEMMEpilogue) {
        guard m > 0, b.n > 0 else { return }
        let rowTiles = (m + 7) / 8
        let rowTilesPerBlock = 16          // 128 rows of A stay in L1/L2 while B's panels stream past
        let blocks = (rowTiles + rowTilesPerBlock - 1) / rowTilesPerBlock
        let threads = min(Parallel.threadCount, max(1, (2 * m * b.n * b.k) / 20_000_000))
        let work = { (tileRange: Range<Int>, panelRange: Range<Int>) in
            var scratchA = [Float](repeating: 0, count: 8 * b.k)
            var scratchC = [Float](repeating: 0, count: 8 * 32)
            var blockStart = tileRange.lowerBound
            while blockStart < tileRange.upperBound {
                let blockEnd = min(tileRange.upperBound, blockStart + rowTilesPerBlock)
                for panel in panelRange {
                    let bp = b.storage.pointer + panel * b.k * 32
                    let col = panel * 32, cols = min(32, b.n - col)
                    for tile in blockStart..<blockEnd {
                        let row = tile * 8, rows = min(8, m - row)
                        if rows == 8 && cols == 32 {
                            microKernel8x32(a + row * lda, lda: lda, bp, k: b.k, c + row * ldc + col, ldc: ldc,
                                            epilogue: epilogue, column: col)
                        } else {
                            edgeTile(a + row * lda, lda: lda, rows: rows, bp, k: b.k, c + row * ldc + col, ldc: ldc,
                                     cols: cols, column: col, epilogue: epilogue, scratchA: &scratchA, scratchC: &scratchC)
                        }
                    }
                }
                blockStart = blockEnd
            }
        }
        if threads <= 1 {
            work(0..<rowTiles, 0..<b.panels)
        } else if blocks >= 2 * threads {
            DispatchQueue.concurrentPerform(iterations: threads) { t in
                let lo = blocks * t / threads * rowTilesPerBlock, hi = min(rowTiles, blocks * (t + 1) / threads * rowTilesPerBlock)
                work(lo..<hi, 0..<b.panels)
            }
        } else {
            // Few rows (text tokens, late ConvNeXt stages at batch 1): split the output columns.
            let parts = min(threads, b.panels)
            DispatchQueue.concurrentPerform(iterations: parts) { t in
                work(0..<rowTiles, (b.panels * t / parts)..<(b.panels * (t + 1) / parts))
            }
        }
    }

    /// A partial tile (fewer than 8 rows or 32 columns): zero-padded copies through the same kernel.
    static func edgeTile(_ a: UnsafePointer<Float>, lda: Int, rows: Int, _ bp: UnsafePointer<Float>, k: Int,
                         _ c: UnsafeMutablePointer<Float>, ldc: Int, cols: Int, column: Int,
                         epilogue: GEMMEpilogue, scratchA: inout [Float], scratchC: inout [Float]) {
        scratchA.withUnsafeMutableBufferPointer { sa in
            scratchC.withUnsafeMutableBufferPointer { sc in
                let pa = sa.baseAddress!, pc = sc.baseAddress!
                for r in 0..<8 {
                    if r < rows { (pa + r * k).update(from: a + r * lda, count: k) } else { (pa + r * k).update(repeating: 0, count: k) }
                }
                microKernel8x32(pa, lda: k, bp, k: k, pc, ldc: 32,
                                epilogue: GEMMEpilogue(bias: nil, activation: .none, accumulate: false), column: 0)
                for r in 0..<rows {
                    let row = pc + r * 32, dst = c + r * ldc
                    if let bias = epilogue.bias { for j in 0..<cols { row[j] += bias[column + j] } }
                    epilogue.applyActivation(row, count: cols)
                    for j in 0..<cols { dst[j] = epilogue.accumulate ? dst[j] + row[j] : row[j] }
                }
            }
        }
    }

    /// 8 rows × 32 columns of C over the full K: 16 accumulators in registers, per k two B vectors
    /// and eight broadcast A scalars (16 FMAs).
    @inline(__always)
    static func microKernel8x32(_ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, k: Int,
                                _ c: UnsafeMutablePointer<Float>, ldc: Int, epilogue: GEMMEpilogue, column: Int) {
        var c00 = Vec(), c01 = Vec(), c10 = Vec(), c11 = Vec(), c20 = Vec(), c21 = Vec(), c30 = Vec(), c31 = Vec()
        var c40 = Vec(), c41 = Vec(), c50 = Vec(), c51 = Vec(), c60 = Vec(), c61 = Vec(), c70 = Vec(), c71 = Vec()
        var bp = b
        let a1 = a + lda, a2 = a + 2 * lda, a3 = a + 3 * lda, a4 = a + 4 * lda, a5 = a + 5 * lda, a6 = a + 6 * lda, a7 = a + 7 * lda
        for kk in 0..<k {
            let b0 = load(bp), b1 = load(bp + 16)
            bp += 32
            var av = Vec(repeating: a[kk]); c00.addProduct(av, b0); c01.addProduct(av, b1)
            av = Vec(repeating: a1[kk]); c10.addProduct(av, b0); c11.addProduct(av, b1)
            av = Vec(repeating: a2[kk]); c20.addProduct(av, b0); c21.addProduct(av, b1)
            av = Vec(repeating: a3[kk]); c30.addProduct(av, b0); c31.addProduct(av, b1)
            av = Vec(repeating: a4[kk]); c40.addProduct(av, b0); c41.addProduct(av, b1)
            av = Vec(repeating: a5[kk]); c50.addProduct(av, b0); c51.addProduct(av, b1)
            av = Vec(repeating: a6[kk]); c60.addProduct(av, b0); c61.addProduct(av, b1)
            av = Vec(repeating: a7[kk]); c70.addProduct(av, b0); c71.addProduct(av, b1)
        }
        let bias0 = epilogue.bias.map { load($0 + column) } ?? Vec(), bias1 = epilogue.bias.map { load($0 + column + 16) } ?? Vec()
        @inline(__always) func emit(_ v0: Vec, _ v1: Vec, _ row: Int) {
            let dst = c + row * ldc
            if epilogue.accumulate {
                store(v0 + bias0 + load(dst), dst)
                store(v1 + bias1 + load(dst + 16), dst + 16)
            } else {
                store(v0 + bias0, dst)
                store(v1 + bias1, dst + 16)
            }
        }
        emit(c00, c01, 0); emit(c10, c11, 1); emit(c20, c21, 2); emit(c30, c31, 3)
        emit(c40, c41, 4); emit(c50, c51, 5); emit(c60, c61, 6); emit(c70, c71, 7)
        if epilogue.activation != .none {
            for row in 0..<8 { epilogue.applyActivation(c + row * ldc, count: 32) }
        }
    }
}

extension Ops {
    /// y = activation(x · W + bias) with W pre-packed; x: [..., K].
    public static func linear(_ x: Tensor, packed w: PackedMatrix, bias: Tensor?, activation: Activation = .none) throws -> Tensor {
        let rows = try checkPacked("linear", x, w, bias)
        var y = Tensor(uninitializedShape: Array(x.shape.dropLast()) + [w.n])
        y.withUnsafeMutableBufferPointer { out in
            packedGEMM(x.storage.pointer, m: rows, lda: w.k, w, out.baseAddress!, ldc: w.n,
                 epilogue: GEMMEpilogue(bias: bias?.storage.pointer, activation: activation, accumulate: false))
        }
        return y
    }

    /// residual += x · W + bias (a residual branch's last layer, fused: no temporary, no extra pass).
    public static func linearAccumulate(_ x: Tensor, packed w: PackedMatrix, bias: Tensor?, into residual: inout Tensor) throws {
        let rows = try checkPacked("linear", x, w, bias)
        guard residual.count == rows * w.n, residual.shape.last == w.n else {
            throw TensorError.shapeMismatch("linear: residual \(residual.shape) for output [\(rows), \(w.n)]")
        }
        residual.withUnsafeMutableBufferPointer { out in
            packedGEMM(x.storage.pointer, m: rows, lda: w.k, w, out.baseAddress!, ldc: w.n,
                 epilogue: GEMMEpilogue(bias: bias?.storage.pointer, activation: .none, accumulate: true))
        }
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
