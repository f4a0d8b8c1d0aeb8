// Row normalisations over the last dimension (LayerNorm, softmax, L2) and timm's
// GlobalResponseNorm over the spatial dimensions of a channels-last map.

/// A normalisation whose output only feeds a GEMM (`Ops.linear(…, normalizedBy:)`), described
/// rather than applied, so that a bf16 GEMM can apply it while it converts its input.
public enum InputNormalization {
    /// LayerNorm over the last dimension: (x − mean)/√(var + eps)·weight + bias.
    case layerNorm(weight: Tensor, bias: Tensor, eps: Float)
    /// x[r, c]·scale[(r / rowsPerImage)·C + c] + shift[c]: GRN's output (`Ops.globalResponseNormAffine`).
    case channelAffine(scale: [Float], shift: Tensor, rowsPerImage: Int)

    /// Throws unless this normalisation fits x (its last dimension, its rows' images).
    func check(_ x: Tensor) throws {
        switch self {
        case let .layerNorm(weight, bias, _):
            try Ops.checkLayerNorm(x, weight, bias)
        case let .channelAffine(scale, shift, rowsPerImage):
            let width = x.shape.last ?? 0, rows = x.count / max(width, 1)
            try Ops.require(width > 0 && rowsPerImage > 0 && shift.shape == [width]
                                && rows % rowsPerImage == 0 && scale.count == rows / rowsPerImage * width,
                            "channel affine: \(scale.count) scales and shift \(shift.shape) for \(x.shape) in images of \(rowsPerImage) rows")
        }
    }

    /// The C kernels' description of this normalisation (normalize_rows_bf16's, gemm_packed_normalized's
    /// scale, shift, rows per scale row, eps, layer_norm flag), valid inside `body`.
    func withKernelOperands<R>(_ body: (UnsafePointer<Float>, UnsafePointer<Float>, Int, Float, Int32) throws -> R) rethrows -> R {
        switch self {
        case let .layerNorm(weight, bias, eps):
            return try withExtendedLifetime((weight, bias)) {
                try body(weight.storage.pointer, bias.storage.pointer, 1, eps, 1)
            }
        case let .channelAffine(scale, shift, rowsPerImage):
            return try withExtendedLifetime(shift) {
                try scale.withUnsafeBufferPointer { try body($0.baseAddress!, shift.storage.pointer, rowsPerImage, 0, 0) }
            }
        }
    }

    /// The normalised tensor, computed on its own (where the GEMM does not fuse it).
    public func apply(to x: Tensor) throws -> Tensor {
        try check(x)
        switch self {
        case let .layerNorm(weight, bias, eps):
            return try Ops.layerNorm(x, weight: weight, bias: bias, eps: eps)
        case let .channelAffine(scale, shift, rowsPerImage):
            let width = x.shape.last!
            let out = Tensor(uninitializedShape: x.shape)
            Ops.applyChannelAffine(x.storage.pointer, out.storage.pointer, rows: x.count / width, width: width,
                                   rowsPerImage: rowsPerImage, scale: scale, shift: shift)
            return out
        }
    }
}

extension Ops {
    // MARK: LayerNorm

    /// LayerNorm over the last dimension with biased variance (PyTorch): (x − mean)/√(var + eps)·γ + β.
    public static func layerNorm(_ x: Tensor, weight: Tensor, bias: Tensor, eps: Float) throws -> Tensor {
        try checkLayerNorm(x, weight, bias)
        let out = Tensor(uninitializedShape: x.shape)
        layerNormRows(x.storage.pointer, out.storage.pointer, x.shape, weight, bias, eps)
        return out
    }

    public static func layerNormInPlace(_ x: inout Tensor, weight: Tensor, bias: Tensor, eps: Float) throws {
        try checkLayerNorm(x, weight, bias)
        // Only the shape is captured: holding a second reference to x's storage would make the
        // mutable access below copy the whole tensor (copy-on-write).
        let shape = x.shape
        x.withUnsafeMutableBufferPointer { buf in
            layerNormRows(buf.baseAddress!, buf.baseAddress!, shape, weight, bias, eps)
        }
    }

    static func checkLayerNorm(_ x: Tensor, _ weight: Tensor, _ bias: Tensor) throws {
        try require(x.rank >= 1 && x.shape.last! > 0 && weight.shape == [x.shape.last!] && bias.shape == weight.shape,
                    "layerNorm: input \(x.shape), weight \(weight.shape), bias \(bias.shape) (need [..., C], [C], [C])")
    }

