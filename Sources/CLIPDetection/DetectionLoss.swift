import CLIPEngine
import Foundation

/// The box head's training targets and losses (FCOS with centre sampling; focal loss for
/// objectness, GIoU loss for the boxes, cross-entropy over the class texts for the embedding
/// head), computed in Float64 with their gradients written next to them.
public enum DetectionLoss {
    public static let focalAlpha = 0.25, focalGamma = 2.0
    /// A location is positive for a box when its centre lies inside the box within this many
    /// strides of the box's centre (FCOS's centre sampling).
    public static let centreRadius = 1.5

    public struct Target: Equatable, Sendable {
        public var box: Box
        /// Index into the class texts, for the embedding head; nil: boxed, class not trained.
        public var classIndex: Int?
        public init(box: Box, classIndex: Int?) { self.box = box; self.classIndex = classIndex }
    }

    /// Location index (y · width + x) -> its target; the smallest box wins a contested location,
    /// and every box gets at least the location nearest its centre (small boxes).
    public static func assign(_ objects: [Target], gridWidth w: Int, gridHeight h: Int, stride: Double) -> [Int: Target] {
        var out: [Int: Target] = [:]
        func offer(_ loc: Int, _ t: Target) {
            if let old = out[loc], old.box.area <= t.box.area { return }
            out[loc] = t
        }
        for t in objects {
            let b = t.box
            let (bx, by) = ((b.x0 + b.x1) / 2, (b.y0 + b.y1) / 2)
            for y in 0..<h {
                for x in 0..<w {
                    let (cx, cy) = ((Double(x) + 0.5) * stride, (Double(y) + 0.5) * stride)
                    guard cx > b.x0, cx < b.x1, cy > b.y0, cy < b.y1,
                          abs(cx - bx) <= centreRadius * stride, abs(cy - by) <= centreRadius * stride else { continue }
                    offer(y * w + x, t)
                }
            }
        }
        for t in objects {
            let b = t.box
            let x = min(w - 1, max(0, Int((b.x0 + b.x1) / 2 / stride))), y = min(h - 1, max(0, Int((b.y0 + b.y1) / 2 / stride)))
            if !out.values.contains(where: { $0 == t }) { offer(y * w + x, t) }
        }
        return out
    }

    /// The box a location predicts from its raw distances (stride · exp, clamped against overflow).
    public static func decode(_ raw: (Double, Double, Double, Double), location: Int, gridWidth w: Int, stride: Double) -> Box {
        let (cx, cy) = ((Double(location % w) + 0.5) * stride, (Double(location / w) + 0.5) * stride)
        let d = [raw.0, raw.1, raw.2, raw.3].map { stride * Foundation.exp(min($0, 10)) }
        return Box(x0: cx - d[0], y0: cy - d[1], x1: cx + d[2], y1: cy + d[3])
    }

    /// Sigmoid focal loss of one logit and its derivative (RetinaNet's α, γ).
    public static func focal(_ z: Double, positive: Bool) -> (loss: Double, grad: Double) {
        let p = 1 / (1 + Foundation.exp(-z))
        let logP = -softplus(-z), log1mP = -softplus(z)
        let (a, g) = (focalAlpha, focalGamma)
        if positive {
            return (-a * Foundation.pow(1 - p, g) * logP, a * Foundation.pow(1 - p, g) * (g * p * logP - (1 - p)))
        }
        return (-(1 - a) * Foundation.pow(p, g) * log1mP, (1 - a) * Foundation.pow(p, g) * (p - g * (1 - p) * log1mP))
    }

    static func softplus(_ x: Double) -> Double { x > 30 ? x : Foundation.log1p(Foundation.exp(x)) }

