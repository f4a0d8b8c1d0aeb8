// GEMM-based ops: linear (with bias and activation fused into the GEMM epilogue), matmul,
// and the kernel == stride convolution as patch gather + one GEMM.

extension Ops {
    /// y = x · weightᵀ + bias, then `activation`; x: [..., in], weight: [out, in] (nn.Linear),
    /// bias: [out] or nil → [..., out]. Bias and activation run on each block of rows right after
    /// the GEMM wrote it, by the thread that wrote it.
    public static func linear(_ x: Tensor, weight: Tensor, bias: Tensor?, activation: Activation = .none) throws -> Tensor {
        try require(x.rank >= 1 && weight.rank == 2 && x.shape.last == weight.shape[1],
                    "linear: input \(x.shape) against weight \(weight.shape) (need [..., in] and [out, in])")
        let (outFeatures, inFeatures) = (weight.shape[0], weight.shape[1])
        if let bias {
            try require(bias.shape == [outFeatures], "linear: bias \(bias.shape) for weight \(weight.shape)")
        }
        let m = x.shape.dropLast().reduce(1, *)
        let out = Tensor(uninitializedShape: Array(x.shape.dropLast()) + [outFeatures])
        gemmWithEpilogue(transB: true, m: m, n: outFeatures, k: inFeatures,
                         a: x.storage.pointer, lda: inFeatures, b: weight.storage.pointer, ldb: inFeatures,
                         c: out.storage.pointer, bias: bias?.storage.pointer, activation: activation)
        return out
    }

    /// y = x · w; x: [..., in], w: [in, out] (open_clip's `proj`, `text_projection`) → [..., out].
    public static func matmul(_ x: Tensor, _ w: Tensor) throws -> Tensor {
        try require(x.rank >= 1 && w.rank == 2 && x.shape.last == w.shape[0],
                    "matmul: \(x.shape) · \(w.shape) (need [..., in] and [in, out])")
        let (inFeatures, outFeatures) = (w.shape[0], w.shape[1])
        let m = x.shape.dropLast().reduce(1, *)
        let out = Tensor(uninitializedShape: Array(x.shape.dropLast()) + [outFeatures])
        gemmWithEpilogue(transB: false, m: m, n: outFeatures, k: inFeatures,
                         a: x.storage.pointer, lda: inFeatures, b: w.storage.pointer, ldb: outFeatures,
                         c: out.storage.pointer, bias: nil, activation: .none)
        return out
    }

    /// C[m, n] = A[m, k] · op(B) (+ bias, activation), C dense with ldc = n.
    static func gemmWithEpilogue(transB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                                 b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>,
                                 bias: UnsafePointer<Float>?, activation: Activation) {
        guard m > 0, n > 0 else { return }
        if k == 0 { c.initialize(repeating: 0, count: m * n) }
        let epilogue: ((Range<Int>, Range<Int>) -> Void)?
        if bias == nil && activation == .none {
            epilogue = nil
        } else {
            epilogue = { rows, cols in
                for r in rows {
                    applyBiasActivation(c + r * n + cols.lowerBound, bias.map { $0 + cols.lowerBound },
                                        cols.count, activation)
                }
            }
        }
        if k == 0 {
            epilogue?(0..<m, 0..<n)
        } else {
            gemm(transA: false, transB: transB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb,
                 c: c, ldc: n, epilogue: epilogue)
        }
    }

    // MARK: Patch convolution (kernel == stride, no padding)

