// Backward of the GEMM-based ops in Linear.swift / PackedGEMM.swift: linear (nn.Linear layout),
// matmul (x · w, open_clip's `proj` / `text_projection`) and the kernel == stride patch
// convolution. Linear and matmul run on the C kernels: dX = dY·W on the packed GEMM (W packed),
// dW = dYᵀ·X on `gemm_at`, which reads dY and X where they lie; the patch convolution through `sgemm`;
// gradients of parameters are *added* into the caller's buffers, so micro-batches accumulate
// without copies.

import CLIPKernels

extension Ops {
    /// Backward of y = x · Wᵀ + b (x: [..., in], W: [out, in]). Adds dW += dyᵀ·x into
    /// `weightGrad` ([out, in]) and db += Σ dy into `biasGrad` when given; returns dx = dy · W when
    /// `inputGrad` is true.
    /// In `.bf16` (amp_bf16 training) both products round their operands to bf16 and sum in fp32,
    /// as PyTorch's autocast does in backward; the gradients themselves stay fp32.
    public static func linearBackward(_ dy: Tensor, input x: Tensor, weight: Tensor,
                                      weightGrad: UnsafeMutablePointer<Float>?, biasGrad: UnsafeMutablePointer<Float>?,
                                      inputGrad: Bool = true, precision: Precision = .fp32) throws -> Tensor? {
        try productBackward(dy, input: x, weight: weight, outByIn: true, weightGrad: weightGrad, biasGrad: biasGrad,
                            inputGrad: inputGrad, precision: precision, op: "linearBackward")
    }

    /// Backward of y = x · w (x: [..., in], w: [in, out]): dw += xᵀ·dy; returns dx = dy · wᵀ.
    public static func matmulBackward(_ dy: Tensor, input x: Tensor, weight w: Tensor,
                                      weightGrad: UnsafeMutablePointer<Float>?, inputGrad: Bool = true) throws -> Tensor? {
        try productBackward(dy, input: x, weight: w, outByIn: false, weightGrad: weightGrad, biasGrad: nil,
                            inputGrad: inputGrad, precision: .fp32, op: "matmulBackward")
    }

    /// Both layouts of the weight: [out, in] (`outByIn`, nn.Linear) or [in, out].
    static func productBackward(_ dy: Tensor, input x: Tensor, weight w: Tensor, outByIn: Bool,
                                weightGrad: UnsafeMutablePointer<Float>?, biasGrad: UnsafeMutablePointer<Float>?,
                                inputGrad: Bool, precision: Precision, op: String) throws -> Tensor? {
        try require(w.rank == 2, "\(op): weight \(w.shape) must be 2-D")
        let (outF, inF) = outByIn ? (w.shape[0], w.shape[1]) : (w.shape[1], w.shape[0])
        try require(x.shape.last == inF && dy.shape.last == outF && x.count / max(inF, 1) == dy.count / max(outF, 1),
                    "\(op): dy \(dy.shape), input \(x.shape), weight \(w.shape)")
        try require(precision != .int8, "\(op): int8 has no backward pass (train in fp32 or amp_bf16)")
        let m = x.count / max(inF, 1)
        if let weightGrad, m > 0 {
            if outByIn {
                // dW[out, in] += dyᵀ · x
                weightGradientGEMM(dy.storage.pointer, columns: outF, x.storage.pointer, columns: inF, rows: m,
                                   into: weightGrad, precision: precision)
            } else {
                // dw[in, out] += xᵀ · dy
                weightGradientGEMM(x.storage.pointer, columns: inF, dy.storage.pointer, columns: outF, rows: m,
                                   into: weightGrad, precision: precision)
            }
        }
        if let biasGrad { addColumnSums(dy.storage.pointer, rows: m, width: outF, into: biasGrad) }
        guard inputGrad else { return nil }
        let dx = Tensor(uninitializedShape: x.shape)
        if m > 0 {
            // dx = dy · W ([out, in] as B[k = out, n = in]), or dy · wᵀ for w [in, out].
            let packedW = PackedMatrix(w.storage.pointer, ld: w.shape[1], transposed: !outByIn, k: outF, n: inF,
                                       precision: precision)
            packedGEMM(dy.storage.pointer, m: m, lda: outF, packedW, dx.storage.pointer, ldc: inF,
                       bias: nil, activation: .none, accumulate: false)
        }
        return dx
    }

