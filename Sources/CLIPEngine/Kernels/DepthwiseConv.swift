// Depthwise 2-D convolution, channels-last, stride 1, zero padding: ConvNeXt's 7×7 token mixer.
//
// Vectorised over C: for one output row and one block of 16 channels, an interior tile of 8
// output columns keeps 8 accumulators in registers; each tap loads one weight vector and eight
// input vectors (9 loads per 8 FMAs). Rows are clamped per output row (ky range) so no tap
// tests bounds; the columns near the borders, where the kx range shrinks, take a one-column path
// that runs 4 channel blocks at once so its FMA chains stay independent. Channels beyond the
// last whole block of 16 take a scalar path (never hit by ConvNeXt widths).

extension Ops {
    /// x: [N, H, W, C]; weight: [kH, kW, C]; bias: [C] or nil → [N, H+2p−kH+1, W+2p−kW+1, C].
    public static func depthwiseConv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, padding: Int) throws -> Tensor {
        try require(x.rank == 4, "depthwiseConv2d: input must be [N, H, W, C], got \(x.shape)")
        try require(weight.rank == 3 && weight.shape[2] == x.shape[3],
                    "depthwiseConv2d: weight \(weight.shape) for input \(x.shape) (need [kH, kW, C])")
        try require(padding >= 0, "depthwiseConv2d: negative padding \(padding)")
        let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (kh, kw) = (weight.shape[0], weight.shape[1])
        let (oh, ow) = (h + 2 * padding - kh + 1, w + 2 * padding - kw + 1)
        try require(kh >= 1 && kw >= 1 && oh >= 1 && ow >= 1,
                    "depthwiseConv2d: kernel \(kh)×\(kw) with padding \(padding) does not fit input \(x.shape)")
        if let bias { try require(bias.shape == [c], "depthwiseConv2d: bias \(bias.shape) for \(c) channels") }
        let out = Tensor(uninitializedShape: [n, oh, ow, c])
        let geometry = DepthwiseGeometry(h: h, w: w, c: c, kh: kh, kw: kw, padding: padding, oh: oh, ow: ow)
        let src = x.storage.pointer, wp = weight.storage.pointer, dst = out.storage.pointer
        let bp = bias?.storage.pointer
        chunks(n * oh, workPerItem: 2 * ow * c * kh * kw) { rows in
            for row in rows {
                geometry.outputRow(image: row / oh, oy: row % oh, x: src, weight: wp, bias: bp, out: dst)
            }
        }
        return out
    }
}

struct DepthwiseGeometry {
    let h, w, c, kh, kw, padding, oh, ow: Int

    /// Computes output row `oy` of image `image`, all columns and channels.
    @inline(__always)
    func outputRow(image: Int, oy: Int, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                   bias: UnsafePointer<Float>?, out: UnsafeMutablePointer<Float>) {
        // Kernel rows whose input row iy = oy + ky − padding lies inside the image.
        let kyLo = max(0, padding - oy), kyHi = min(kh, h + padding - oy)
        let rowCount = max(0, kyHi - kyLo)
        let rowStride = w * c
        // Input row of the first valid tap, at column 0; weight row of that tap.
        let xRow = x + (image * h + oy + kyLo - padding) * rowStride
        let wRow = weight + kyLo * kw * c
        let outRow = out + (image * oh + oy) * ow * c
        // Output columns whose kx taps all lie inside the row: ox − p ≥ 0 and ox − p + kw ≤ w.
        let interiorLo = min(ow, padding), interiorHi = max(interiorLo, min(ow, w - kw + padding + 1))
        let blocks = c / vecWidth

        // Interior columns, 8 at a time, one channel block at a time.
        var ox = interiorLo
        while ox + 8 <= interiorHi {
            for cb in 0..<blocks {
                let c0 = cb * vecWidth
                tile8(x: xRow + (ox - padding) * c + c0, weight: wRow + c0, rows: rowCount, rowStride: rowStride,
                      bias: bias.map { load($0 + c0) } ?? Vec(), out: outRow + ox * c + c0)
            }
            ox += 8
        }
        // Remaining interior columns and both borders, one column at a time.
        for col in 0..<interiorLo { column(col, xRow, wRow, rowCount, rowStride, bias, outRow, blocks) }
        for col in ox..<interiorHi { column(col, xRow, wRow, rowCount, rowStride, bias, outRow, blocks) }
        for col in interiorHi..<ow { column(col, xRow, wRow, rowCount, rowStride, bias, outRow, blocks) }
        if blocks * vecWidth < c {
            for col in 0..<ow { scalarTail(col, xRow, wRow, rowCount, rowStride, bias, outRow, from: blocks * vecWidth) }
        }
    }

