import Foundation

/// Why an image file could not be turned into pixels. Every case names the file.
public enum ImageError: Error, CustomStringConvertible {
    /// The file could not be read at all (missing, a directory, no permission).
    case unreadable(path: String, reason: String)
    /// The file holds zero bytes.
    case empty(path: String)
    /// Not a JPEG or PNG; `detected` names what the magic bytes say it is, when known.
    case unsupportedFormat(path: String, detected: String)
    /// The data ended before the image did.
    case truncated(path: String, format: String, message: String)
    /// The codec library refused the data; `message` is the library's own.
    case corrupt(path: String, format: String, message: String)
    /// The header claims dimensions over the limits; nothing was allocated for them.
    case tooLarge(path: String, width: Int, height: Int)

    /// Largest accepted side, in pixels.
    public static let maxSide = 30_000
    /// Largest accepted image, in pixels (200 Mpx; Pillow refuses above 179 Mpx).
    public static let maxPixels = 200_000_000

    /// The file (or name) the error is about.
    public var path: String {
        switch self {
        case .unreadable(let p, _), .empty(let p), .unsupportedFormat(let p, _), .truncated(let p, _, _),
             .corrupt(let p, _, _), .tooLarge(let p, _, _):
            return p
        }
    }

    public var description: String {
        switch self {
        case .unreadable(let p, let reason):
            return "\(p): cannot read file: \(reason)"
        case .empty(let p):
            return "\(p): empty file (0 bytes)"
        case .unsupportedFormat(let p, let detected):
            return "\(p): unsupported image format (\(detected)); JPEG and PNG are supported"
        case .truncated(let p, let format, let message):
            return "\(p): truncated \(format) file: \(message)"
        case .corrupt(let p, let format, let message):
            return "\(p): corrupt \(format) file: \(message)"
        case .tooLarge(let p, let w, let h):
            return "\(p): header claims \(w)x\(h) pixels, over the limit of \(ImageError.maxSide) px a side "
                + "and \(ImageError.maxPixels / 1_000_000) Mpx"
        }
    }

    /// Throws `tooLarge` before anything is allocated for an absurd header.
    static func checkDimensions(width: Int, height: Int, path: String) throws {
        if width > maxSide || height > maxSide || width * height > maxPixels {
            throw ImageError.tooLarge(path: path, width: width, height: height)
        }
    }
}
