/// Pillow's antialiased bicubic resize (`Image.resize(size, Image.BICUBIC)`, libImaging/Resample.c)
/// re-implemented for 8-bit RGB so that its output is byte-identical:
///
/// - per output pixel, a window of source pixels weighted by the bicubic kernel (a = -0.5)
///   stretched by the scale when shrinking (support 2 * scale), weights normalised to sum 1,
///   all in Double, then converted to fixed point with 22 fraction bits (round half away from 0);
/// - two separable passes, each accumulating in Int32 from 1 << 21 and clipping `sum >> 22` to
///   0...255, so the intermediate image is 8-bit as in Pillow; a pass whose size does not change
///   is skipped;
/// - the order of the passes is Pillow 13's: vertical first when the height shrinks by more than
///   twice as many pixels as the width does, else horizontal first. (Older Pillow releases always
///   ran the horizontal pass first; for tall images the two orders differ by up to ~25 levels.)
///
/// `window` selects a sub-rectangle of the full-size output (the center crop) and only that is
/// computed, each pass over just the source rows and columns the window reads; every output pixel
/// is computed exactly as in the full resize.
enum BicubicResampler {
    static let precisionBits = 32 - 8 - 2

    /// Weights of one pass: output pixel `i` reads `count[i]` source pixels from `start[i]`,
    /// weighted by `weights[i * taps ..< i * taps + count[i]]`.
    struct Coefficients {
        var outputs: Range<Int>
        var taps: Int
        var start: [Int]
        var count: [Int]
        var weights: [Int32]

        /// The source pixels that these outputs read.
        var sourceRange: Range<Int> { start.first!..<(start.last! + count.last!) }
    }

    @inline(__always)
    static func bicubic(_ x: Double) -> Double {
        let a = -0.5
        let x = x < 0 ? -x : x
        if x < 1 { return ((a + 2.0) * x - (a + 3.0)) * x * x + 1 }
        if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
        return 0
    }

