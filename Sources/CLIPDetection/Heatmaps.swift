import CLIPData
import CLIPEngine
import CLIPModels
import Foundation

/// Per-label similarity maps of one image (SED-style: the head at every last-stage location), and
/// the training-free baseline that turns them into boxes.
public struct LabelHeatmaps {
    /// Cosine of each location with each label's text, [K][h·w] row-major.
    public let cosines: [[Float]]
    /// Softmax over labels of CLIP's logit scale × cosine, [K][h·w].
    public let probabilities: [[Float]]
    public let mapWidth: Int, mapHeight: Int
    /// The input side the image was stretched to.
    public let side: Int

    public init(dense: DenseCLIP, image: RGBImage, texts: Tensor, side: Int) throws {
        guard side >= 32, side <= 4096 else { throw DetectionError.invalidArgument("input size \(side) must be in 32...4096") }
        let input = try Preprocessor(imageSize: side).stretched(image).reshaped([1, 3, side, side])
        let map = try dense.lastStage(input)
        let sims = try DenseCLIP.similarityMaps(dense: dense.denseEmbeddings(lastStage: map), texts: texts)
        let (h, w, k) = (sims.shape[1], sims.shape[2], sims.shape[3])
        let s = sims.scalars
        let scale = Double(Foundation.exp(dense.model.logitScale))
        var cos = [[Float]](repeating: [Float](repeating: 0, count: h * w), count: k), prob = cos
        for loc in 0..<(h * w) {
            let row = (0..<k).map { Double(s[loc * k + $0]) * scale }
            let m = row.max() ?? 0
            let e = row.map { Foundation.exp($0 - m) }
            let total = e.reduce(0, +)
            for j in 0..<k { cos[j][loc] = s[loc * k + j]; prob[j][loc] = Float(e[j] / total) }
        }
        cosines = cos; probabilities = prob; mapWidth = w; mapHeight = h; self.side = side
    }

    /// Baseline: for each label, the locations where it wins the softmax with probability ≥
    /// `threshold`, grouped into 4-connected components; each component's cells' extent is a box
    /// (in pixels of an image `width` × `height`) scored by its mean probability.
    public func boxes(labels: [String], threshold: Double, imageWidth: Int, imageHeight: Int) -> [Detection] {
        let (w, h) = (mapWidth, mapHeight)
        let cellX = Double(imageWidth) / Double(w), cellY = Double(imageHeight) / Double(h)
        var out: [Detection] = []
        for (k, label) in labels.enumerated() {
            var mask = [Bool](repeating: false, count: w * h)
            for loc in 0..<(w * h) {
                let p = probabilities[k][loc]
                mask[loc] = Double(p) >= threshold && probabilities.indices.allSatisfy { probabilities[$0][loc] <= p }
            }
            var seen = [Bool](repeating: false, count: w * h)
            for start in 0..<(w * h) where mask[start] && !seen[start] {
                var stack = [start], cells: [Int] = []
                seen[start] = true
                while let c = stack.popLast() {
                    cells.append(c)
                    let (x, y) = (c % w, c / w)
                    for (nx, ny) in [(x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1)] where nx >= 0 && ny >= 0 && nx < w && ny < h {
                        let n = ny * w + nx
                        if mask[n] && !seen[n] { seen[n] = true; stack.append(n) }
                    }
                }
                let xs = cells.map { $0 % w }, ys = cells.map { $0 / w }
                let score = cells.reduce(0.0) { $0 + Double(probabilities[k][$1]) } / Double(cells.count)
                let box = Box(x0: Double(xs.min() ?? 0) * cellX, y0: Double(ys.min() ?? 0) * cellY,
                              x1: Double((xs.max() ?? 0) + 1) * cellX, y1: Double((ys.max() ?? 0) + 1) * cellY)
                out.append(Detection(score: score, label: label, box: box))
            }
        }
        return out.sorted { $0.score > $1.score }
    }
}