    /// Backward of `patchConv2d` (kernel == stride == k, channels-last). x: [N, H, W, Cin];
    /// weight in PyTorch's OIHW layout [Cout, Cin, k, k]; dy: [N, H/k, W/k, Cout]. Adds the
    /// weight gradient (OIHW) and bias gradient; returns dx (zero where the floor dropped pixels).
    public static func patchConv2dBackward(_ dy: Tensor, input x: Tensor, weightOIHW w: Tensor, kernel k: Int,
                                           weightGrad: UnsafeMutablePointer<Float>?, biasGrad: UnsafeMutablePointer<Float>?,
                                           inputGrad: Bool = true) throws -> Tensor? {
        try require(x.rank == 4 && w.rank == 4 && w.shape[1] == x.shape[3] && w.shape[2] == k && w.shape[3] == k,
                    "patchConv2dBackward: input \(x.shape), weight \(w.shape), kernel \(k)")
        let (n, h, wd, cin) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let cout = w.shape[0]
        let (oh, ow) = (h / k, wd / k)
        try require(dy.shape == [n, oh, ow, cout], "patchConv2dBackward: dy \(dy.shape) for input \(x.shape) (need [\(n), \(oh), \(ow), \(cout)])")
        let (patches, _, _) = try gatherPatches(x, kernel: k, weightRows: k * k * cin)
        let rows = k * k * cin, count = n * oh * ow
        if let weightGrad, count > 0 {
            // dWg[(ky·k+kx)·Cin+ci, co] = Σ_p patches[p, ·] dy[p, co], then into OIHW.
            let dwg = UnsafeMutablePointer<Float>.allocate(capacity: rows * cout)
            defer { dwg.deallocate() }
            sgemm(transA: true, m: rows, n: cout, k: count, a: patches.storage.pointer, lda: rows,
                  b: dy.storage.pointer, ldb: cout, c: dwg, ldc: cout)
            for co in 0..<cout {
                for ci in 0..<cin {
                    for ky in 0..<k {
                        for kx in 0..<k {
                            weightGrad[((co * cin + ci) * k + ky) * k + kx] += dwg[((ky * k + kx) * cin + ci) * cout + co]
                        }
                    }
                }
            }
        }
        if let biasGrad { addColumnSums(dy.storage.pointer, rows: count, width: cout, into: biasGrad) }
        guard inputGrad else { return nil }
        let wg = try patchConvWeight(fromOIHW: w)              // [k·k·Cin, Cout]
        let dpatches = Tensor(uninitializedShape: [count, rows])
        if count > 0 {
            sgemm(transB: true, m: count, n: rows, k: cout, a: dy.storage.pointer, lda: cout,
                  b: wg.storage.pointer, ldb: cout, c: dpatches.storage.pointer, ldc: rows)
        }
        let dx = Tensor(zeros: x.shape)
        let src = dpatches.storage.pointer, dst = dx.storage.pointer
        let run = k * cin
        chunks(count, workPerItem: rows) { range in
            for p in range {
                let b = p / (oh * ow), oy = (p / ow) % oh, ox = p % ow
                for ky in 0..<k {
                    (dst + ((b * h + oy * k + ky) * wd + ox * k) * cin).update(from: src + p * rows + ky * run, count: run)
                }
            }
        }
        return dx
    }

    /// c[p, q] += Σ_r a[r, p] · b[r, q] (c = aᵀ·b, [pColumns, qColumns]) for a [rows, pColumns] and
    /// b [rows, qColumns]: a weight gradient, summed over every activation row. Threads take row
    /// blocks of c (whole micro-tiles), or column groups when c has few rows. In `.bf16` both
    /// operands are rounded to bf16 as they are packed, and the products summed in fp32.
    static func weightGradientGEMM(_ a: UnsafePointer<Float>, columns p: Int, _ b: UnsafePointer<Float>, columns q: Int,
                                   rows: Int, into c: UnsafeMutablePointer<Float>, precision: Precision = .fp32) {
        guard rows > 0, p > 0, q > 0 else { return }
        let threads = threadsForPackedGEMM(flops: 2 * rows * p * q)
        // One call: rows lo..<hi and columns cLo..<cHi of c.
        let compute: (Int, Int, Int, Int) -> Void
        if precision == .bf16 {
            compute = { lo, hi, cLo, cHi in
                // CLIP_AT_BF16_SCRATCH(cHi − cLo) floats (a C macro Swift cannot call).
                let width = PackedMatrix.panelWidth
                let scratch = TensorStorage(count: Int(CLIP_AT_BF16_KC) * ((cHi - cLo + width - 1) / width * width + Int(CLIP_AT_BF16_MC)))
                bf16WeightGradientGEMM(a, p, b, q, rows, c, q, 1, lo, hi, cLo, cHi, scratch.pointer)
            }
        } else {
            compute = { lo, hi, cLo, cHi in kernels.gemm_at(a, p, b, q, rows, c, q, 1, lo, hi, cLo, cHi) }
        }
        let tile = kernels.gemm_row_block / 16    // gemm_row_block is 16 micro-tiles of rows
        // Each thread reads (in bf16: packs) all of the operand whose side it does not split: split
        // the larger side, so that the smaller one is read twice. In fp32 too: at p = 96, q = 384
        // over 25,088 rows (ConvNeXt's first stage, batch 8) splitting p read the 38 MB of b twice
        // from memory, 63% of the FMA peak on two threads against 76% splitting q.
        let splitRows = p >= 4 * tile * threads && p >= q
        if threads <= 1 {
            compute(0, p, 0, q)
        } else if splitRows {
            let tiles = (p + tile - 1) / tile
            Parallel.run(threads) { t in
                let lo = tiles * t / threads * tile, hi = min(p, tiles * (t + 1) / threads * tile)
                if lo < hi { compute(lo, hi, 0, q) }
            }
        } else {
            // Column groups a whole panel wide: a multiple of every level's micro-tile width.
            let width = PackedMatrix.panelWidth, groups = (q + width - 1) / width
            Parallel.run(threads) { t in
                let lo = groups * t / threads * width, hi = min(q, groups * (t + 1) / threads * width)
                if lo < hi { compute(0, p, lo, hi) }
            }
        }
    }

    /// into[c] += Σ_r x[r, c] (Double accumulation per column block).
    static func addColumnSums(_ x: UnsafePointer<Float>, rows: Int, width: Int, into: UnsafeMutablePointer<Float>) {
        guard rows > 0, width > 0 else { return }
        let sums = columnSums(x, images: 1, rowsPerImage: rows, width: width, squared: false)
        for c in 0..<width { into[c] += Float(sums[c]) }
    }
}
