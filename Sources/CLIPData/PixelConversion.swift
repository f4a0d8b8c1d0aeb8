/// Pillow's conversions between modes (libImaging/Convert.c), byte for byte.
enum PixelConversion {
    /// Pillow's `convert("RGB")` from `mode`: gray replicated, alpha dropped (not composited),
    /// CMYK through cmyk2rgb, I;16 clipped at 255.
    static func toRGB(_ samples: [UInt8], mode: DecodedImage.Mode, count: Int) -> [UInt8] {
        if mode == .rgb || mode == .palette { return samples }
        var out = [UInt8](repeating: 0, count: count * 3)
        samples.withUnsafeBufferPointer { s in
            out.withUnsafeMutableBufferPointer { d in
                let src = s.baseAddress!, dst = d.baseAddress!
                switch mode {
                case .gray, .bilevel: toRGB(src, channels: 1, stride: 1, count: count, into: dst)
                case .grayAlpha: toRGB(src, channels: 2, stride: 1, count: count, into: dst)
                case .rgba: toRGB(src, channels: 4, stride: 1, count: count, into: dst)
                case .rgb, .palette: break
                case .cmyk: cmykToRGB(src, count: count, into: dst)
                case .gray16:
                    // I16_RGB: the low byte, or 255 when the high byte is set.
                    for x in 0..<count {
                        let v: UInt8 = src[2 * x + 1] != 0 ? 255 : src[2 * x]
                        dst[3 * x] = v; dst[3 * x + 1] = v; dst[3 * x + 2] = v
                    }
                }
            }
        }
        return out
    }

    /// `channels` samples per pixel, each `stride` bytes apart (2 for 16-bit big-endian, whose high
    /// byte comes first): gray is replicated, alpha dropped.
    static func toRGB(_ src: UnsafePointer<UInt8>, channels: Int, stride: Int, count: Int,
                      into dst: UnsafeMutablePointer<UInt8>) {
        let step = channels * stride
        switch channels {
        case 1, 2:
            for x in 0..<count {
                let v = src[x * step]
                dst[3 * x] = v; dst[3 * x + 1] = v; dst[3 * x + 2] = v
            }
        default:
            if channels == 3 && stride == 1 {
                dst.update(from: src, count: count * 3)
                return
            }
            for x in 0..<count {
                dst[3 * x] = src[x * step]
                dst[3 * x + 1] = src[x * step + stride]
                dst[3 * x + 2] = src[x * step + 2 * stride]
            }
        }
    }

    /// Pillow's MULDIV255(a, b): a * b / 255 rounded, as (t + (t >> 8)) >> 8 with t = a * b + 128.
    @inline(__always)
    static func mulDiv255(_ a: Int, _ b: Int) -> Int {
        let t = a * b + 128
        return (t + (t >> 8)) >> 8
    }

    /// Adobe JPEGs store CMYK inverted; Pillow's "CMYK;I" unpacker un-inverts in place.
    static func invert(_ samples: inout [UInt8]) {
        for i in samples.indices { samples[i] = 255 &- samples[i] }
    }

    /// cmyk2rgb: `nk - MULDIV255(c, nk)` with nk = 255 - k.
    static func cmykToRGB(_ src: UnsafePointer<UInt8>, count: Int, into dst: UnsafeMutablePointer<UInt8>) {
        for x in 0..<count {
            let nk = 255 - Int(src[4 * x + 3])
            for c in 0..<3 {
                dst[3 * x + c] = UInt8(clamping: nk - mulDiv255(Int(src[4 * x + c]), nk))
            }
        }
    }

    /// RGBA -> RGBa (rgbA2rgba) and LA -> La (lA2la): colour samples times alpha / 255, rounded.
    /// `channels` is 4 (RGBA) or 2 (LA); alpha is the last sample.
    static func premultiply(_ samples: inout [UInt8], channels: Int) {
        samples.withUnsafeMutableBufferPointer { p in
            var i = 0
            while i < p.count {
                let alpha = Int(p[i + channels - 1])
                for c in 0..<(channels - 1) { p[i + c] = UInt8(truncatingIfNeeded: mulDiv255(Int(p[i + c]), alpha)) }
                i += channels
            }
        }
    }

    /// RGBa -> RGBA (rgba2rgbA) and La -> LA (la2lA): `255 * v / alpha` (integer division) clipped,
    /// samples with alpha 0 or 255 left as they are.
    static func unpremultiply(_ samples: inout [UInt8], channels: Int) {
        samples.withUnsafeMutableBufferPointer { p in
            var i = 0
            while i < p.count {
                let alpha = Int(p[i + channels - 1])
                if alpha != 0 && alpha != 255 {
                    for c in 0..<(channels - 1) { p[i + c] = UInt8(min(255, 255 * Int(p[i + c]) / alpha)) }
                }
                i += channels
            }
        }
    }
}
