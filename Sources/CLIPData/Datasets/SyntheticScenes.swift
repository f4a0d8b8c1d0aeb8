import CLIPEngine
import Foundation

/// Scenes with known boxes for open-vocabulary detection: several coloured shapes per image (the
/// categories are colour × shape, SyntheticShapes' 6 colours and 3 shapes), of varied size and
/// position, allowed to overlap, on a textured background (stripes, checks or noise in random
/// greys). Each object's box is the bounding box of its *visible* pixels (an object mostly hidden
/// by later ones is dropped). Scene i of seed s is always the same.
///
/// Categories split into base and novel (`novelCategories`): each novel one takes a different
/// colour and the shapes are spread over them, so every colour and every shape still appears among
/// the base categories. A detector trained on base boxes must find novel categories by name — the
/// CLIP training captions name them (as web captions would), the detector's annotations never box them.
public struct SyntheticScenes: Sendable {
    public struct Category: Sendable, Equatable {
        /// COCO category id (1-based: `colour * shapes + shape + 1`).
        public let id: Int
        public let colour: Int
        public let shape: Int
        public let isNovel: Bool
        public var name: String { "\(SyntheticShapes.colours[colour].name) \(SyntheticShapes.shapes[shape])" }
    }

    /// (colour, shape) of the novel categories: five colours, each shape at least once, so each
    /// colour keeps two base shapes and each shape four or five base colours.
    public static let novelPairs: [(colour: String, shape: String)] = [
        ("red", "triangle"), ("green", "circle"), ("blue", "square"), ("purple", "triangle"), ("cyan", "circle"),
    ]

    public static let categories: [Category] = {
        var list: [Category] = []
        for (c, colour) in SyntheticShapes.colours.enumerated() {
            for (s, shape) in SyntheticShapes.shapes.enumerated() {
                let novel = novelPairs.contains { $0.colour == colour.name && $0.shape == shape }
                list.append(Category(id: c * SyntheticShapes.shapes.count + s + 1, colour: c, shape: s, isNovel: novel))
            }
        }
        return list
    }()

    public struct Object: Sendable, Equatable {
        public let category: Category
        /// Box of the visible pixels, COCO's [x, y, width, height] in pixels.
        public let box: (x: Double, y: Double, width: Double, height: Double)
        public let visiblePixels: Int
        public static func == (a: Object, b: Object) -> Bool {
            a.category == b.category && a.visiblePixels == b.visiblePixels && a.box == b.box
        }
    }

    public struct Scene: Sendable {
        public let image: RGBImage
        public let objects: [Object]
        /// Names every object's category, left to right ("a red circle, a blue square and a green
        /// triangle on a striped background").
        public let caption: String
    }

    public let seed: UInt64
    public let count: Int
    public let imageSize: Int
    public let maxObjects: Int

    public init(seed: UInt64, count: Int, imageSize: Int, maxObjects: Int = 4) throws {
        guard count >= 1, count <= 10_000_000 else { throw TensorError.invalidArgument("scene count must be in 1...10000000, got \(count)") }
        guard imageSize >= 64, imageSize <= 4096 else { throw TensorError.invalidArgument("scene image size must be in 64...4096, got \(imageSize)") }
        guard maxObjects >= 1, maxObjects <= 16 else { throw TensorError.invalidArgument("objects per scene must be in 1...16, got \(maxObjects)") }
        self.seed = seed
        self.count = count
        self.imageSize = imageSize
        self.maxObjects = maxObjects
    }

    static let backgrounds = ["striped", "checked", "speckled", "plain"]