    /// Convolution with kernel == stride == `kernel`, no padding, channels-last.
    /// x: [N, H, W, Cin]; weight: [k·k·Cin, Cout] with row (ky·k + kx)·Cin + ci (see
    /// `patchConvWeight(fromOIHW:)`); bias: [Cout] or nil → [N, H/k, W/k, Cout] (floor).
    public static func patchConv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, kernel k: Int) throws -> Tensor {
        try require(weight.rank == 2, "patchConv2d: weight \(weight.shape) must be [k·k·Cin, Cout]")
        let (patches, oh, ow) = try gatherPatches(x, kernel: k, weightRows: weight.shape[0])
        let (n, cout) = (x.shape[0], weight.shape[1])
        if let bias { try require(bias.shape == [cout], "patchConv2d: bias \(bias.shape) for weight \(weight.shape)") }
        let out = Tensor(uninitializedShape: [n, oh, ow, cout])
        gemmWithEpilogue(transB: false, m: patches.shape[0], n: cout, k: patches.shape[1],
                         a: patches.storage.pointer, lda: patches.shape[1], b: weight.storage.pointer, ldb: cout,
                         c: out.storage.pointer, bias: bias?.storage.pointer, activation: .none)
        return out
    }

    /// `patchConv2d` with its GEMM weight packed once at load time (the models' path).
    public static func patchConv2d(_ x: Tensor, packed weight: PackedMatrix, bias: Tensor?, kernel k: Int) throws -> Tensor {
        let (patches, oh, ow) = try gatherPatches(x, kernel: k, weightRows: weight.k)
        return try linear(patches, packed: weight, bias: bias).reshaped([x.shape[0], oh, ow, weight.n])
    }

    /// Each output pixel's k×k×Cin patch as one row: k runs of k·Cin contiguous floats (one per
    /// kernel row) in channels-last order. -> ([N·oh·ow, k·k·Cin], oh, ow), floor division as PyTorch.
    static func gatherPatches(_ x: Tensor, kernel k: Int, weightRows: Int) throws -> (Tensor, Int, Int) {
        try require(k >= 1, "patchConv2d: kernel \(k) must be positive")
        try require(x.rank == 4, "patchConv2d: input must be [N, H, W, Cin], got \(x.shape)")
        let (n, h, w, cin) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        try require(weightRows == k * k * cin,
                    "patchConv2d: weight with \(weightRows) rows for kernel \(k) and input \(x.shape) (need \(k * k * cin))")
        let (oh, ow) = (h / k, w / k)
        let patchLength = k * k * cin
        let patchCount = n * oh * ow
        let patches = Tensor(uninitializedShape: [patchCount, patchLength])
        let src = x.storage.pointer, dst = patches.storage.pointer
        let run = k * cin
        chunks(patchCount, workPerItem: patchLength) { range in
            for p in range {
                let b = p / (oh * ow), oy = (p / ow) % oh, ox = p % ow
                for ky in 0..<k {
                    let from = src + ((b * h + oy * k + ky) * w + ox * k) * cin
                    (dst + p * patchLength + ky * run).update(from: from, count: run)
                }
            }
        }
        return (patches, oh, ow)
    }

    /// PyTorch conv weight [Cout, Cin, k, k] → [k·k·Cin, Cout] for `patchConv2d`.
    public static func patchConvWeight(fromOIHW w: Tensor) throws -> Tensor {
        try require(w.rank == 4 && w.shape[2] == w.shape[3],
                    "patchConvWeight: expected [Cout, Cin, k, k], got \(w.shape)")
        let (cout, cin, k) = (w.shape[0], w.shape[1], w.shape[2])
        let out = Tensor(uninitializedShape: [k * k * cin, cout])
        permutePatchConvWeight(w, into: out, cout: cout, cin: cin, kernel: k, toGEMM: true)
        return out
    }

    /// The inverse of `patchConvWeight`: [k·k·Cin, Cout] → PyTorch's [Cout, Cin, k, k].
    public static func oihwWeight(fromPatchConv w: Tensor, kernel k: Int) throws -> Tensor {
        try require(w.rank == 2 && k > 0 && w.shape[0] % (k * k) == 0,
                    "oihwWeight: expected [k·k·Cin, Cout] for kernel \(k), got \(w.shape)")
        let (cin, cout) = (w.shape[0] / (k * k), w.shape[1])
        let out = Tensor(uninitializedShape: [cout, cin, k, k])
        permutePatchConvWeight(w, into: out, cout: cout, cin: cin, kernel: k, toGEMM: false)
        return out
    }

    /// OIHW index ((co·Cin + ci)·k + ky)·k + kx ↔ GEMM index ((ky·k + kx)·Cin + ci)·Cout + co.
    private static func permutePatchConvWeight(_ src: Tensor, into dst: Tensor, cout: Int, cin: Int, kernel k: Int, toGEMM: Bool) {
        let s = src.storage.pointer, d = dst.storage.pointer
        for co in 0..<cout {
            for ci in 0..<cin {
                for ky in 0..<k {
                    for kx in 0..<k {
                        let oihw = ((co * cin + ci) * k + ky) * k + kx, gemm = ((ky * k + kx) * cin + ci) * cout + co
                        if toGEMM { d[gemm] = s[oihw] } else { d[oihw] = s[gemm] }
                    }
                }
            }
        }
    }

    /// PyTorch depthwise weight [C, 1, kH, kW] → [kH, kW, C] for `depthwiseConv2d`.
    public static func depthwiseWeight(fromOIHW w: Tensor) throws -> Tensor {
        try require(w.rank == 4 && w.shape[1] == 1, "depthwiseWeight: expected [C, 1, kH, kW], got \(w.shape)")
        let (c, kh, kw) = (w.shape[0], w.shape[2], w.shape[3])
        return transposeLastTwo(w, batch: 1, rows: c, cols: kh * kw, outShape: [kh, kw, c])
    }
}
