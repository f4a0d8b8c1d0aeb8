import CLIPEngine

/// The interpolation open_clip's `preprocess_cfg` names: torchvision hands it to Pillow's
/// `Image.resize` as BICUBIC or BILINEAR.
public enum Interpolation: String, Sendable, CaseIterable {
    case bicubic, bilinear
}

/// Pillow's `Image.resize` (libImaging/Resample.c and, for "P" and "1", the nearest-neighbour
/// affine scale in Geometry.c) re-implemented so that its output is byte-identical:
///
/// - per output pixel, a window of source pixels weighted by the filter (bicubic a = -0.5, support
///   2; bilinear, support 1) stretched by the scale when shrinking (antialiasing), weights
///   normalised to sum 1, all in Double;
/// - 8-bit samples: weights to fixed point with 22 fraction bits (round half away from 0), two
///   separable passes, each accumulating in Int32 from 1 << 21 and clipping `sum >> 22` to 0...255,
///   so the intermediate image is 8-bit as in Pillow; every channel alike (L, LA, RGB, RGBA, CMYK);
/// - 16-bit samples ("I;16"): the Double weights, a Double sum per sample, rounded half away from 0
///   and clipped to 0...65535, the intermediate image 16-bit;
/// - a pass whose size does not change is skipped; the order of the passes is Pillow 13's:
///   vertical first when the height shrinks by more than twice as many pixels as the width does,
///   else horizontal first. (Older Pillow releases always ran the horizontal pass first; for tall
///   images the two orders differ by up to ~25 levels.)
///
/// `window` selects a sub-rectangle of the full-size output (the center crop) and only that is
/// computed, each pass over just the source rows and columns the window reads; every output pixel
/// is computed exactly as in the full resize.
enum Resampler {
    static let precisionBits = 32 - 8 - 2

    typealias Window = (x: Int, y: Int, width: Int, height: Int)

    /// Weights of one pass: output pixel `i` reads `count[i]` source pixels from `start[i]`,
    /// weighted by `weights[i * taps ..< i * taps + count[i]]` (fixed point) or `real` (Double).
    struct Coefficients {
        var outputs: Range<Int>
        var taps: Int
        var start: [Int]
        var count: [Int]
        var weights: [Int32]
        var real: [Double]

        /// The source pixels that these outputs read.
        var sourceRange: Range<Int> { start.first!..<(start.last! + count.last!) }
    }

    @inline(__always)
    static func kernel(_ filter: Interpolation, _ x: Double) -> Double {
        let x = x < 0 ? -x : x
        switch filter {
        case .bicubic:
            let a = -0.5
            if x < 1 { return ((a + 2.0) * x - (a + 3.0)) * x * x + 1 }
            if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
            return 0
        case .bilinear:
            return x < 1 ? 1.0 - x : 0
        }
    }