    /// Pillow's precompute_coeffs + normalize_coeffs_8bpc for the full box (0, inSize), computed
    /// for the outputs in `outputs` only.
    static func coefficients(inSize: Int, outSize: Int, outputs: Range<Int>) -> Coefficients {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1.0)
        let support = 2.0 * filterScale
        let taps = Int(support.rounded(.up)) * 2 + 1
        var c = Coefficients(outputs: outputs, taps: taps, start: [], count: [],
                             weights: [Int32](repeating: 0, count: outputs.count * taps))
        c.start.reserveCapacity(outputs.count)
        c.count.reserveCapacity(outputs.count)
        var k = [Double](repeating: 0, count: taps)
        let invScale = 1.0 / filterScale
        for (slot, xx) in outputs.enumerated() {
            let center = (Double(xx) + 0.5) * scale
            // C's (int) cast truncates toward zero, as Int(_: Double) does.
            let xmin = max(Int(center - support + 0.5), 0)
            let xmax = min(Int(center + support + 0.5), inSize) - xmin
            var sum = 0.0
            for x in 0..<xmax {
                let w = bicubic((Double(x + xmin) - center + 0.5) * invScale)
                k[x] = w
                sum += w
            }
            for x in 0..<xmax {
                let w = sum != 0 ? k[x] / sum : k[x]
                let fixed = w < 0 ? -0.5 + w * Double(1 << precisionBits) : 0.5 + w * Double(1 << precisionBits)
                c.weights[slot * taps + x] = Int32(fixed)
            }
            c.start.append(xmin)
            c.count.append(xmax)
        }
        return c
    }

    @inline(__always)
    static func clip8(_ v: Int32) -> UInt8 {
        let s = v >> Int32(precisionBits)
        return s < 0 ? 0 : (s > 255 ? 255 : UInt8(truncatingIfNeeded: s))
    }

    /// A rectangle of an image in some coordinate space: column `x0 + i` is stored at index `i`.
    struct Plane {
        var pixels: [UInt8]
        var x0: Int, y0: Int, width: Int, height: Int
    }

    /// Resizes `image` to `outWidth` x `outHeight` and returns the pixels of `window` (a rectangle
    /// of that output: x, y, width, height).
    static func resize(_ image: RGBImage, outWidth: Int, outHeight: Int,
                       window: (x: Int, y: Int, width: Int, height: Int)) -> RGBImage {
        let cols = window.x..<(window.x + window.width)
        let rows = window.y..<(window.y + window.height)
        // A pass whose size is unchanged is skipped: that axis is then the same in source and output.
        let horiz = outWidth != image.width ? coefficients(inSize: image.width, outSize: outWidth, outputs: cols) : nil
        let vert = outHeight != image.height ? coefficients(inSize: image.height, outSize: outHeight, outputs: rows) : nil
        let shrinkY = image.height - outHeight, shrinkX = image.width - outWidth
        let horizontalFirst = !(shrinkY > 0 && shrinkY > shrinkX * 2)

        var plane = Plane(pixels: image.pixels, x0: 0, y0: 0, width: image.width, height: image.height)
        if horizontalFirst {
            if let horiz { plane = horizontalPass(plane, rows: vert?.sourceRange ?? rows, coefficients: horiz) }
            if let vert { plane = verticalPass(plane, columns: cols, coefficients: vert) }
        } else {
            if let vert { plane = verticalPass(plane, columns: horiz?.sourceRange ?? cols, coefficients: vert) }
            if let horiz { plane = horizontalPass(plane, rows: rows, coefficients: horiz) }
        }
        return RGBImage(width: window.width, height: window.height, pixels: extract(plane, columns: cols, rows: rows))
    }

    static func extract(_ plane: Plane, columns: Range<Int>, rows: Range<Int>) -> [UInt8] {
        if plane.x0 == columns.lowerBound && plane.width == columns.count
            && plane.y0 == rows.lowerBound && plane.height == rows.count {
            return plane.pixels
        }
        var out = [UInt8]()
        out.reserveCapacity(columns.count * rows.count * 3)
        for y in rows {
            let base = ((y - plane.y0) * plane.width + columns.lowerBound - plane.x0) * 3
            out.append(contentsOf: plane.pixels[base..<(base + columns.count * 3)])
        }
        return out
    }

    /// Output columns of `c` for the plane rows `rows` (plane coordinates).
    static func horizontalPass(_ plane: Plane, rows: Range<Int>, coefficients c: Coefficients) -> Plane {
        let outWidth = c.start.count
        var out = [UInt8](repeating: 0, count: rows.count * outWidth * 3)
        let half = Int32(1 << (precisionBits - 1))
        plane.pixels.withUnsafeBufferPointer { srcBuf in
            out.withUnsafeMutableBufferPointer { dstBuf in
                c.weights.withUnsafeBufferPointer { kBuf in
                    let src = srcBuf.baseAddress!, dst = dstBuf.baseAddress!, kk = kBuf.baseAddress!
                    for (j, y) in rows.enumerated() {
                        let row = src + ((y - plane.y0) * plane.width - plane.x0) * 3
                        let o = dst + j * outWidth * 3
                        for xx in 0..<outWidth {
                            let k = kk + xx * c.taps
                            var p = row + c.start[xx] * 3
                            var s0 = half, s1 = half, s2 = half
                            for x in 0..<c.count[xx] {
                                let w = k[x]
                                s0 &+= Int32(p[0]) &* w
                                s1 &+= Int32(p[1]) &* w
                                s2 &+= Int32(p[2]) &* w
                                p += 3
                            }
                            o[3 * xx] = clip8(s0)
                            o[3 * xx + 1] = clip8(s1)
                            o[3 * xx + 2] = clip8(s2)
                        }
                    }
                }
            }
        }
        return Plane(pixels: out, x0: c.outputs.lowerBound, y0: rows.lowerBound, width: outWidth, height: rows.count)
    }

    /// Output rows of `c` for the plane columns `columns` (plane coordinates).
    static func verticalPass(_ plane: Plane, columns: Range<Int>, coefficients c: Coefficients) -> Plane {
        let outHeight = c.start.count
        let n = columns.count * 3
        var out = [UInt8](repeating: 0, count: outHeight * n)
        var acc = [Int32](repeating: 0, count: n)
        let half = Int32(1 << (precisionBits - 1))
        plane.pixels.withUnsafeBufferPointer { srcBuf in
            out.withUnsafeMutableBufferPointer { dstBuf in
                acc.withUnsafeMutableBufferPointer { accBuf in
                    let src = srcBuf.baseAddress! + (columns.lowerBound - plane.x0) * 3
                    let dst = dstBuf.baseAddress!, a = accBuf.baseAddress!
                    let stride = plane.width * 3
                    for yy in 0..<outHeight {
                        for i in 0..<n { a[i] = half }
                        for y in 0..<c.count[yy] {
                            let w = c.weights[yy * c.taps + y]
                            let row = src + (c.start[yy] + y - plane.y0) * stride
                            for i in 0..<n { a[i] &+= Int32(row[i]) &* w }
                        }
                        let o = dst + yy * n
                        for i in 0..<n { o[i] = clip8(a[i]) }
                    }
                }
            }
        }
        return Plane(pixels: out, x0: columns.lowerBound, y0: c.outputs.lowerBound, width: columns.count, height: outHeight)
    }
}
