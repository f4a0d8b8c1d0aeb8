import CLIPEngine
import Foundation

/// A generated image–caption set that a CLIP model can actually learn from: each image is one
/// coloured shape (circle, square or triangle; small or large) at one of five places on a grey
/// background, and its caption says what and where ("a large red circle on the left"). Sample i
/// of seed s is always the same image and caption, so a split is just a seed and a count; the
/// zero-shot classes are the colours (`classNames`, with `templates`), which a held-out split of
/// the same generator is labelled by.
public struct SyntheticShapes: Sendable {
    public static let colours: [(name: String, rgb: (UInt8, UInt8, UInt8))] = [
        ("red", (220, 40, 40)), ("green", (40, 180, 60)), ("blue", (40, 70, 220)),
        ("yellow", (235, 215, 40)), ("purple", (150, 60, 190)), ("cyan", (40, 200, 210)),
    ]
    public static let shapes = ["circle", "square", "triangle"]
    public static let places = ["in the centre", "on the left", "on the right", "at the top", "at the bottom"]
    public static let templates = ["a photo of a {} shape.", "a {} shape on a grey background.", "something {}."]
    public static var classNames: [String] { colours.map(\.name) }

    public struct Sample: Sendable {
        public let image: RGBImage
        public let caption: String
        /// Index into `colours` (the zero-shot label).
        public let colour: Int
    }

    public let seed: UInt64
    public let count: Int
    public let imageSize: Int

    public init(seed: UInt64, count: Int, imageSize: Int) throws {
        guard count >= 1, count <= 10_000_000 else { throw TensorError.invalidArgument("synthetic samples must be in 1...10000000, got \(count)") }
        guard imageSize >= 8, imageSize <= 4096 else { throw TensorError.invalidArgument("synthetic image size must be in 8...4096, got \(imageSize)") }
        self.seed = seed
        self.count = count
        self.imageSize = imageSize
    }

    public func sample(_ index: Int) -> Sample {
        var rng = SeededGenerator(seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(index) &* 0xD1B5_4A32_D192_ED03)
        let colour = Int.random(in: 0..<Self.colours.count, using: &rng)
        let shape = Int.random(in: 0..<Self.shapes.count, using: &rng)
        let place = Int.random(in: 0..<Self.places.count, using: &rng)
        let large = Bool.random(using: &rng)
        let background = UInt8.random(in: 90...160, using: &rng)
        let s = Double(imageSize)
        let radius = s * (large ? 0.26 : 0.14) * Double.random(in: 0.9...1.1, using: &rng)
        let centres = [(0.5, 0.5), (0.25, 0.5), (0.75, 0.5), (0.5, 0.25), (0.5, 0.75)]
        let jitter = { (rng: inout SeededGenerator) in Double.random(in: -0.04...0.04, using: &rng) * s }
        let cx = centres[place].0 * s + jitter(&rng), cy = centres[place].1 * s + jitter(&rng)
        let rgb = Self.colours[colour].rgb
        var pixels = [UInt8](repeating: background, count: imageSize * imageSize * 3)
        for y in 0..<imageSize {
            for x in 0..<imageSize {
                let dx = Double(x) + 0.5 - cx, dy = Double(y) + 0.5 - cy
                let inside: Bool
                switch shape {
                case 0: inside = dx * dx + dy * dy <= radius * radius
                case 1: inside = abs(dx) <= radius * 0.85 && abs(dy) <= radius * 0.85
                default:   // upward triangle: apex at the top, base at the bottom
                    let t = (dy + radius) / (2 * radius)
                    inside = t >= 0 && t <= 1 && abs(dx) <= t * radius
                }
                if inside {
                    let p = (y * imageSize + x) * 3
                    pixels[p] = rgb.0; pixels[p + 1] = rgb.1; pixels[p + 2] = rgb.2
                }
            }
        }
        let caption = "a \(large ? "large" : "small") \(Self.colours[colour].name) \(Self.shapes[shape]) \(Self.places[place])"
        return Sample(image: RGBImage(width: imageSize, height: imageSize, pixels: pixels), caption: caption, colour: colour)
    }
}