    public func scene(_ index: Int) -> Scene {
        var rng = SeededGenerator(seed: seed &* 0xA24B_AED4_963E_E407 &+ UInt64(index) &* 0x9FB2_1C65_1E98_DF25 &+ 1)
        let n = imageSize
        var pixels = [UInt8](repeating: 0, count: n * n * 3)
        // Background texture: two grey levels in stripes or checks of random period, or noise.
        let kind = Int.random(in: 0..<Self.backgrounds.count, using: &rng)
        let a = Int.random(in: 70...170, using: &rng), b = a + Int.random(in: -40...40, using: &rng)
        let period = max(2, Int(Double(n) * Double.random(in: 0.02...0.08, using: &rng)))
        for y in 0..<n {
            for x in 0..<n {
                let v: Int
                switch kind {
                case 0: v = (x + y) / period % 2 == 0 ? a : b
                case 1: v = (x / period + y / period) % 2 == 0 ? a : b
                case 2: v = a + Int.random(in: -25...25, using: &rng)
                default: v = a
                }
                let g = UInt8(clamping: v)
                pixels[(y * n + x) * 3] = g; pixels[(y * n + x) * 3 + 1] = g; pixels[(y * n + x) * 3 + 2] = g
            }
        }
        // Objects painted in order; `owner` keeps which object each pixel shows.
        var owner = [Int8](repeating: -1, count: n * n)
        let objectCount = Int.random(in: 1...maxObjects, using: &rng)
        var drawn: [(category: Category, cx: Double, full: Int)] = []
        let s = Double(n)
        for o in 0..<objectCount {
            let category = Self.categories[Int.random(in: 0..<Self.categories.count, using: &rng)]
            let radius = s * Double.random(in: 0.07...0.2, using: &rng)
            let cx = Double.random(in: radius...(s - radius), using: &rng)
            let cy = Double.random(in: radius...(s - radius), using: &rng)
            let base = SyntheticShapes.colours[category.colour].rgb
            let shade = Double.random(in: 0.85...1.1, using: &rng)
            let rgb = [base.0, base.1, base.2].map { UInt8(clamping: Int(Double($0) * shade)) }
            var full = 0
            let lo = { (v: Double) in max(0, Int(v - radius) - 1) }, hi = { (v: Double) in min(n - 1, Int(v + radius) + 1) }
            for y in lo(cy)...hi(cy) {
                for x in lo(cx)...hi(cx) {
                    let dx = Double(x) + 0.5 - cx, dy = Double(y) + 0.5 - cy
                    let inside: Bool
                    switch category.shape {
                    case 0: inside = dx * dx + dy * dy <= radius * radius
                    case 1: inside = abs(dx) <= radius * 0.85 && abs(dy) <= radius * 0.85
                    default:
                        let t = (dy + radius) / (2 * radius)
                        inside = t >= 0 && t <= 1 && abs(dx) <= t * radius
                    }
                    guard inside else { continue }
                    full += 1
                    owner[y * n + x] = Int8(o)
                    let p = (y * n + x) * 3
                    pixels[p] = rgb[0]; pixels[p + 1] = rgb[1]; pixels[p + 2] = rgb[2]
                }
            }
            drawn.append((category, cx, full))
        }
        // Visible boxes: a pixel box [x0, x1 + 1) × [y0, y1 + 1).
        var bounds = [(x0: Int, y0: Int, x1: Int, y1: Int, count: Int)](repeating: (n, n, -1, -1, 0), count: objectCount)
        for y in 0..<n {
            for x in 0..<n where owner[y * n + x] >= 0 {
                let o = Int(owner[y * n + x])
                bounds[o] = (min(bounds[o].x0, x), min(bounds[o].y0, y), max(bounds[o].x1, x), max(bounds[o].y1, y), bounds[o].count + 1)
            }
        }
        var objects: [(Object, Double)] = []
        for (o, d) in drawn.enumerated() {
            let bd = bounds[o]
            // Mostly hidden objects are neither boxed nor named.
            guard bd.count >= 40, Double(bd.count) >= 0.35 * Double(max(d.full, 1)) else { continue }
            let box = (x: Double(bd.x0), y: Double(bd.y0), width: Double(bd.x1 - bd.x0 + 1), height: Double(bd.y1 - bd.y0 + 1))
            objects.append((Object(category: d.category, box: box, visiblePixels: bd.count), d.cx))
        }
        objects.sort { $0.1 < $1.1 }
        let names = objects.map { "a \($0.0.category.name)" }
        let list: String
        switch names.count {
        case 0: list = "nothing"
        case 1: list = names[0]
        default: list = names.dropLast().joined(separator: ", ") + " and " + names[names.count - 1]
        }
        let caption = "\(list) on a \(Self.backgrounds[kind]) background"
        return Scene(image: RGBImage(width: n, height: n, pixels: pixels), objects: objects.map(\.0), caption: caption)
    }
}
