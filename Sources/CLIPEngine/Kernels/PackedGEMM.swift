import Foundation
import CLIPKernels

/// A constant right-hand matrix (a layer's weight) packed once, at load time, into panels of 32
/// output columns stored k-major ([K][32] per panel, zero-padded past N), the layout the 8×32
/// micro-kernels stream (`CLIPKernels`). Measured here (Zen 5, 2 threads) on ConvNeXt's shapes:
/// ~450 GFLOP/s against ~130–250 for Debian's OpenBLAS, whose Haswell kernels stop at AVX2.
public struct PackedMatrix: @unchecked Sendable {
    public let k: Int
    public let n: Int
    let panels: Int
    let storage: TensorStorage

    static let panelWidth = Int(CLIP_PANEL_WIDTH)

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

extension Ops {
    /// C[m, n] (=|+=) act(A[m, k] · B + bias), A row-major with leading dimension `lda`: the C
    /// kernel's register tiles (8×32 AVX-512, 6×16 AVX2, 4×8 portable) with bias and the residual
    /// add in registers and the activation over each stored tile while it is in L1. Threads take
    /// whole row blocks, or (few rows: text tokens, late ConvNeXt stages at batch 1) column panels.
    static func packedGEMM(_ a: UnsafePointer<Float>, m: Int, lda: Int, _ b: PackedMatrix,
                           _ c: UnsafeMutablePointer<Float>, ldc: Int,
                           bias: UnsafePointer<Float>?, activation: Activation, accumulate: Bool) {
        guard m > 0, b.n > 0 else { return }
        let rowBlock = kernels.gemm_row_block
        let blocks = (m + rowBlock - 1) / rowBlock
        let threads = min(Parallel.budget, max(1, (2 * m * b.n * b.k) / 20_000_000))
        let weights = UnsafePointer(b.storage.pointer)
        let code = activation.kernelCode
        func compute(_ rows: Range<Int>, _ panels: Range<Int>) {
            kernels.gemm_packed(a, lda, weights, b.k, b.n, c, ldc, bias, code, accumulate ? 1 : 0,
                                rows.lowerBound, rows.upperBound, panels.lowerBound, panels.upperBound)
        }
        if threads <= 1 {
            compute(0..<m, 0..<b.panels)
        } else if blocks >= 2 * threads {
            Parallel.run(threads) { t in
                compute(blocks * t / threads * rowBlock ..< min(m, blocks * (t + 1) / threads * rowBlock), 0..<b.panels)
            }
        } else {
            let parts = min(threads, b.panels)
            Parallel.run(parts) { t in compute(0..<m, (b.panels * t / parts)..<(b.panels * (t + 1) / parts)) }
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
                       bias: bias?.storage.pointer, activation: activation, accumulate: false)
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
                       bias: bias?.storage.pointer, activation: .none, accumulate: true)
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