    /// `src` and `dst` may be the same buffer: each row is read twice before it is written.
    static func layerNormRows(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ shape: [Int],
                              _ weight: Tensor, _ bias: Tensor, _ eps: Float) {
        let width = shape.last!
        let rows = shape.reduce(1, *) / width
        let g = weight.storage.pointer, b = bias.storage.pointer
        chunks(rows, workPerItem: 8 * width) { range in
            kernels.layer_norm_rows(src + range.lowerBound * width, dst + range.lowerBound * width, g, b,
                                    width, range.count, eps)
        }
    }

    // MARK: GlobalResponseNorm

    /// timm GlobalResponseNorm (channels-last): gx = ‖x‖₂ over H, W per (n, c);
    /// nx = gx / (mean_c gx + eps); y = x + (γ·(x·nx) + β) = x·(1 + γ·nx) + β.
    public static func globalResponseNorm(_ x: Tensor, weight: Tensor, bias: Tensor, eps: Float = 1e-6,
                                          squareSums: [Double]? = nil) throws -> Tensor {
        let scale = try grnScale(x, weight: weight, bias: bias, eps: eps, squareSums: squareSums)
        let out = Tensor(uninitializedShape: x.shape)
        applyChannelAffine(x.storage.pointer, out.storage.pointer, x.shape, scale: scale, shift: bias)
        return out
    }

    /// GRN as the affine map it is once its statistics are known, for the GEMM that reads its output
    /// (`linear(…, normalizedBy:)`): in bf16 the map is applied while that GEMM converts its input, so
    /// GRN's output is never written in fp32.
    /// `squareSums`: Σ_hw x² per (n, c) when the caller already has them (`geluWithSquareSums`).
    public static func globalResponseNormAffine(_ x: Tensor, weight: Tensor, bias: Tensor, eps: Float = 1e-6,
                                                squareSums: [Double]? = nil) throws -> InputNormalization {
        let scale = try grnScale(x, weight: weight, bias: bias, eps: eps, squareSums: squareSums)
        return .channelAffine(scale: scale, shift: bias, rowsPerImage: x.shape[1] * x.shape[2])
    }

    /// `squareSums`: Σ_hw x² per (n, c) when the caller already has them (`geluWithSquareSums`).
    public static func globalResponseNormInPlace(_ x: inout Tensor, weight: Tensor, bias: Tensor, eps: Float = 1e-6,
                                                 squareSums: [Double]? = nil) throws {
        let scale = try grnScale(x, weight: weight, bias: bias, eps: eps, squareSums: squareSums)
        let shape = x.shape   // not x itself: see layerNormInPlace
        x.withUnsafeMutableBufferPointer { buf in
            applyChannelAffine(buf.baseAddress!, buf.baseAddress!, shape, scale: scale, shift: bias)
        }
    }

    /// GELU(z) of a channels-last map [N, H, W, C] and Σ_hw GELU(z)² per (n, c), in one pass: the
    /// GRN that follows GELU in ConvNeXt-V2's MLP then needs no pass of its own for its statistics.
    public static func geluWithSquareSums(_ z: Tensor) throws -> (Tensor, squareSums: [Double]) {
        try require(z.rank == 4, "geluWithSquareSums: expected [N, H, W, C], got \(z.shape)")
        let (n, hw, c) = (z.shape[0], z.shape[1] * z.shape[2], z.shape[3])
        let h = Tensor(uninitializedShape: z.shape)
        let zp = z.storage.pointer, hp = h.storage.pointer
        let sums = columnSums(images: n, rowsPerImage: hw, width: c, runs: 1) { r, rows, run in
            kernels.gelu_rows_square_sums(zp + r * c, hp + r * c, run, c, rows)
        }[0]
        return (h, sums)
    }

    /// GELU(z) and timm's GlobalResponseNorm of it, given GRN's statistics (Σ_hw GELU(z)² per (n, c),
    /// as `geluWithSquareSums` gave them): one pass that writes both maps, bit for bit what
    /// `geluWithSquareSums` then `globalResponseNorm` give. Training's backward recomputes both this
    /// way from fc1's pre-activation and the statistics its forward kept.
    public static func geluThenGlobalResponseNorm(_ z: Tensor, weight: Tensor, bias: Tensor, eps: Float = 1e-6,
                                                  squareSums: [Double]) throws -> (gelu: Tensor, output: Tensor) {
        try require(z.rank == 4, "geluThenGlobalResponseNorm: expected [N, H, W, C], got \(z.shape)")
        let scale = try grnScale(z, weight: weight, bias: bias, eps: eps, squareSums: squareSums)
        let (n, hw, c) = (z.shape[0], z.shape[1] * z.shape[2], z.shape[3])
        let h = Tensor(uninitializedShape: z.shape), y = Tensor(uninitializedShape: z.shape)
        let zp = z.storage.pointer, hp = h.storage.pointer, yp = y.storage.pointer, b = bias.storage.pointer
        guard c > 0, hw > 0 else { return (h, y) }
        scale.withUnsafeBufferPointer { sb in
            chunks(n * hw, workPerItem: 30 * c) { range in
                kernels.gelu_affine_rows(zp, hp, yp, sb.baseAddress!, b, c, hw, range.lowerBound, range.upperBound)
            }
        }
        return (h, y)
    }