    /// 1 − GIoU of the box decoded from `raw` at `location` against `target`, and ∂/∂raw.
    public static func giou(_ raw: [Double], location: Int, gridWidth w: Int, stride: Double, target g: Box) -> (loss: Double, grad: [Double]) {
        let (cx, cy) = ((Double(location % w) + 0.5) * stride, (Double(location / w) + 0.5) * stride)
        let d = raw.map { stride * Foundation.exp(min($0, 10)) }
        let (px0, py0, px1, py1) = (cx - d[0], cy - d[1], cx + d[2], cy + d[3])
        let iw = min(px1, g.x1) - max(px0, g.x0), ih = min(py1, g.y1) - max(py0, g.y0)
        let (iwp, ihp) = (max(iw, 0), max(ih, 0))
        let inter = iwp * ihp
        let (pw, ph) = (px1 - px0, py1 - py0)
        let areaP = pw * ph
        let union = areaP + g.area - inter
        let (cw, ch) = (max(px1, g.x1) - min(px0, g.x0), max(py1, g.y1) - min(py0, g.y0))
        let enclosing = cw * ch
        let loss = 2 - inter / union - union / enclosing
        // L = 2 − I/U − U/C with U = Ap + Ag − I.
        let dI = -(1 / union + inter / (union * union)) + 1 / enclosing
        let dAp = inter / (union * union) - 1 / enclosing
        let dC = union / (enclosing * enclosing)
        // ∂ of I, Ap, C with respect to the corners px0, py0, px1, py1.
        let inside = iw > 0 && ih > 0
        let dIx0 = inside && px0 > g.x0 ? -ihp : 0, dIx1 = inside && px1 < g.x1 ? ihp : 0
        let dIy0 = inside && py0 > g.y0 ? -iwp : 0, dIy1 = inside && py1 < g.y1 ? iwp : 0
        let dCx0 = px0 < g.x0 ? -ch : 0, dCx1 = px1 > g.x1 ? ch : 0
        let dCy0 = py0 < g.y0 ? -cw : 0, dCy1 = py1 > g.y1 ? cw : 0
        let dx0 = dI * dIx0 + dAp * -ph + dC * dCx0
        let dx1 = dI * dIx1 + dAp * ph + dC * dCx1
        let dy0 = dI * dIy0 + dAp * -pw + dC * dCy0
        let dy1 = dI * dIy1 + dAp * pw + dC * dCy1
        // px0 = cx − d0, py0 = cy − d1, px1 = cx + d2, py1 = cy + d3; ∂d/∂raw = d (below the clamp).
        let dd = [-dx0, -dy0, dx1, dy1]
        return (loss, (0..<4).map { raw[$0] < 10 ? dd[$0] * d[$0] : 0 })
    }

    /// Cross-entropy of `scale` · cos(e, t_k) over the texts (rows of `texts`, unit length) for class `label`, and ∂/∂e.
    public static func embeddingCrossEntropy(_ e: [Double], texts: [[Double]], label: Int, scale: Double) -> (loss: Double, grad: [Double]) {
        let norm = max(e.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
        let n = e.map { $0 / norm }
        let logits = texts.map { t in scale * zip(n, t).reduce(0) { $0 + $1.0 * $1.1 } }
        let m = logits.max() ?? 0
        let exps = logits.map { Foundation.exp($0 - m) }
        let sum = exps.reduce(0, +)
        let loss = -(logits[label] - m - Foundation.log(sum))
        var dn = [Double](repeating: 0, count: e.count)
        for (k, t) in texts.enumerated() {
            let dl = exps[k] / sum - (k == label ? 1 : 0)
            for i in dn.indices { dn[i] += scale * dl * t[i] }
        }
        let dot = zip(n, dn).reduce(0) { $0 + $1.0 * $1.1 }
        return (loss, (0..<e.count).map { (dn[$0] - n[$0] * dot) / norm })
    }

    public struct Weights: Sendable {
        public var box = 2.0, embedding = 1.0
        public init(box: Double = 2.0, embedding: Double = 1.0) { self.box = box; self.embedding = embedding }
    }

    public struct Parts: Sendable { public var objectness = 0.0, box = 0.0, embedding = 0.0, total = 0.0, positives = 0 }

    /// The loss of one batch's outputs [Σ locations, 5 + D] (images stacked in order, `grid`
    /// locations each) and ∂loss/∂outputs. Objectness is summed over all locations, boxes and
    /// embeddings over positive ones; all are divided by the number of positives (≥ 1).
    public static func loss(outputs: [Double], width: Int, targets: [[Int: Target]], gridWidth: Int, gridHeight: Int,
                            stride: Double, texts: [[Double]], scale: Double, weights: Weights = Weights()) -> (Parts, [Double]) {
        let locations = gridWidth * gridHeight
        var grad = [Double](repeating: 0, count: outputs.count)
        var parts = Parts()
        parts.positives = targets.reduce(0) { $0 + $1.count }
        let norm = Double(max(parts.positives, 1))
        for (image, assigned) in targets.enumerated() {
            for loc in 0..<locations {
                let row = (image * locations + loc) * width
                let target = assigned[loc]
                let f = focal(outputs[row], positive: target != nil)
                parts.objectness += f.loss / norm
                grad[row] += f.grad / norm
                guard let target else { continue }
                let g = giou(Array(outputs[row + 1..<row + 5]), location: loc, gridWidth: gridWidth, stride: stride, target: target.box)
                parts.box += weights.box * g.loss / norm
                for i in 0..<4 { grad[row + 1 + i] += weights.box * g.grad[i] / norm }
                if width > 5, let label = target.classIndex, !texts.isEmpty {
                    let c = embeddingCrossEntropy(Array(outputs[row + 5..<row + width]), texts: texts, label: label, scale: scale)
                    parts.embedding += weights.embedding * c.loss / norm
                    for i in 0..<(width - 5) { grad[row + 5 + i] += weights.embedding * c.grad[i] / norm }
                }
            }
        }
        parts.total = parts.objectness + parts.box + parts.embedding
        return (parts, grad)
    }
}
