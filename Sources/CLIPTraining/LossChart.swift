import CLIPData
import Foundation

/// The loss curve of a run as a PNG (`LOGS/NAME/loss.png`, drawn from `steps.jsonl` at the end of
/// every run, resumed ones included): loss against step, with tick labels, no plotting library.
public enum LossChart {
    public static let width = 720, height = 400

    /// (step, loss) pairs of a `steps.jsonl` (lines without both keys are skipped).
    public static func read(stepsLog url: URL) -> [(step: Int, loss: Double)] {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return [] }
        var points: [Int: Double] = [:]
        for line in text.split(separator: "\n") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let step = (object["step"] as? NSNumber)?.intValue, let loss = (object["loss"] as? NSNumber)?.doubleValue,
                  loss.isFinite else { continue }
            points[step] = loss   // a resumed run repeats no step; the last write wins if it did
        }
        return points.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// The chart as an image; nil without points.
    public static func draw(_ points: [(step: Int, loss: Double)]) -> RGBImage? {
        guard let first = points.first else { return nil }
        var canvas = Canvas(width: width, height: height)
        let left = 70, right = width - 20, top = 40, bottom = height - 50
        let steps = (first.step, max(points.last!.step, first.step + 1))
        var low = points.map(\.loss).min()!, high = points.map(\.loss).max()!
        if high - low < 1e-6 { low -= 0.5; high += 0.5 }
        let yTicks = niceTicks(low, high), xTicks = niceTicks(Double(steps.0), Double(steps.1))
        low = min(low, yTicks.first!); high = max(high, yTicks.last!)
        let x = { (s: Double) in left + Int((s - Double(steps.0)) / Double(steps.1 - steps.0) * Double(right - left)) }
        let y = { (v: Double) in bottom - Int((v - low) / (high - low) * Double(bottom - top)) }
        let grid: (UInt8, UInt8, UInt8) = (225, 225, 225), ink: (UInt8, UInt8, UInt8) = (40, 40, 40)
        for t in yTicks {
            canvas.line(left, y(t), right, y(t), grid)
            canvas.text(label(t), rightEdge: left - 8, centreY: y(t), ink)
        }
        for t in xTicks where t >= Double(steps.0) && t <= Double(steps.1) {
            canvas.line(x(t), top, x(t), bottom, grid)
            canvas.text(label(t), centreX: x(t), top: bottom + 8, ink)
        }
        canvas.line(left, bottom, right, bottom, ink)
        canvas.line(left, top, left, bottom, ink)
        canvas.text("STEP", centreX: (left + right) / 2, top: bottom + 28, ink)
        canvas.text("LOSS", left: 10, top: 8, ink)
        let blue: (UInt8, UInt8, UInt8) = (31, 119, 180)
        var previous: (Int, Int)? = nil
        for p in points {
            let here = (x(Double(p.step)), y(p.loss))
            if let previous { canvas.line(previous.0, previous.1, here.0, here.1, blue, thickness: 2) }
            if points.count == 1 { canvas.line(here.0 - 2, here.1, here.0 + 2, here.1, blue, thickness: 3) }
            previous = here
        }
        return RGBImage(width: width, height: height, pixels: canvas.pixels)
    }

    /// Reads `stepsLog` and writes the chart to `url` (atomically); false when there is nothing to draw.
    @discardableResult
    public static func write(stepsLog: URL, to url: URL) throws -> Bool {
        guard let image = draw(read(stepsLog: stepsLog)) else { return false }
        try PNGEncoder.encode(image).write(to: url, options: .atomic)
        return true
    }

    /// About five round values spanning [low, high] (steps of 1, 2 or 5 × 10^k).
    static func niceTicks(_ low: Double, _ high: Double) -> [Double] {
        let raw = (high - low) / 5
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        var ticks: [Double] = []
        var t = floor(low / step) * step
        while t <= high + step * 0.999 && ticks.count < 12 { ticks.append(t); t += step }
        return ticks
    }

    static func label(_ v: Double) -> String {
        if abs(v - v.rounded()) < 1e-9 { return String(Int(v.rounded())) }
        var s = String(format: "%.3f", v)
        while s.hasSuffix("0") { s.removeLast() }
        return s
    }
}

/// A white RGB canvas with lines and a 3×5 pixel font (digits, '.', '-', the letters used).
struct Canvas {
    let width: Int, height: Int
    var pixels: [UInt8]

    init(width: Int, height: Int) {
        self.width = width
        self.height = height
        pixels = [UInt8](repeating: 255, count: width * height * 3)
    }

    mutating func dot(_ x: Int, _ y: Int, _ c: (UInt8, UInt8, UInt8)) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        let i = (y * width + x) * 3
        pixels[i] = c.0; pixels[i + 1] = c.1; pixels[i + 2] = c.2
    }

    /// Bresenham's line, `thickness` pixels square per point.
    mutating func line(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, _ c: (UInt8, UInt8, UInt8), thickness: Int = 1) {
        var x = x0, y = y0
        let dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1
        var error = dx + dy
        while true {
            for a in 0..<thickness { for b in 0..<thickness { dot(x + a - thickness / 2, y + b - thickness / 2, c) } }
            if x == x1 && y == y1 { return }
            let e2 = 2 * error
            if e2 >= dy { error += dy; x += sx }
            if e2 <= dx { error += dx; y += sy }
        }
    }

    static let scale = 3
    static let glyphs: [Character: [String]] = [
        "0": ["###", "# #", "# #", "# #", "###"], "1": [" # ", "## ", " # ", " # ", "###"],
        "2": ["###", "  #", "###", "#  ", "###"], "3": ["###", "  #", "###", "  #", "###"],
        "4": ["# #", "# #", "###", "  #", "  #"], "5": ["###", "#  ", "###", "  #", "###"],
        "6": ["###", "#  ", "###", "# #", "###"], "7": ["###", "  #", "  #", "  #", "  #"],
        "8": ["###", "# #", "###", "# #", "###"], "9": ["###", "# #", "###", "  #", "###"],
        ".": ["   ", "   ", "   ", "   ", " # "], "-": ["   ", "   ", "###", "   ", "   "],
        "S": ["###", "#  ", "###", "  #", "###"], "T": ["###", " # ", " # ", " # ", " # "],
        "E": ["###", "#  ", "## ", "#  ", "###"], "P": ["###", "# #", "###", "#  ", "#  "],
        "L": ["#  ", "#  ", "#  ", "#  ", "###"], "O": ["###", "# #", "# #", "# #", "###"],
    ]

    static func textWidth(_ s: String) -> Int { s.count * 4 * scale - scale }

    mutating func text(_ s: String, left: Int, top: Int, _ c: (UInt8, UInt8, UInt8)) {
        for (i, ch) in s.enumerated() {
            guard let rows = Self.glyphs[ch] else { continue }
            for (r, row) in rows.enumerated() {
                for (col, bit) in row.enumerated() where bit == "#" {
                    for a in 0..<Self.scale { for b in 0..<Self.scale {
                        dot(left + i * 4 * Self.scale + col * Self.scale + a, top + r * Self.scale + b, c)
                    } }
                }
            }
        }
    }

    mutating func text(_ s: String, rightEdge: Int, centreY: Int, _ c: (UInt8, UInt8, UInt8)) {
        text(s, left: rightEdge - Self.textWidth(s), top: centreY - 5 * Self.scale / 2, c)
    }

    mutating func text(_ s: String, centreX: Int, top: Int, _ c: (UInt8, UInt8, UInt8)) {
        text(s, left: centreX - Self.textWidth(s) / 2, top: top, c)
    }
}
