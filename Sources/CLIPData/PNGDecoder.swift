import CPNG
import Foundation

/// PNG through libpng (see Sources/CPNG/shim.h), to the mode Pillow 13 opens the file in: libpng
/// expands palettes and 1/2/4-bit gray; 16-bit RGB(A) and gray+alpha keep the high byte (Pillow's
/// "RGB;16B", "RGBA;16B", "LA;16B" raw modes), 16-bit gray stays 16-bit ("I;16").
enum PNGDecoder {
    static func decode(_ bytes: UnsafeRawBufferPointer, name: String) throws -> DecodedImage {
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
        // Pillow's mode for the file (PngImagePlugin._MODES) and the samples it holds.
        let colorType = result.color_type
        let mode: DecodedImage.Mode
        switch (colorType, channels) {
        case (PNG_COLOR_TYPE_GRAY, _): mode = wide ? .gray16 : (result.source_bit_depth == 1 ? .bilevel : .gray)
        case (PNG_COLOR_TYPE_PALETTE, _): mode = .palette
        case (PNG_COLOR_TYPE_GRAY_ALPHA, _): mode = wide ? .rgba : .grayAlpha  // "LA;16B" opens as RGBA
        case (_, 4): mode = .rgba
        default: mode = .rgb
        }
        let bpp = mode.bytesPerPixel
        var out = [UInt8](repeating: 0, count: w * h * bpp)
        out.withUnsafeMutableBufferPointer { dst in
            for y in 0..<h {
                let row = base + y * rowBytes
                let o = dst.baseAddress! + y * w * bpp
                switch mode {
                case .gray16:
                    // Big-endian in the file, little-endian in Pillow's I;16.
                    for x in 0..<w { o[2 * x] = row[2 * x + 1]; o[2 * x + 1] = row[2 * x] }
                case .palette where channels == 4:
                    // libpng expanded tRNS to alpha; convert("RGB") ignores it.
                    PixelConversion.toRGB(row, channels: 4, stride: 1, count: w, into: o)
                case .rgba where channels == 2:
                    // 16-bit gray + alpha: high bytes, gray replicated.
                    for x in 0..<w {
                        let v = row[4 * x], a = row[4 * x + 2]
                        o[4 * x] = v; o[4 * x + 1] = v; o[4 * x + 2] = v; o[4 * x + 3] = a
                    }
                default:
                    if wide {
                        // The high byte of each big-endian sample.
                        for i in 0..<(w * bpp) { o[i] = row[2 * i] }
                    } else {
                        o.update(from: row, count: w * bpp)
                    }
                }
            }
        }
        var image = DecodedImage(width: w, height: h, mode: mode, samples: out)
        if mode == .palette {
            image.palette = withUnsafeBytes(of: &result.palette) { Array($0.prefix(3 * Int(result.num_palette))) }
        }
        return image
    }
}
