import CLIPData
import Foundation

/// Pictures of detections and heatmaps: box outlines with their labels in a small bitmap font,
/// and similarity maps blended over the image.
public enum Drawing {
    /// Distinct colours for labels, in order.
    public static let palette: [(UInt8, UInt8, UInt8)] = [
        (255, 60, 60), (60, 200, 255), (255, 220, 0), (120, 255, 90), (255, 110, 230), (255, 150, 40), (170, 120, 255), (0, 255, 200),
    ]

    /// `detections` drawn on `image`: a 2-pixel outline per box and "label 0.87" above it, coloured by label.
    public static func boxes(_ detections: [Detection], on image: RGBImage, labels: [String]) -> RGBImage {
        var out = image
        for d in detections {
            let colour = palette[(labels.firstIndex(of: d.label) ?? 0) % palette.count]
            let (x0, y0) = (Int(d.box.xmin.rounded()), Int(d.box.ymin.rounded()))
            let (x1, y1) = (Int(d.box.xmax.rounded()) - 1, Int(d.box.ymax.rounded()) - 1)
            for t in 0..<2 {
                for x in x0...max(x0, x1) { set(&out, x, y0 + t, colour); set(&out, x, y1 - t, colour) }
                for y in y0...max(y0, y1) { set(&out, x0 + t, y, colour); set(&out, x1 - t, y, colour) }
            }
            let text = "\(d.label) \(String(format: "%.2f", d.score))"
            let ty = y0 - 7 >= 0 ? y0 - 7 : y0 + 3
            text3x5(&out, text, x: x0 + 1, y: ty, colour: colour)
        }
        return out
    }

    /// Each label's map (values in [0, 1], [h, w] row-major) blended over the image, one panel per
    /// label side by side, each `image.width` wide; the map is upsampled bilinearly, red = 1.
    public static func heatPanels(image: RGBImage, maps: [[Float]], mapWidth w: Int, mapHeight h: Int, labels: [String]) -> RGBImage {
        let (W, H) = (image.width, image.height)
        var out = RGBImage(width: W * maps.count, height: H, pixels: [UInt8](repeating: 0, count: W * maps.count * H * 3))
        for (k, map) in maps.enumerated() {
            for y in 0..<H {
                let fy = min(max((Double(y) + 0.5) * Double(h) / Double(H) - 0.5, 0), Double(h - 1))
                let (y0, ly) = (Int(fy), fy - Double(Int(fy)))
                let y1 = min(y0 + 1, h - 1)
                for x in 0..<W {
                    let fx = min(max((Double(x) + 0.5) * Double(w) / Double(W) - 0.5, 0), Double(w - 1))
                    let (x0, lx) = (Int(fx), fx - Double(Int(fx)))
                    let x1 = min(x0 + 1, w - 1)
                    let v = (1 - ly) * ((1 - lx) * Double(map[y0 * w + x0]) + lx * Double(map[y0 * w + x1]))
                        + ly * ((1 - lx) * Double(map[y1 * w + x0]) + lx * Double(map[y1 * w + x1]))
                    let heat = jet(min(max(v, 0), 1))
                    let src = (y * W + x) * 3, dst = (y * W * maps.count + k * W + x) * 3
                    for c in 0..<3 { out.pixels[dst + c] = UInt8((0.45 * Double(image.pixels[src + c]) + 0.55 * heat[c]).rounded()) }
                }
            }
            text3x5(&out, labels[k], x: k * W + 3, y: 3, colour: (255, 255, 255))
        }
        return out
    }

    static func jet(_ v: Double) -> [Double] {
        func c(_ x: Double) -> Double { min(max(1.5 - abs(4 * v - x), 0), 1) * 255 }
        return [c(3), c(2), c(1)]
    }

    static func set(_ image: inout RGBImage, _ x: Int, _ y: Int, _ colour: (UInt8, UInt8, UInt8)) {
        guard x >= 0, y >= 0, x < image.width, y < image.height else { return }
        let p = (y * image.width + x) * 3
        image.pixels[p] = colour.0; image.pixels[p + 1] = colour.1; image.pixels[p + 2] = colour.2
    }

    /// A 3×5 pixel font: each glyph's rows, 3 bits each, top row first (letters are drawn in one case).
    static let glyphs: [Character: [UInt8]] = [
        "a": [2, 5, 7, 5, 5], "b": [6, 5, 6, 5, 6], "c": [3, 4, 4, 4, 3], "d": [6, 5, 5, 5, 6], "e": [7, 4, 6, 4, 7],
        "f": [7, 4, 6, 4, 4], "g": [3, 4, 5, 5, 3], "h": [5, 5, 7, 5, 5], "i": [7, 2, 2, 2, 7], "j": [1, 1, 1, 5, 2],
        "k": [5, 5, 6, 5, 5], "l": [4, 4, 4, 4, 7], "m": [5, 7, 7, 5, 5], "n": [6, 5, 5, 5, 5], "o": [2, 5, 5, 5, 2],
        "p": [6, 5, 6, 4, 4], "q": [2, 5, 5, 6, 3], "r": [6, 5, 6, 5, 5], "s": [3, 4, 2, 1, 6], "t": [7, 2, 2, 2, 2],
        "u": [5, 5, 5, 5, 7], "v": [5, 5, 5, 5, 2], "w": [5, 5, 7, 7, 5], "x": [5, 5, 2, 5, 5], "y": [5, 5, 2, 2, 2],
        "z": [7, 1, 2, 4, 7], "0": [7, 5, 5, 5, 7], "1": [2, 6, 2, 2, 7], "2": [6, 1, 2, 4, 7], "3": [6, 1, 2, 1, 6],
        "4": [5, 5, 7, 1, 1], "5": [7, 4, 6, 1, 6], "6": [3, 4, 7, 5, 7], "7": [7, 1, 1, 2, 2], "8": [7, 5, 7, 5, 7],
        "9": [7, 5, 7, 1, 6], ".": [0, 0, 0, 0, 2], "-": [0, 0, 7, 0, 0], "_": [0, 0, 0, 0, 7], ",": [0, 0, 0, 2, 4],
    ]

    /// `text` at (x, y) in the 3×5 font on a dark backing, 4 pixels per character.
    static func text3x5(_ image: inout RGBImage, _ text: String, x: Int, y: Int, colour: (UInt8, UInt8, UInt8)) {
        let chars = Array(text.lowercased())
        for yy in (y - 1)...(y + 5) { for xx in (x - 1)...(x + 4 * chars.count) { set(&image, xx, yy, (0, 0, 0)) } }
        for (i, ch) in chars.enumerated() {
            guard let rows = glyphs[ch] else { continue }
            for (r, bits) in rows.enumerated() {
                for c in 0..<3 where bits & (4 >> c) != 0 { set(&image, x + 4 * i + c, y + r, colour) }
            }
        }
    }
}