    /// Per (n, c) factor 1 + γ_c·nx[n, c] of GRN (first pass: sums of squares over H·W, unless given).
    static func grnScale(_ x: Tensor, weight: Tensor, bias: Tensor, eps: Float, squareSums: [Double]? = nil) throws -> [Float] {
        try require(x.rank == 4 && weight.shape == [x.shape[3]] && bias.shape == weight.shape,
                    "globalResponseNorm: input \(x.shape), weight \(weight.shape), bias \(bias.shape) (need [N, H, W, C], [C], [C])")
        let (n, hw, c) = (x.shape[0], x.shape[1] * x.shape[2], x.shape[3])
        try require(squareSums == nil || squareSums!.count == n * c, "globalResponseNorm: \(squareSums?.count ?? 0) square sums for \(x.shape)")
        let sums = squareSums ?? columnSums(x.storage.pointer, images: n, rowsPerImage: hw, width: c, squared: true)
        var scale = [Float](repeating: 0, count: n * c)
        let g = weight.storage.pointer
        for image in 0..<n {
            var norms = [Double](repeating: 0, count: c)
            for ch in 0..<c { norms[ch] = sums[image * c + ch].squareRoot() }
            let denominator = norms.reduce(0, +) / Double(max(c, 1)) + Double(eps)
            for ch in 0..<c { scale[image * c + ch] = Float(1 + Double(g[ch]) * norms[ch] / denominator) }
        }
        return scale
    }

    /// y[n, h, w, c] = x[n, h, w, c]·scale[n, c] + shift[c]; `src` may equal `dst`.
    static func applyChannelAffine(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ shape: [Int],
                                   scale: [Float], shift: Tensor) {
        applyChannelAffine(src, dst, rows: shape.reduce(1, *) / max(shape[3], 1), width: shape[3],
                           rowsPerImage: shape[1] * shape[2], scale: scale, shift: shift)
    }

    /// Rows of `width`: y[r, c] = x[r, c]·scale[(r / rowsPerImage)·width + c] + shift[c].
    static func applyChannelAffine(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, rows: Int, width c: Int,
                                   rowsPerImage hw: Int, scale: [Float], shift: Tensor) {
        guard c > 0, hw > 0 else { return }
        let b = shift.storage.pointer
        scale.withUnsafeBufferPointer { scaleBuf in
            let s = scaleBuf.baseAddress!
            chunks(rows, workPerItem: 2 * c) { range in
                kernels.channel_affine_rows(src, dst, s, b, c, hw, range.lowerBound, range.upperBound)
            }
        }
    }

    // MARK: Softmax and L2

    /// Softmax over the last dimension, max-subtracted.
    public static func softmax(_ x: Tensor) -> Tensor {
        let out = Tensor(uninitializedShape: x.shape)
        guard let width = x.shape.last, width > 0 else { return out }
        let src = x.storage.pointer, dst = out.storage.pointer
        chunks(x.count / width, workPerItem: 20 * width) { range in
            kernels.softmax_rows(src + range.lowerBound * width, dst + range.lowerBound * width, width, range.count)
        }
        return out
    }

    /// dst = softmax(src) over `width` floats; `src` may equal `dst`.
    @inline(__always)
    static func softmaxRow(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ width: Int) {
        kernels.softmax_rows(src, dst, width, 1)
    }

    /// Rows of the last dimension divided by max(‖row‖₂, 1e-12) (F.normalize).
    public static func l2Normalize(_ x: Tensor) -> Tensor {
        let out = Tensor(uninitializedShape: x.shape)
        guard let width = x.shape.last, width > 0 else { return out }
        let src = x.storage.pointer, dst = out.storage.pointer
        chunks(x.count / width, workPerItem: 4 * width) { range in
            kernels.l2_normalize_rows(src + range.lowerBound * width, dst + range.lowerBound * width, width, range.count)
        }
        return out
    }
}
