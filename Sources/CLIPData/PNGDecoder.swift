import CPNG
import Foundation

/// PNG through libpng (see Sources/CPNG/shim.h). libpng expands palettes and 1/2/4-bit gray; the
/// reductions to 8-bit RGB follow Pillow's `convert("RGB")`, measured on Pillow 13:
/// 16-bit RGB(A) and gray+alpha keep the high byte, 16-bit gray ("I;16") clips at 255
/// (values above 255 become 255), alpha and tRNS are dropped.
enum PNGDecoder {
    static func decode(_ bytes: UnsafeRawBufferPointer, name: String) throws -> RGBImage {
        var result = swiftclip_png_result()
        let rc = swiftclip_png_decode(bytes.bindMemory(to: UInt8.self).baseAddress, bytes.count,
                                      UInt32(ImageError.maxSide), UInt64(ImageError.maxPixels), &result)
        defer { free(result.pixels) }
        let message = withUnsafeBytes(of: &result.message) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        switch Int(rc) {
        case SWIFTCLIP_PNG_OK: break
        case SWIFTCLIP_PNG_TRUNCATED:
            throw ImageError.truncated(path: name, format: "PNG", message: message)
        case SWIFTCLIP_PNG_TOO_LARGE:
            throw ImageError.tooLarge(path: name, width: Int(result.width), height: Int(result.height))
        case SWIFTCLIP_PNG_NO_MEMORY:
            throw ImageError.corrupt(path: name, format: "PNG", message: "out of memory (\(message))")
        default:
            throw ImageError.corrupt(path: name, format: "PNG", message: message)
        }
        let w = Int(result.width), h = Int(result.height), channels = Int(result.channels)
        let rowBytes = Int(result.row_bytes)
        let wide = result.bit_depth == 16
        guard let base = result.pixels, (1...4).contains(channels), result.bit_depth == 8 || wide,
              rowBytes >= w * channels * (wide ? 2 : 1)
        else {
            throw ImageError.corrupt(path: name, format: "PNG",
                                     message: "unexpected layout: \(channels) channels, \(result.bit_depth) bits")
        }
        let grayClips = wide && result.color_type == PNG_COLOR_TYPE_GRAY
        var out = [UInt8](repeating: 0, count: w * h * 3)
        out.withUnsafeMutableBufferPointer { dst in
            for y in 0..<h {
                let row = base + y * rowBytes
                let o = dst.baseAddress! + y * w * 3
                if !wide {
                    PixelConversion.toRGB(row, channels: channels, stride: 1, count: w, into: o)
                } else if grayClips {
                    // Pillow opens 16-bit gray as "I;16"; its conversion to 8 bits clips.
                    for x in 0..<w {
                        let v: UInt8 = row[2 * x] != 0 ? 255 : row[2 * x + 1]
                        o[3 * x] = v; o[3 * x + 1] = v; o[3 * x + 2] = v
                    }
                } else {
                    // Big-endian samples: the high byte comes first, so step over the low bytes.
                    PixelConversion.toRGB(row, channels: channels, stride: 2, count: w, into: o)
                }
            }
        }
        return RGBImage(width: w, height: h, pixels: out)
    }
}
