// Backward of the normalisations in Normalization.swift: LayerNorm over the last dimension
// (channels-last maps and tokens alike), timm's GlobalResponseNorm, and F.normalize (L2).
// Statistics are recomputed from the saved input (one extra pass; nothing else is kept).

extension Ops {
    /// Backward of LayerNorm over the last dimension. x: [..., C] (the forward's input), dy like
    /// x. Adds dγ = Σ dy·x̂ and dβ = Σ dy into the given buffers; returns
    /// dx = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)) with dx̂ = dy·γ.
    public static func layerNormBackward(_ dy: Tensor, input x: Tensor, weight: Tensor, eps: Float,
                                         weightGrad: UnsafeMutablePointer<Float>?, biasGrad: UnsafeMutablePointer<Float>?) throws -> Tensor {
        try require(x.rank >= 1 && x.shape.last! > 0 && weight.shape == [x.shape.last!] && dy.shape == x.shape,
                    "layerNormBackward: dy \(dy.shape), input \(x.shape), weight \(weight.shape)")
        let width = x.shape.last!
        let rows = x.count / width
        let dx = Tensor(uninitializedShape: x.shape)
        let xp = x.storage.pointer, gp = dy.storage.pointer, wp = weight.storage.pointer, dp = dx.storage.pointer
        let parts = max(1, min(Parallel.threadCount, rows * width / 100_000))
        // Per-part partial parameter gradients, summed at the end (no shared writes).
        let partial = UnsafeMutablePointer<Double>.allocate(capacity: parts * 2 * width)
        partial.initialize(repeating: 0, count: parts * 2 * width)
        defer { partial.deallocate() }
        Parallel.forEachChunk(parts, workPerItem: Parallel.minimumWorkPerThread) { range in
            let xhat = UnsafeMutablePointer<Float>.allocate(capacity: width)
            defer { xhat.deallocate() }
            for part in range {
                let pw = partial + part * 2 * width, pb = pw + width
                for r in (rows * part / parts)..<(rows * (part + 1) / parts) {
                    let xr = xp + r * width, gr = gp + r * width, dr = dp + r * width
                    var mean = 0.0
                    for i in 0..<width { mean += Double(xr[i]) }
                    mean /= Double(width)
                    var variance = 0.0
                    for i in 0..<width { let d = Double(xr[i]) - mean; variance += d * d }
                    variance /= Double(width)
                    let rstd = 1 / (variance + Double(eps)).squareRoot()
                    var sumG = 0.0, sumGX = 0.0
                    for i in 0..<width {
                        let xh = Float((Double(xr[i]) - mean) * rstd)
                        xhat[i] = xh
                        let g = Double(gr[i] * wp[i])
                        sumG += g
                        sumGX += g * Double(xh)
                        pw[i] += Double(gr[i] * xh)
                        pb[i] += Double(gr[i])
                    }
                    let meanG = Float(sumG / Double(width)), meanGX = Float(sumGX / Double(width)), rs = Float(rstd)
                    for i in 0..<width { dr[i] = rs * (gr[i] * wp[i] - meanG - xhat[i] * meanGX) }
                }
            }
        }
        for part in 0..<parts {
            let pw = partial + part * 2 * width, pb = pw + width
            if let weightGrad { for i in 0..<width { weightGrad[i] += Float(pw[i]) } }
            if let biasGrad { for i in 0..<width { biasGrad[i] += Float(pb[i]) } }
        }
        return dx
    }