    /// Pillow's precompute_coeffs + normalize_coeffs_8bpc for the full box (0, inSize), computed
    /// for the outputs in `outputs` only.
    static func coefficients(inSize: Int, outSize: Int, outputs: Range<Int>, filter: Interpolation) -> Coefficients {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1.0)
        let support = (filter == .bicubic ? 2.0 : 1.0) * filterScale
        let taps = Int(support.rounded(.up)) * 2 + 1
        var c = Coefficients(outputs: outputs, taps: taps, start: [], count: [],
                             weights: [Int32](repeating: 0, count: outputs.count * taps),
                             real: [Double](repeating: 0, count: outputs.count * taps))
        c.start.reserveCapacity(outputs.count)
        c.count.reserveCapacity(outputs.count)
        let invScale = 1.0 / filterScale
        for (slot, xx) in outputs.enumerated() {
            let center = (Double(xx) + 0.5) * scale
            // C's (int) cast truncates toward zero, as Int(_: Double) does.
            let xmin = max(Int(center - support + 0.5), 0)
            let xmax = min(Int(center + support + 0.5), inSize) - xmin
            var sum = 0.0
            for x in 0..<xmax {
                let w = kernel(filter, (Double(x + xmin) - center + 0.5) * invScale)
                c.real[slot * taps + x] = w
                sum += w
            }
            for x in 0..<xmax {
                let w = sum != 0 ? c.real[slot * taps + x] / sum : c.real[slot * taps + x]
                c.real[slot * taps + x] = w
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

    /// A rectangle of an image in some coordinate space: column `x0 + i` is stored at index `i`,
    /// `channels` samples per pixel.
    struct Plane<Sample> {
        var pixels: [Sample]
        var x0: Int, y0: Int, width: Int, height: Int, channels: Int
    }

    /// Resizes a `width` x `height` image of `channels` 8-bit samples per pixel to `outWidth` x
    /// `outHeight` and returns the samples of `window`.
    static func resize(_ pixels: [UInt8], width: Int, height: Int, channels: Int, outWidth: Int, outHeight: Int,
                       window: Window, filter: Interpolation) -> [UInt8] {
        let plane = Plane(pixels: pixels, x0: 0, y0: 0, width: width, height: height, channels: channels)
        return separable(plane, outWidth: outWidth, outHeight: outHeight, window: window, filter: filter,
                         horizontal: horizontalPass8, vertical: verticalPass8)
    }

    /// The same for 16-bit samples (Pillow's "I;16").
    static func resize(_ pixels: [UInt16], width: Int, height: Int, outWidth: Int, outHeight: Int,
                       window: Window, filter: Interpolation) -> [UInt16] {
        let plane = Plane(pixels: pixels, x0: 0, y0: 0, width: width, height: height, channels: 1)
        return separable(plane, outWidth: outWidth, outHeight: outHeight, window: window, filter: filter,
                         horizontal: horizontalPass16, vertical: verticalPass16)
    }

    /// The two passes in Pillow's order, each over just what `window` needs.
    static func separable<S>(_ plane: Plane<S>, outWidth: Int, outHeight: Int, window: Window, filter: Interpolation,
                             horizontal: (Plane<S>, Range<Int>, Coefficients) -> Plane<S>,
                             vertical: (Plane<S>, Range<Int>, Coefficients) -> Plane<S>) -> [S] {
        let cols = window.x..<(window.x + window.width)
        let rows = window.y..<(window.y + window.height)
        // A pass whose size is unchanged is skipped: that axis is then the same in source and output.
        let horiz = outWidth != plane.width
            ? coefficients(inSize: plane.width, outSize: outWidth, outputs: cols, filter: filter) : nil
        let vert = outHeight != plane.height
            ? coefficients(inSize: plane.height, outSize: outHeight, outputs: rows, filter: filter) : nil
        let shrinkY = plane.height - outHeight, shrinkX = plane.width - outWidth
        let horizontalFirst = !(shrinkY > 0 && shrinkY > shrinkX * 2)

        var plane = plane
        if horizontalFirst {
            if let horiz { plane = horizontal(plane, vert?.sourceRange ?? rows, horiz) }
            if let vert { plane = vertical(plane, cols, vert) }
        } else {
            if let vert { plane = vertical(plane, horiz?.sourceRange ?? cols, vert) }
            if let horiz { plane = horizontal(plane, rows, horiz) }
        }
        return extract(plane, columns: cols, rows: rows)
    }

    static func extract<S>(_ plane: Plane<S>, columns: Range<Int>, rows: Range<Int>) -> [S] {
        if plane.x0 == columns.lowerBound && plane.width == columns.count
            && plane.y0 == rows.lowerBound && plane.height == rows.count {
            return plane.pixels
        }
        let ch = plane.channels
        var out = [S]()
        out.reserveCapacity(columns.count * rows.count * ch)
        for y in rows {
            let base = ((y - plane.y0) * plane.width + columns.lowerBound - plane.x0) * ch
            out.append(contentsOf: plane.pixels[base..<(base + columns.count * ch)])
        }
        return out
    }

    /// Output columns of `c` for the plane rows `rows` (plane coordinates), 8-bit samples.
    static func horizontalPass8(_ plane: Plane<UInt8>, rows: Range<Int>, coefficients c: Coefficients) -> Plane<UInt8> {
        let outWidth = c.start.count, ch = plane.channels
        var out = [UInt8](repeating: 0, count: rows.count * outWidth * ch)
        if PixelResampling.supports(channels: ch) && !rows.isEmpty && outWidth > 0 {
            // RGB (the usual photo), RGBa, CMYK: the SIMD kernel, the same Int32 sums.
            let plan = PixelResampling.Plan(start: c.start, count: c.count, weights: c.weights, taps: c.taps, channels: ch)
            plane.pixels.withUnsafeBufferPointer { src in
                out.withUnsafeMutableBufferPointer { dst in
                    plan.resample(src, sourceOffset: ((rows.lowerBound - plane.y0) * plane.width - plane.x0) * ch,
                                  sourceStride: plane.width * ch, rows: rows.count,
                                  into: dst.baseAddress!, destinationStride: outWidth * ch)
                }
            }
            return Plane(pixels: out, x0: c.outputs.lowerBound, y0: rows.lowerBound, width: outWidth, height: rows.count,
                         channels: ch)
        }
        let half = Int32(1 << (precisionBits - 1))
        plane.pixels.withUnsafeBufferPointer { srcBuf in
            out.withUnsafeMutableBufferPointer { dstBuf in
                c.weights.withUnsafeBufferPointer { kBuf in
                    let src = srcBuf.baseAddress!, dst = dstBuf.baseAddress!, kk = kBuf.baseAddress!
                    for (j, y) in rows.enumerated() {
                        let row = src + ((y - plane.y0) * plane.width - plane.x0) * ch
                        let o = dst + j * outWidth * ch
                        for xx in 0..<outWidth {
                            let k = kk + xx * c.taps
                            for b in 0..<ch {
                                var p = row + c.start[xx] * ch + b
                                var s = half
                                for x in 0..<c.count[xx] {
                                    s &+= Int32(p[0]) &* k[x]
                                    p += ch
                                }
                                o[ch * xx + b] = clip8(s)
                            }
                        }
                    }
                }
            }
        }
        return Plane(pixels: out, x0: c.outputs.lowerBound, y0: rows.lowerBound, width: outWidth, height: rows.count,
                     channels: ch)
    }

    /// Output rows of `c` for the plane columns `columns` (plane coordinates), 8-bit samples.
    static func verticalPass8(_ plane: Plane<UInt8>, columns: Range<Int>, coefficients c: Coefficients) -> Plane<UInt8> {
        let outHeight = c.start.count, ch = plane.channels
        let n = columns.count * ch
        var out = [UInt8](repeating: 0, count: outHeight * n)
        var acc = [Int32](repeating: 0, count: n)
        let half = Int32(1 << (precisionBits - 1))
        plane.pixels.withUnsafeBufferPointer { srcBuf in
            out.withUnsafeMutableBufferPointer { dstBuf in
                acc.withUnsafeMutableBufferPointer { accBuf in
                    let src = srcBuf.baseAddress! + (columns.lowerBound - plane.x0) * ch
                    let dst = dstBuf.baseAddress!, a = accBuf.baseAddress!
                    let stride = plane.width * ch
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
        return Plane(pixels: out, x0: columns.lowerBound, y0: c.outputs.lowerBound, width: columns.count,
                     height: outHeight, channels: ch)
    }

    /// Pillow's ROUND_UP then CLIP16 of a 16-bit pass's Double sum.
    @inline(__always)
    static func clip16(_ v: Double) -> UInt16 {
        let r = Int(v >= 0 ? v + 0.5 : v - 0.5)  // C's (int) cast: truncation
        return UInt16(clamping: r)
    }

    static func horizontalPass16(_ plane: Plane<UInt16>, rows: Range<Int>, coefficients c: Coefficients) -> Plane<UInt16> {
        let outWidth = c.start.count
        var out = [UInt16](repeating: 0, count: rows.count * outWidth)
        for (j, y) in rows.enumerated() {
            let row = (y - plane.y0) * plane.width - plane.x0
            for xx in 0..<outWidth {
                var s = 0.0
                for x in 0..<c.count[xx] { s += Double(plane.pixels[row + c.start[xx] + x]) * c.real[xx * c.taps + x] }
                out[j * outWidth + xx] = clip16(s)
            }
        }
        return Plane(pixels: out, x0: c.outputs.lowerBound, y0: rows.lowerBound, width: outWidth, height: rows.count,
                     channels: 1)
    }

    static func verticalPass16(_ plane: Plane<UInt16>, columns: Range<Int>, coefficients c: Coefficients) -> Plane<UInt16> {
        let outHeight = c.start.count, n = columns.count
        var out = [UInt16](repeating: 0, count: outHeight * n)
        for yy in 0..<outHeight {
            for i in 0..<n {
                var s = 0.0
                for y in 0..<c.count[yy] {
                    let v = plane.pixels[(c.start[yy] + y - plane.y0) * plane.width + columns.lowerBound + i - plane.x0]
                    s += Double(v) * c.real[yy * c.taps + y]
                }
                out[yy * n + i] = clip16(s)
            }
        }
        return Plane(pixels: out, x0: columns.lowerBound, y0: c.outputs.lowerBound, width: n, height: outHeight,
                     channels: 1)
    }

    /// Pillow's nearest-neighbour resize (ImagingScaleAffine): source column of output x is
    /// `Int(xo)` with xo starting at `scale / 2` and growing by `scale` per column (the Double
    /// accumulation kept, rounding included); rows likewise. Pixels whose source falls outside are 0.
    static func nearest(_ pixels: [UInt8], width: Int, height: Int, bytesPerPixel bpp: Int, outWidth: Int, outHeight: Int,
                        window: Window) -> [UInt8] {
        func sources(_ inSize: Int, _ outSize: Int, _ range: Range<Int>) -> [Int] {
            let a = Double(inSize) / Double(outSize)
            var o = a * 0.5
            var result = [Int](repeating: -1, count: range.count)
            for x in 0..<range.upperBound {
                if x >= range.lowerBound {
                    let v = o < 0 ? -1 : Int(o)
                    result[x - range.lowerBound] = v < inSize ? v : -1
                }
                o += a
            }
            return result
        }
        let xs = sources(width, outWidth, window.x..<(window.x + window.width))
        let ys = sources(height, outHeight, window.y..<(window.y + window.height))
        var out = [UInt8](repeating: 0, count: window.width * window.height * bpp)
        for (j, sy) in ys.enumerated() where sy >= 0 {
            for (i, sx) in xs.enumerated() where sx >= 0 {
                for b in 0..<bpp { out[(j * window.width + i) * bpp + b] = pixels[(sy * width + sx) * bpp + b] }
            }
        }
        return out
    }

    /// Pillow's `Image.resize(size, filter)` of an image in its own mode, cut to `window`: "P" and
    /// "1" with nearest neighbour whatever the filter, "RGBA" and "LA" through premultiplied alpha
    /// ("RGBa", "La", resized, converted back), "I;16" with 16-bit passes, the rest 8-bit. An image
    /// already of the size is not resampled (Pillow returns a copy).
    static func resize(_ image: DecodedImage, outWidth: Int, outHeight: Int, window: Window,
                       filter: Interpolation) -> DecodedImage {
        let bpp = image.mode.bytesPerPixel
        func cut(_ samples: [UInt8]) -> DecodedImage {
            var out = DecodedImage(width: window.width, height: window.height, mode: image.mode, samples: samples)
            out.palette = image.palette
            return out
        }
        if outWidth == image.width && outHeight == image.height {
            let plane = Plane(pixels: image.samples, x0: 0, y0: 0, width: image.width, height: image.height, channels: bpp)
            return cut(extract(plane, columns: window.x..<(window.x + window.width), rows: window.y..<(window.y + window.height)))
        }
        switch image.mode {
        case .palette, .bilevel:
            return cut(nearest(image.samples, width: image.width, height: image.height, bytesPerPixel: bpp,
                               outWidth: outWidth, outHeight: outHeight, window: window))
        case .rgba, .grayAlpha:
            var samples = image.samples
            PixelConversion.premultiply(&samples, channels: bpp)
            samples = resize(samples, width: image.width, height: image.height, channels: bpp, outWidth: outWidth,
                             outHeight: outHeight, window: window, filter: filter)
            PixelConversion.unpremultiply(&samples, channels: bpp)
            return cut(samples)
        case .gray16:
            let wide = (0..<(image.width * image.height)).map {
                UInt16(image.samples[2 * $0]) | UInt16(image.samples[2 * $0 + 1]) << 8
            }
            let resized = resize(wide, width: image.width, height: image.height, outWidth: outWidth,
                                 outHeight: outHeight, window: window, filter: filter)
            var samples = [UInt8](repeating: 0, count: resized.count * 2)
            for (i, v) in resized.enumerated() {
                samples[2 * i] = UInt8(truncatingIfNeeded: v); samples[2 * i + 1] = UInt8(truncatingIfNeeded: v >> 8)
            }
            return cut(samples)
        case .gray, .rgb, .cmyk:
            return cut(resize(image.samples, width: image.width, height: image.height, channels: bpp, outWidth: outWidth,
                              outHeight: outHeight, window: window, filter: filter))
        }
    }
}
