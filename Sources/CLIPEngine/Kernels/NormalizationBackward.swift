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
        // dγ and dβ are column sums over all rows (one "image"), dx is written on the way.
        let sums = columnSums(images: 1, rowsPerImage: rows, width: width, runs: 2) { r, count, run in
            kernels.layer_norm_backward_rows(xp + r * width, gp + r * width, wp, dp + r * width, run, run + width, width, count, eps)
        }
        if let weightGrad { for i in 0..<width { weightGrad[i] += Float(sums[0][i]) } }
        if let biasGrad { for i in 0..<width { biasGrad[i] += Float(sums[1][i]) } }
        return dx
    }

    /// Backward of timm's GlobalResponseNorm (channels-last, y = x + β + γ·x·nx with
    /// gx = ‖x‖₂ over H, W per (n, c) and nx = gx / (mean_c gx + eps)). x: [N, H, W, C].
    /// `squareSums` (Σ_hw x² per (n, c)) when the caller has them; with `geluInput` z (x = GELU(z))
    /// the result is the gradient at z, GELU's backward run in the same pass.
    public static func globalResponseNormBackward(_ dy: Tensor, input x: Tensor, weight: Tensor, eps: Float,
                                                  squareSums: [Double]? = nil, geluInput z: Tensor? = nil,
                                                  weightGrad: UnsafeMutablePointer<Float>?, biasGrad: UnsafeMutablePointer<Float>?) throws -> Tensor {
        try require(x.rank == 4 && weight.shape == [x.shape[3]] && dy.shape == x.shape && (z == nil || z!.shape == x.shape),
                    "globalResponseNormBackward: dy \(dy.shape), input \(x.shape), weight \(weight.shape), GELU input \(z?.shape ?? [])")
        let (n, hw, c) = (x.shape[0], x.shape[1] * x.shape[2], x.shape[3])
        try require(squareSums == nil || squareSums!.count == n * c, "globalResponseNormBackward: \(squareSums?.count ?? 0) square sums for \(x.shape)")
        let xp = x.storage.pointer, gp = dy.storage.pointer, wp = weight.storage.pointer
        let squares = squareSums ?? columnSums(xp, images: n, rowsPerImage: hw, width: c, squared: true)
        // Per (n, c): Σ_hw dy·x and Σ_hw dy, in one pass over the map.
        let sums = columnSums(images: n, rowsPerImage: hw, width: c, runs: 2) { r, rows, run in
            kernels.accumulate_rows_dot(gp + r * c, xp + r * c, run, run + c, c, rows)
        }
        let (dyx, dys) = (sums[0], sums[1])
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
        let dp = dx.storage.pointer, zp = z?.storage.pointer
        scale.withUnsafeBufferPointer { sb in
            coef.withUnsafeBufferPointer { cb in
                chunks(n * hw, workPerItem: (zp == nil ? 3 : 40) * c) { range in
                    kernels.grn_backward_rows(gp, xp, zp, sb.baseAddress!, cb.baseAddress!, dp, c, hw,
                                              range.lowerBound, range.upperBound)
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
