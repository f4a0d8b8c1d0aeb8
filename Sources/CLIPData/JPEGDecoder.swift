import CTurboJPEG
import Foundation

/// JPEG through libjpeg-turbo's TurboJPEG API with the accurate integer DCT (islow) and fancy
/// upsampling, which is what Pillow's decoder asks libjpeg for. The result is in Pillow's mode:
/// "L", "RGB" or "CMYK" (Adobe's inverted samples un-inverted, as Pillow's "CMYK;I" raw mode does).
///
/// libjpeg warnings ("Corrupt JPEG data: N extraneous bytes before marker 0xdb", damaged scan
/// data) do not stop Pillow, so they do not stop us: the image libjpeg recovers is returned and
/// the warning goes to `ImageDecoder.warningHandler`. Data that ends early is an error in Pillow
/// ("image file is truncated", without LOAD_TRUNCATED_IMAGES) and here.
enum JPEGDecoder {
    static func decode(_ bytes: UnsafeRawBufferPointer, name: String) throws -> DecodedImage {
        guard let handle = tjInitDecompress() else {
            throw ImageError.corrupt(path: name, format: "JPEG", message: "cannot create a TurboJPEG decompressor")
        }
        defer { tjDestroy(handle) }
        let src = bytes.bindMemory(to: UInt8.self).baseAddress!
        let size = UInt(bytes.count)
        func message() -> String { String(cString: tjGetErrorStr2(handle)) }
        var warnings: [String] = []
        /// A failed call: a warning is noted and decoding goes on; anything else is thrown.
        func check(_ rc: Int32) throws {
            guard rc != 0 else { return }
            let msg = message()
            if msg.contains("Premature end of JPEG file") || (bytes.count < 64 && tjGetErrorCode(handle) != Int32(TJERR_WARNING.rawValue)) {
                throw ImageError.truncated(path: name, format: "JPEG", message: msg)
            }
            // TurboJPEG reports TJERR_WARNING for a fatal error that follows a warning in the same
            // call, so the text decides too: a fatal error's message replaces the warning's.
            guard tjGetErrorCode(handle) == Int32(TJERR_WARNING.rawValue), isWarning(msg) else {
                throw ImageError.corrupt(path: name, format: "JPEG", message: msg)
            }
            if !warnings.contains(msg) { warnings.append(msg) }
        }

        var width: Int32 = 0, height: Int32 = 0, subsamp: Int32 = 0, colorspace: Int32 = 0
        try check(tjDecompressHeader3(handle, src, size, &width, &height, &subsamp, &colorspace))
        let w = Int(width), h = Int(height)
        guard w > 0, h > 0 else {
            throw ImageError.corrupt(path: name, format: "JPEG", message: "header gives \(w)x\(h) pixels")
        }
        try ImageError.checkDimensions(width: w, height: h, path: name)

        // Pillow opens 1 component as "L", 3 as "RGB", 4 as "CMYK".
        let (format, mode): (TJPF, DecodedImage.Mode)
        switch colorspace {
        case Int32(TJCS_GRAY.rawValue): (format, mode) = (TJPF_GRAY, .gray)
        case Int32(TJCS_CMYK.rawValue), Int32(TJCS_YCCK.rawValue): (format, mode) = (TJPF_CMYK, .cmyk)
        default: (format, mode) = (TJPF_RGB, .rgb)
        }
        let channels = mode.bytesPerPixel
        var raw = [UInt8](repeating: 0, count: w * h * channels)
        // TJFLAG_LIMITSCANS refuses progressive files with more than 500 scans (a known CPU bomb);
        // it changes nothing for real images. Without TJFLAG_STOPONWARNING libjpeg recovers from
        // warnings as Pillow's libjpeg does.
        let flags = Int32(TJFLAG_LIMITSCANS)
        try check(raw.withUnsafeMutableBufferPointer { out in
            tjDecompress2(handle, src, size, out.baseAddress, width, Int32(w * channels), height,
                          Int32(format.rawValue), flags)
        })
        // libjpeg keeps only the first warning's text, so a "Premature end" after another warning
        // is found by looking for the end-of-image marker after the last start-of-scan.
        if !warnings.isEmpty && lacksEndOfImage(bytes) {
            throw ImageError.truncated(path: name, format: "JPEG", message: "Premature end of JPEG file (after: \(warnings.joined(separator: "; ")))")
        }
        for warning in warnings { ImageDecoder.warningHandler(name, "JPEG: \(warning)") }
        if mode == .cmyk { PixelConversion.invert(&raw) }
        return DecodedImage(width: w, height: h, mode: mode, samples: raw)
    }

    /// libjpeg's warning texts (jerror.h's JWRN_* messages); every other message is an error.
    static func isWarning(_ message: String) -> Bool {
        message.hasPrefix("Corrupt JPEG data") || message.hasPrefix("Premature end of JPEG file")
            || message.hasPrefix("Warning: unknown JFIF revision") || message.hasPrefix("Unknown Adobe color transform")
            || message.hasPrefix("Inconsistent progression sequence") || message.hasPrefix("Invalid SOS parameters for sequential")
            || message.hasPrefix("Application transferred too many scanlines")
    }

    /// True when no EOI marker (FF D9) follows the last SOS marker (FF DA): the data ends inside
    /// the scans. Entropy-coded data never holds FF followed by D9 or DA (FF is stuffed as FF 00),
    /// and markers inside APP segments (an EXIF thumbnail) come before the first scan.
    static func lacksEndOfImage(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var i = bytes.count - 2
        while i >= 0 {
            if bytes[i] == 0xFF {
                if bytes[i + 1] == 0xD9 { return false }
                if bytes[i + 1] == 0xDA { return true }
            }
            i -= 1
        }
        return true
    }
}
