import CLIPEngine
import Foundation

/// Decodes JPEG and PNG files to 8-bit RGB exactly as Pillow's `Image.open(p).convert("RGB")`
/// does: no EXIF rotation, no colour management, alpha dropped (not composited), Pillow's
/// reductions of CMYK, 16-bit and low-bit-depth images. The format is sniffed from the magic
/// bytes, never from the file name.
public enum ImageDecoder {
    /// What the first bytes of a file say it is.
    enum Format: Equatable {
        case jpeg, png
        case other(String)
    }

    static func sniff(_ bytes: UnsafeRawBufferPointer) -> Format {
        func starts(_ magic: [UInt8], at offset: Int = 0) -> Bool {
            guard bytes.count >= offset + magic.count else { return false }
            for (i, b) in magic.enumerated() where bytes[offset + i] != b { return false }
            return true
        }
        if starts([0xFF, 0xD8, 0xFF]) { return .jpeg }
        if starts([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
        if starts(Array("GIF8".utf8)) { return .other("GIF") }
        if starts(Array("BM".utf8)) { return .other("BMP") }
        if starts(Array("RIFF".utf8)) && starts(Array("WEBP".utf8), at: 8) { return .other("WebP") }
        if starts([0x49, 0x49, 0x2A, 0x00]) || starts([0x4D, 0x4D, 0x00, 0x2A]) { return .other("TIFF") }
        if starts(Array("ftyp".utf8), at: 4) {
            let brand = bytes.count >= 12 ? String(decoding: bytes[8..<12], as: UTF8.self) : "?"
            return .other(brand.hasPrefix("avi") ? "AVIF" : "HEIF/ISO media, brand \(brand)")
        }
        if starts([0x00, 0x00, 0x01, 0x00]) { return .other("ICO") }
        let head = bytes.prefix(8).map { String(format: "%02x", $0) }.joined(separator: " ")
        return .other("unrecognised, first bytes \(head)")
    }

    /// Decodes an in-memory JPEG or PNG; `name` is used in errors.
    public static func decode(_ data: Data, name: String) throws -> RGBImage {
        guard !data.isEmpty else { throw ImageError.empty(path: name) }
        return try data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) -> RGBImage in
            switch sniff(bytes) {
            case .jpeg: return try JPEGDecoder.decode(bytes, name: name)
            case .png: return try PNGDecoder.decode(bytes, name: name)
            case .other(let what): throw ImageError.unsupportedFormat(path: name, detected: what)
            }
        }
    }

    /// Largest image file read (1 GiB); the decoded size is bounded separately (`ImageError.maxPixels`).
    public static let maximumFileBytes = 1 << 30

    /// Reads and decodes a file; errors name its path.
    public static func decode(contentsOf url: URL) throws -> RGBImage {
        let data: Data
        do {
            data = try InputFile.read(url.path, maximumBytes: maximumFileBytes)
        } catch let e as InputFileError {
            throw ImageError.unreadable(path: url.path, reason: e.reason)
        }
        return try decode(data, name: url.path)
    }
}
