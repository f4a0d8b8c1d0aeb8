// Backward of `depthwiseConv2d` (DepthwiseConv.swift): channels-last, stride 1, zero padding.
//   y[n, i, j, c] = b[c] + Σ_{ky,kx} x[n, i+ky−p, j+kx−p, c] · w[ky, kx, c]
//   dx[n, u, v, c] = Σ_{ky,kx} dy[n, u−ky+p, v−kx+p, c] · w[ky, kx, c]
//   dw[ky, kx, c]  = Σ_{n,i,j} dy[n, i, j, c] · x[n, i+ky−p, j+kx−p, c]
// Plain loops over rows; each thread sums its own dw/db, reduced at the end.

extension Ops {
    /// x: [N, H, W, C] (the forward's input); weight: [kH, kW, C] (the engine's layout); dy: the
    /// forward's output shape. Adds dw (in PyTorch's layout [C, 1, kH, kW]) and db into the given
    /// buffers; returns dx when `inputGrad`.
    public static func depthwiseConv2dBackward(_ dy: Tensor, input x: Tensor, weight: Tensor, padding: Int,
                                               weightGrad: UnsafeMutablePointer<Float>?, biasGrad: UnsafeMutablePointer<Float>?,
                                               inputGrad: Bool = true) throws -> Tensor? {
        try require(x.rank == 4 && weight.rank == 3 && weight.shape[2] == x.shape[3] && padding >= 0,
                    "depthwiseConv2dBackward: input \(x.shape), weight \(weight.shape), padding \(padding)")
        let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (kh, kw) = (weight.shape[0], weight.shape[1])
        let (oh, ow) = (h + 2 * padding - kh + 1, w + 2 * padding - kw + 1)
        try require(dy.shape == [n, oh, ow, c], "depthwiseConv2dBackward: dy \(dy.shape) for input \(x.shape) (need [\(n), \(oh), \(ow), \(c)])")
        let xp = x.storage.pointer, gp = dy.storage.pointer, wp = weight.storage.pointer

        if weightGrad != nil || biasGrad != nil {
            let rows = n * oh
            let parts = max(1, min(Parallel.threadCount, rows * ow * c * kh * kw / 200_000))
            let partial = UnsafeMutablePointer<Float>.allocate(capacity: parts * (kh * kw + 1) * c)
            partial.initialize(repeating: 0, count: parts * (kh * kw + 1) * c)
            defer { partial.deallocate() }
            Parallel.forEachChunk(parts, workPerItem: Parallel.minimumWorkPerThread) { range in
                for part in range {
                    let dw = partial + part * (kh * kw + 1) * c, db = dw + kh * kw * c
                    for row in (rows * part / parts)..<(rows * (part + 1) / parts) {
                        let image = row / oh, oy = row % oh
                        for ox in 0..<ow {
                            let g = gp + ((image * oh + oy) * ow + ox) * c
                            for ch in 0..<c { db[ch] += g[ch] }
                            for ky in 0..<kh {
                                let iy = oy + ky - padding
                                if iy < 0 || iy >= h { continue }
                                for kx in 0..<kw {
                                    let ix = ox + kx - padding
                                    if ix < 0 || ix >= w { continue }
                                    let xr = xp + ((image * h + iy) * w + ix) * c, d = dw + (ky * kw + kx) * c
                                    for ch in 0..<c { d[ch] += g[ch] * xr[ch] }
                                }
                            }
                        }
                    }
                }
            }
            for part in 0..<parts {
                let dw = partial + part * (kh * kw + 1) * c, db = dw + kh * kw * c
                if let weightGrad {
                    for ch in 0..<c { for t in 0..<(kh * kw) { weightGrad[ch * kh * kw + t] += dw[t * c + ch] } }
                }
                if let biasGrad { for ch in 0..<c { biasGrad[ch] += db[ch] } }
            }
        }

        guard inputGrad else { return nil }
        let dx = Tensor(zeros: x.shape)
        let dp = dx.storage.pointer
        chunks(n * h, workPerItem: 2 * w * c * kh * kw) { rows in
            for row in rows {
                let image = row / h, iy = row % h
                for ix in 0..<w {
                    let d = dp + ((image * h + iy) * w + ix) * c
                    for ky in 0..<kh {
                        let oy = iy - ky + padding
                        if oy < 0 || oy >= oh { continue }
                        for kx in 0..<kw {
                            let ox = ix - kx + padding
                            if ox < 0 || ox >= ow { continue }
                            let g = gp + ((image * oh + oy) * ow + ox) * c, wt = wp + (ky * kw + kx) * c
                            for ch in 0..<c { d[ch] += g[ch] * wt[ch] }
                        }
                    }
                }
            }
        }
        return dx
    }
}