    /// Backward of timm's GlobalResponseNorm (channels-last, y = x + β + γ·x·nx with
    /// gx = ‖x‖₂ over H, W per (n, c) and nx = gx / (mean_c gx + eps)). x: [N, H, W, C].
    public static func globalResponseNormBackward(_ dy: Tensor, input x: Tensor, weight: Tensor, eps: Float,
                                                  weightGrad: UnsafeMutablePointer<Float>?, biasGrad: UnsafeMutablePointer<Float>?) throws -> Tensor {
        try require(x.rank == 4 && weight.shape == [x.shape[3]] && dy.shape == x.shape,
                    "globalResponseNormBackward: dy \(dy.shape), input \(x.shape), weight \(weight.shape)")
        let (n, hw, c) = (x.shape[0], x.shape[1] * x.shape[2], x.shape[3])
        let xp = x.storage.pointer, gp = dy.storage.pointer, wp = weight.storage.pointer
        let squares = columnSums(xp, images: n, rowsPerImage: hw, width: c, squared: true)
        // Per (n, c): Σ_hw dy·x and Σ_hw dy, in one pass over the map.
        var dyx = [Double](repeating: 0, count: n * c), dys = [Double](repeating: 0, count: n * c)
        for image in 0..<n {
            for r in 0..<hw {
                let base = (image * hw + r) * c
                for ch in 0..<c {
                    let g = Double(gp[base + ch])
                    dyx[image * c + ch] += g * Double(xp[base + ch])
                    dys[image * c + ch] += g
                }
            }
        }
        // Per (n, c) coefficients: dx = dy·(1 + γ·nx) + x·coef.
        var scale = [Float](repeating: 0, count: n * c), coef = [Float](repeating: 0, count: n * c)
        for image in 0..<n {
            var g = [Double](repeating: 0, count: c)
            for ch in 0..<c { g[ch] = squares[image * c + ch].squareRoot() }
            let denom = g.reduce(0, +) / Double(c) + Double(eps)
            // nx_c = g_c / denom; dL/dnx_c = γ_c Σ dy·x.
            var dnx = [Double](repeating: 0, count: c)
            var cross = 0.0   // Σ_c dnx_c · g_c
            for ch in 0..<c {
                dnx[ch] = Double(wp[ch]) * dyx[image * c + ch]
                cross += dnx[ch] * g[ch]
                if let weightGrad { weightGrad[ch] += Float(dyx[image * c + ch] * g[ch] / denom) }
                if let biasGrad { biasGrad[ch] += Float(dys[image * c + ch]) }
            }
            for ch in 0..<c {
                // dg_c = dnx_c/denom − cross/(denom²·C); dx via g: dg_c·x/g_c (0 where g_c = 0, as torch).
                let dg = dnx[ch] / denom - cross / (denom * denom * Double(c))
                scale[image * c + ch] = Float(1 + Double(wp[ch]) * g[ch] / denom)
                coef[image * c + ch] = g[ch] > 0 ? Float(dg / g[ch]) : 0
            }
        }
        let dx = Tensor(uninitializedShape: x.shape)
        let dp = dx.storage.pointer
        scale.withUnsafeBufferPointer { sb in
            coef.withUnsafeBufferPointer { cb in
                chunks(n * hw, workPerItem: 3 * c) { range in
                    for r in range {
                        let s = sb.baseAddress! + (r / hw) * c, k = cb.baseAddress! + (r / hw) * c
                        let xr = xp + r * c, gr = gp + r * c, dr = dp + r * c
                        for ch in 0..<c { dr[ch] = gr[ch] * s[ch] + xr[ch] * k[ch] }
                    }
                }
            }
        }
        return dx
    }

    /// Backward of `l2Normalize` (rows divided by max(‖x‖, 1e-12)): dx = (dy − y·(y·dy)) / ‖x‖.
    public static func l2NormalizeBackward(_ dy: Tensor, input x: Tensor) throws -> Tensor {
        try require(dy.shape == x.shape && x.rank >= 1, "l2NormalizeBackward: dy \(dy.shape) against input \(x.shape)")
        let dx = Tensor(uninitializedShape: x.shape)
        guard let width = x.shape.last, width > 0 else { return dx }
        let xp = x.storage.pointer, gp = dy.storage.pointer, dp = dx.storage.pointer
        for r in 0..<(x.count / width) {
            let xr = xp + r * width, gr = gp + r * width, dr = dp + r * width
            var sq = 0.0, dot = 0.0
            for i in 0..<width { sq += Double(xr[i]) * Double(xr[i]); dot += Double(xr[i]) * Double(gr[i]) }
            let norm = sq.squareRoot()
            if norm <= 1e-12 {
                // Below the clamp the forward is x / 1e-12, a plain scaling.
                for i in 0..<width { dr[i] = Float(Double(gr[i]) / 1e-12) }
                continue
            }
            for i in 0..<width { dr[i] = Float((Double(gr[i]) - Double(xr[i]) * dot / sq) / norm) }
        }
        return dx
    }
}