    /// 8 adjacent output columns × 16 channels, all taps in range.
    @inline(__always)
    func tile8(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, rows: Int, rowStride: Int, bias: Vec,
               out: UnsafeMutablePointer<Float>) {
        var a0 = bias, a1 = bias, a2 = bias, a3 = bias, a4 = bias, a5 = bias, a6 = bias, a7 = bias
        for r in 0..<rows {
            let xr = x + r * rowStride, wr = weight + r * kw * c
            for kx in 0..<kw {
                let wv = load(wr + kx * c)
                let xp = xr + kx * c
                a0.addProduct(load(xp), wv)
                a1.addProduct(load(xp + c), wv)
                a2.addProduct(load(xp + 2 * c), wv)
                a3.addProduct(load(xp + 3 * c), wv)
                a4.addProduct(load(xp + 4 * c), wv)
                a5.addProduct(load(xp + 5 * c), wv)
                a6.addProduct(load(xp + 6 * c), wv)
                a7.addProduct(load(xp + 7 * c), wv)
            }
        }
        store(a0, out); store(a1, out + c); store(a2, out + 2 * c); store(a3, out + 3 * c)
        store(a4, out + 4 * c); store(a5, out + 5 * c); store(a6, out + 6 * c); store(a7, out + 7 * c)
    }

    /// One output column, all whole channel blocks, kx range clamped to the image.
    @inline(__always)
    func column(_ ox: Int, _ xRow: UnsafePointer<Float>, _ wRow: UnsafePointer<Float>, _ rows: Int, _ rowStride: Int,
                _ bias: UnsafePointer<Float>?, _ outRow: UnsafeMutablePointer<Float>, _ blocks: Int) {
        let kxLo = max(0, padding - ox), kxHi = min(kw, w + padding - ox)
        let xCol = xRow + (ox + kxLo - padding) * c    // input column of tap kxLo
        let wCol = wRow + kxLo * c
        let taps = max(0, kxHi - kxLo)
        var cb = 0
        // Four channel blocks at a time: four independent FMA chains.
        while cb + 4 <= blocks {
            let c0 = cb * vecWidth
            var a0 = bias.map { load($0 + c0) } ?? Vec()
            var a1 = bias.map { load($0 + c0 + 16) } ?? Vec()
            var a2 = bias.map { load($0 + c0 + 32) } ?? Vec()
            var a3 = bias.map { load($0 + c0 + 48) } ?? Vec()
            for r in 0..<rows {
                let xr = xCol + r * rowStride + c0, wr = wCol + r * kw * c + c0
                for t in 0..<taps {
                    let xp = xr + t * c, wq = wr + t * c
                    a0.addProduct(load(xp), load(wq))
                    a1.addProduct(load(xp + 16), load(wq + 16))
                    a2.addProduct(load(xp + 32), load(wq + 32))
                    a3.addProduct(load(xp + 48), load(wq + 48))
                }
            }
            let o = outRow + ox * c + c0
            store(a0, o); store(a1, o + 16); store(a2, o + 32); store(a3, o + 48)
            cb += 4
        }
        while cb < blocks {
            let c0 = cb * vecWidth
            var a0 = bias.map { load($0 + c0) } ?? Vec()
            for r in 0..<rows {
                let xr = xCol + r * rowStride + c0, wr = wCol + r * kw * c + c0
                for t in 0..<taps { a0.addProduct(load(xr + t * c), load(wr + t * c)) }
            }
            store(a0, outRow + ox * c + c0)
            cb += 1
        }
    }

    /// One output column, channels `from..<c`, scalar.
    func scalarTail(_ ox: Int, _ xRow: UnsafePointer<Float>, _ wRow: UnsafePointer<Float>, _ rows: Int, _ rowStride: Int,
                    _ bias: UnsafePointer<Float>?, _ outRow: UnsafeMutablePointer<Float>, from: Int) {
        let kxLo = max(0, padding - ox), kxHi = min(kw, w + padding - ox)
        let xCol = xRow + (ox + kxLo - padding) * c
        let wCol = wRow + kxLo * c
        for ch in from..<c {
            var acc = bias?[ch] ?? 0
            for r in 0..<rows {
                for t in 0..<max(0, kxHi - kxLo) {
                    acc = acc.addingProduct(xCol[r * rowStride + t * c + ch], wCol[r * kw * c + t * c + ch])
                }
            }
            outRow[ox * c + ch] = acc
        }
    }
}
