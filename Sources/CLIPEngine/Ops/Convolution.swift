// Convolutions on channels-last maps (N, H, W, C).

extension Ops {
    /// PyTorch conv weight [Cout, Cin, k, k] -> GEMM weight [k·k·Cin, Cout], row (ky·k + kx)·Cin + ci.
    public static func patchConvWeight(fromOIHW w: Tensor) throws -> Tensor {
        guard w.rank == 4, w.shape[2] == w.shape[3] else {
            throw TensorError.shapeMismatch("patch conv weight must be [Cout, Cin, k, k], got \(w.shape)")
        }
        let cout = w.shape[0], cin = w.shape[1], k = w.shape[2]
        var out = Tensor(uninitializedShape: [k * k * cin, cout])
        let src = w.storage.pointer
        out.withUnsafeMutableBufferPointer { dst in
            for o in 0..<cout { for i in 0..<cin { for ky in 0..<k { for kx in 0..<k {
                dst[((ky * k + kx) * cin + i) * cout + o] = src[((o * cin + i) * k + ky) * k + kx]
            } } } }
        }
        return out
    }

    /// PyTorch depthwise weight [C, 1, k, k] -> [k, k, C].
    public static func depthwiseWeight(fromOIHW w: Tensor) throws -> Tensor {
        guard w.rank == 4, w.shape[1] == 1, w.shape[2] == w.shape[3] else {
            throw TensorError.shapeMismatch("depthwise weight must be [C, 1, k, k], got \(w.shape)")
        }
        let c = w.shape[0], k = w.shape[2]
        var out = Tensor(uninitializedShape: [k, k, c])
        let src = w.storage.pointer
        out.withUnsafeMutableBufferPointer { dst in
            for ch in 0..<c { for t in 0..<(k * k) { dst[t * c + ch] = src[ch * k * k + t] } }
        }
        return out
    }

    /// Convolution with kernel = stride = k, no padding: gathers each k×k patch into a row (k runs
    /// of k·Cin contiguous floats in channels-last order) and multiplies by the weight in one GEMM.
    public static func patchConv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, kernel k: Int) throws -> Tensor {
        try patchConv2d(x, packed: PackedMatrix(kByN: weight), bias: bias, kernel: k)
    }

    /// `patchConv2d` with the GEMM weight [k·k·Cin, Cout] packed once at load time.
    public static func patchConv2d(_ x: Tensor, packed weight: PackedMatrix, bias: Tensor?, kernel k: Int) throws -> Tensor {
        guard x.rank == 4, k > 0, weight.k == k * k * x.shape[3] else {
            throw TensorError.shapeMismatch("patch conv: input \(x.shape) (N,H,W,C), weight [\(weight.k), \(weight.n)], kernel \(k)")
        }
        let n = x.shape[0], h = x.shape[1], w = x.shape[2], cin = x.shape[3], cout = weight.n
        let oh = h / k, ow = w / k
        guard oh > 0, ow > 0 else { throw TensorError.shapeMismatch("patch conv: input \(x.shape) smaller than kernel \(k)") }
        if let bias, bias.shape != [cout] { throw TensorError.shapeMismatch("patch conv: bias \(bias.shape) for \(cout) outputs") }
        let rows = n * oh * ow, kdim = k * k * cin
        var patches = Tensor(uninitializedShape: [rows, kdim])
        let src = x.storage.pointer
        patches.withUnsafeMutableBufferPointer { dst in
            let d = dst.baseAddress!
            Parallel.forEachChunk(rows, workPerItem: kdim) { range in
                for r in range {
                    let img = r / (oh * ow), oy = (r / ow) % oh, ox = r % ow
                    for ky in 0..<k {
                        let from = src + ((img * h + oy * k + ky) * w + ox * k) * cin
                        (d + r * kdim + ky * k * cin).update(from: from, count: k * cin)
                    }
                }
            }
        }
        return try linear(patches, packed: weight, bias: bias).reshaped([n, oh, ow, cout])
    }

    /// Depthwise convolution, stride 1, zero padding `padding`; weight [kH, kW, C].
    /// Vectorised over channels (contiguous in channels-last): each output pixel accumulates its
    /// in-bounds taps, 16 channels per register; border taps are skipped by clamping tap ranges.
    public static func depthwiseConv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, padding: Int) throws -> Tensor {
        guard x.rank == 4, weight.rank == 3, weight.shape[2] == x.shape[3], padding >= 0 else {
            throw TensorError.shapeMismatch("depthwise conv: input \(x.shape) (N,H,W,C), weight \(weight.shape) (kH,kW,C)")
        }
        let n = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3]
        let kh = weight.shape[0], kw = weight.shape[1]
        let oh = h + 2 * padding - kh + 1, ow = w + 2 * padding - kw + 1
        guard oh > 0, ow > 0 else { throw TensorError.shapeMismatch("depthwise conv: input \(x.shape) smaller than kernel") }
        if let bias, bias.shape != [c] { throw TensorError.shapeMismatch("depthwise conv: bias \(bias.shape) for \(c) channels") }
        var y = Tensor(uninitializedShape: [n, oh, ow, c])
        let src = x.storage.pointer, wt = weight.storage.pointer
        // Bias padded to whole registers so the channel loop needs no tail case.
        let cPad = (c + 15) & ~15
        var biasPadded = [Float](repeating: 0, count: cPad)
        if let bias { for i in 0..<c { biasPadded[i] = bias.storage.pointer[i] } }
        y.withUnsafeMutableBufferPointer { out in
            let dstBase = out.baseAddress!
            biasPadded.withUnsafeBufferPointer { bp in
                let bptr = bp.baseAddress!
                Parallel.forEachChunk(n * oh, workPerItem: ow * c * kh * kw * 2) { range in
                    // One row of outputs at a time; 16-channel slices, taps in registers' reach.
                    for row in range {
                        let img = row / oh, oy = row % oh
                        let ky0 = max(0, padding - oy), ky1 = min(kh, h + padding - oy)
                        let dstRow = dstBase + row * ow * c
                        var c0 = 0
                        while c0 < c {
                            let lanes = min(16, c - c0)
                            for ox in 0..<ow {
                                let kx0 = max(0, padding - ox), kx1 = min(kw, w + padding - ox)
                                var acc = load16(bptr + c0)
                                if lanes == 16 {
                                    for ky in ky0..<ky1 {
                                        let iy = oy + ky - padding
                                        let inRow = src + ((img * h + iy) * w) * c + c0
                                        let wRow = wt + (ky * kw) * c + c0
                                        for kx in kx0..<kx1 {
                                            let ix = ox + kx - padding
                                            acc.addProduct(load16(inRow + ix * c), load16(wRow + kx * c))
                                        }
                                    }
                                    store16(acc, dstRow + ox * c + c0)
                                } else {
                                    for lane in 0..<lanes {
                                        var s = acc[lane]
                                        for ky in ky0..<ky1 {
                                            let iy = oy + ky - padding
                                            for kx in kx0..<kx1 {
                                                let ix = ox + kx - padding
                                                s += src[((img * h + iy) * w + ix) * c + c0 + lane] * wt[(ky * kw + kx) * c + c0 + lane]
                                            }
                                        }
                                        dstRow[ox * c + c0 + lane] = s
                                    }
                                }
                            }
                            c0 += 16
                        }
                    }
                }
            }
        }
        return y
    }
}
