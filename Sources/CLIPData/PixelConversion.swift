/// Pillow's conversions to RGB, byte for byte.
enum PixelConversion {
    static func grayToRGB(_ gray: [UInt8], count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count * 3)
        gray.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                toRGB(src.baseAddress!, channels: 1, stride: 1, count: count, into: dst.baseAddress!)
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

    /// CMYK as stored in Adobe JPEGs (inverted) to RGB: Pillow's "CMYK;I" unpacker inverts, then
    /// its cmyk2rgb computes `nk - nk * c / 255` with nk = 255 - k, in its rounded integer form
    /// MULDIV255(a, b) = (t + (t >> 8)) >> 8, t = a * b + 128.
    static func invertedCMYKToRGB(_ cmyk: [UInt8], count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count * 3)
        cmyk.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for x in 0..<count {
                    let nk = Int(src[4 * x + 3])  // 255 - (255 - stored k)
                    for c in 0..<3 {
                        let t = (255 - Int(src[4 * x + c])) * nk + 128
                        let v = nk - (((t >> 8) + t) >> 8)
                        dst[3 * x + c] = UInt8(clamping: v)
                    }
                }
            }
        }
        return out
    }
}
