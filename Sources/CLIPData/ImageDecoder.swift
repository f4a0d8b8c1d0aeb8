import CLIPEngine
import Foundation

/// Decodes JPEG and PNG files as Pillow does: `decodeImage` to the mode `Image.open(p)` gives
/// (what open_clip's eval transform resizes), `decode` to 8-bit RGB exactly as
/// `Image.open(p).convert("RGB")`: no EXIF rotation, no colour management, alpha dropped (not
/// composited), Pillow's reductions of CMYK, 16-bit and low-bit-depth images. The format is
/// sniffed from the magic bytes, never from the file name.
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

    /// Decodes an in-memory JPEG or PNG to RGB (`Image.open(p).convert("RGB")`); `name` is used in errors.
    public static func decode(_ data: Data, name: String) throws -> RGBImage {
        try decodeImage(data, name: name).rgb()
    }

    /// Decodes an in-memory JPEG or PNG in the mode Pillow opens it in (`Image.open(p)`).
    public static func decodeImage(_ data: Data, name: String) throws -> DecodedImage {
        guard !data.isEmpty else { throw ImageError.empty(path: name) }
        return try data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) -> DecodedImage in
            switch sniff(bytes) {
            case .jpeg: return try JPEGDecoder.decode(bytes, name: name)
            case .png: return try PNGDecoder.decode(bytes, name: name)
            case .other(let what): throw ImageError.unsupportedFormat(path: name, detected: what)
            }
        }
    }

    /// Where warnings go (a damaged file that still decodes, as in Pillow): the file's name and the
    /// codec's message. Standard error by default.
    nonisolated(unsafe) public static var warningHandler: (_ name: String, _ message: String) -> Void = { name, message in
        FileHandle.standardError.write(Data("warning: \(name): \(message)\n".utf8))
    }

    /// Largest image file read (1 GiB); the decoded size is bounded separately (`ImageError.maxPixels`).
    public static let maximumFileBytes = 1 << 30

    /// Reads and decodes a file to RGB; errors name its path.
    public static func decode(contentsOf url: URL) throws -> RGBImage {
        try decodeImage(contentsOf: url).rgb()
    }

    /// Reads and decodes a file in the mode Pillow opens it in; errors name its path.
    public static func decodeImage(contentsOf url: URL) throws -> DecodedImage {
        let data: Data
        do {
            data = try InputFile.read(url.path, maximumBytes: maximumFileBytes)
        } catch let e as InputFileError {
            throw ImageError.unreadable(path: url.path, reason: e.reason)
        }
        return try decodeImage(data, name: url.path)
    }
}
