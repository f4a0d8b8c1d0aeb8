/// An image in the mode Pillow opens it in, before any conversion to RGB. open_clip's eval
/// transform resizes the image Pillow opened (`Resize → CenterCrop → convert("RGB")`), and Pillow
/// resizes each mode its own way, so the mode has to survive decoding (docs/images.md).
public struct DecodedImage: Sendable, Equatable {
    /// Pillow's mode of the opened file, with the samples `DecodedImage.samples` holds per pixel.
    public enum Mode: String, Sendable, Equatable {
        /// "L": 1 byte.
        case gray = "L"
        /// "1" (1-bit gray PNG): 1 byte, 0 or 255. Pillow resizes it with nearest neighbour.
        case bilevel = "1"
        /// "LA": gray, alpha. Resized with premultiplied alpha.
        case grayAlpha = "LA"
        /// "RGB": 3 bytes.
        case rgb = "RGB"
        /// "RGBA": 4 bytes. Resized with premultiplied alpha.
        case rgba = "RGBA"
        /// "P": stored already looked up in the palette (3 bytes, RGB). Pillow resizes the indices
        /// with nearest neighbour, which picks the same pixels, so resizing the looked-up colours
        /// gives the same result; transparency (tRNS) is ignored by convert("RGB").
        case palette = "P"
        /// "CMYK" as Pillow holds it (Adobe's inverted samples already un-inverted): 4 bytes.
        case cmyk = "CMYK"
        /// "I;16": 16-bit gray, 2 bytes per pixel, little-endian as Pillow stores it.
        case gray16 = "I;16"

        /// Bytes per pixel in `samples`.
        public var bytesPerPixel: Int {
            switch self {
            case .gray, .bilevel: return 1
            case .grayAlpha, .gray16: return 2
            case .rgb, .palette: return 3
            case .rgba, .cmyk: return 4
            }
        }
    }

    public let width: Int
    public let height: Int
    public let mode: Mode
    /// `width * height * mode.bytesPerPixel` bytes, interleaved, row-major, top row first.
    public var samples: [UInt8]
    /// A "P" image's palette, RGB triplets: what padding with colour index `fill` shows.
    public var palette: [UInt8] = []

    /// Programmer errors (non-positive sizes, a byte count that does not match) trap.
    public init(width: Int, height: Int, mode: Mode, samples: [UInt8]) {
        precondition(width > 0 && height > 0, "DecodedImage needs positive dimensions, got \(width)x\(height)")
        precondition(samples.count == width * height * mode.bytesPerPixel,
                     "DecodedImage \(mode.rawValue) \(width)x\(height) needs \(width * height * mode.bytesPerPixel) bytes, got \(samples.count)")
        self.width = width
        self.height = height
        self.mode = mode
        self.samples = samples
    }

    public init(_ image: RGBImage) {
        self.init(width: image.width, height: image.height, mode: .rgb, samples: image.pixels)
    }

    /// The samples of one pixel of colour `fill` as torchvision's `pad(img, fill=fill)` makes it:
    /// `fill` in every band, for "P" palette entry `fill` (black if the palette has none).
    func fillPixel(_ fill: Int) -> [UInt8] {
        let v = UInt8(clamping: fill)
        switch mode {
        case .palette:
            let i = 3 * fill
            return fill >= 0 && i + 3 <= palette.count ? Array(palette[i..<(i + 3)]) : [0, 0, 0]
        case .bilevel: return [fill != 0 ? 255 : 0]  // Image.new("1", size, v): any non-zero v is white
        case .gray16: return [UInt8(truncatingIfNeeded: max(0, min(fill, 65535))), UInt8(truncatingIfNeeded: max(0, min(fill, 65535)) >> 8)]
        default: return [UInt8](repeating: v, count: mode.bytesPerPixel)
        }
    }

    /// Pillow's `convert("RGB")`, byte for byte.
    public func rgb() -> RGBImage {
        RGBImage(width: width, height: height, pixels: PixelConversion.toRGB(samples, mode: mode, count: width * height))
    }
}

/// Anything the preprocessor takes: the RGB image (`Image.open(p).convert("RGB")`) or the image in
/// the mode Pillow opened it in (`Image.open(p)`).
public protocol PreprocessorInput {
    var decodedImage: DecodedImage { get }
}

extension DecodedImage: PreprocessorInput {
    public var decodedImage: DecodedImage { self }
}

extension RGBImage: PreprocessorInput {
    public var decodedImage: DecodedImage { DecodedImage(self) }
}
