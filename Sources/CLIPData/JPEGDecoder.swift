import CTurboJPEG
import Foundation

/// JPEG through libjpeg-turbo's TurboJPEG API with flags 0: the accurate integer DCT (islow) and
/// fancy upsampling, which is what Pillow's decoder asks libjpeg for.
enum JPEGDecoder {
    static func decode(_ bytes: UnsafeRawBufferPointer, name: String) throws -> RGBImage {
        guard let handle = tjInitDecompress() else {
            throw ImageError.corrupt(path: name, format: "JPEG", message: "cannot create a TurboJPEG decompressor")
        }
        defer { tjDestroy(handle) }
        let src = bytes.bindMemory(to: UInt8.self).baseAddress!
        let size = UInt(bytes.count)
        func message() -> String { String(cString: tjGetErrorStr2(handle)) }

        var width: Int32 = 0, height: Int32 = 0, subsamp: Int32 = 0, colorspace: Int32 = 0
        if tjDecompressHeader3(handle, src, size, &width, &height, &subsamp, &colorspace) != 0 {
            let msg = message()
            if bytes.count < 64 || msg.contains("Premature end") {
                throw ImageError.truncated(path: name, format: "JPEG", message: msg)
            }
            throw ImageError.corrupt(path: name, format: "JPEG", message: msg)
        }
        let w = Int(width), h = Int(height)
        guard w > 0, h > 0 else {
            throw ImageError.corrupt(path: name, format: "JPEG", message: "header gives \(w)x\(h) pixels")
        }
        try ImageError.checkDimensions(width: w, height: h, path: name)

        // Pillow opens 1 component as "L", 3 as "RGB", 4 as "CMYK" (decoded as Adobe-inverted).
        let (format, channels): (TJPF, Int)
        switch colorspace {
        case Int32(TJCS_GRAY.rawValue): (format, channels) = (TJPF_GRAY, 1)
        case Int32(TJCS_CMYK.rawValue), Int32(TJCS_YCCK.rawValue): (format, channels) = (TJPF_CMYK, 4)
        default: (format, channels) = (TJPF_RGB, 3)
        }
        var raw = [UInt8](repeating: 0, count: w * h * channels)
        // TJFLAG_LIMITSCANS refuses progressive files with more than 500 scans (a known CPU bomb);
        // it changes nothing for real images.
        let flags = Int32(TJFLAG_LIMITSCANS)
        let rc = raw.withUnsafeMutableBufferPointer { out in
            tjDecompress2(handle, src, size, out.baseAddress, width, Int32(w * channels), height,
                          Int32(format.rawValue), flags)
        }
        if rc != 0 {
            let msg = message()
            // Pillow fails when libjpeg runs out of data ("image file is truncated") and ignores
            // libjpeg's other warnings (e.g. extraneous bytes before a marker).
            let fatal = tjGetErrorCode(handle) == Int32(TJERR_FATAL.rawValue)
            if msg.contains("Premature end of JPEG file") {
                throw ImageError.truncated(path: name, format: "JPEG", message: msg)
            }
            if fatal { throw ImageError.corrupt(path: name, format: "JPEG", message: msg) }
        }
        switch channels {
        case 3: return RGBImage(width: w, height: h, pixels: raw)
        case 1: return RGBImage(width: w, height: h, pixels: PixelConversion.grayToRGB(raw, count: w * h))
        default: return RGBImage(width: w, height: h, pixels: PixelConversion.invertedCMYKToRGB(raw, count: w * h))
        }
    }
}
