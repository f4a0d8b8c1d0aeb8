import CLIPDetection
import CLIPEngine
import CLIPNN
import Foundation
import XCTest

/// ∂f/∂x by central differences in Float64.
private func numeric(_ x: [Double], h: Double = 1e-6, _ f: ([Double]) -> Double) -> [Double] {
    var x = x
    return x.indices.map { i in
        let keep = x[i]
        x[i] = keep + h; let up = f(x)
        x[i] = keep - h; let down = f(x)
        x[i] = keep
        return (up - down) / (2 * h)
    }
}

private func relativeError(_ a: [Double], _ b: [Double]) -> Double {
    var diff = 0.0, norm = 0.0
    for (x, y) in zip(a, b) { diff += (x - y) * (x - y); norm += y * y }
    precondition(norm > 0, "reference gradient is zero: the test could not fail")
    return (diff / norm).squareRoot()
}

/// The box head's losses and its parameters' gradients against central finite differences in
/// Float64 (the losses are Float64 code; the head's layers run in Float32 and are compared with a
/// Float64 re-implementation of its forward).
final class BoxHeadGradientTests: XCTestCase {
    func testFocalLossGradient() {
        for z in [-4.0, -0.7, 0.0, 0.3, 2.5] {
            for positive in [true, false] {
                let g = DetectionLoss.focal(z, positive: positive).grad
                let n = numeric([z]) { DetectionLoss.focal($0[0], positive: positive).loss }[0]
                XCTAssertEqual(g, n, accuracy: 1e-7 + 1e-6 * abs(n), "z \(z) positive \(positive)")
            }
        }
    }

    func testGIoUGradient() {
        var rng = SeededGenerator(seed: 11)
        let target = Box(x0: 20, y0: 30, x1: 70, y1: 58)
        // Locations inside and outside the target; predictions smaller, larger, shifted.
        for location in [0, 9, 18, 35] {
            let raw = (0..<4).map { _ in Double(Float.random(in: -1.2...1.2, using: &rng)) }
            let g = DetectionLoss.giou(raw, location: location, gridWidth: 8, stride: 16, target: target)
            let n = numeric(raw) { DetectionLoss.giou($0, location: location, gridWidth: 8, stride: 16, target: target).loss }
            XCTAssertLessThanOrEqual(relativeError(g.grad, n), 1e-6, "location \(location) raw \(raw)")
            XCTAssertGreaterThanOrEqual(g.loss, 0); XCTAssertLessThanOrEqual(g.loss, 2)
        }
        // A perfect box has zero loss.
        let perfect = DetectionLoss.giou([Foundation.log(25.0 / 16), Foundation.log(16.0 / 16), Foundation.log(25.0 / 16), Foundation.log(12.0 / 16)],
                                         location: 2 * 8 + 2, gridWidth: 8, stride: 16, target: Box(x0: 15, y0: 24, x1: 65, y1: 52))
        XCTAssertEqual(perfect.loss, 0, accuracy: 1e-12)
    }

    func testEmbeddingCrossEntropyGradient() {
        var rng = SeededGenerator(seed: 12)
        let texts = (0..<5).map { _ -> [Double] in
            let t = (0..<6).map { _ in Double(Float.random(in: -1...1, using: &rng)) }
            let n = t.reduce(0) { $0 + $1 * $1 }.squareRoot()
            return t.map { $0 / n }
        }
        let e = (0..<6).map { _ in Double(Float.random(in: -1...1, using: &rng)) }
        let g = DetectionLoss.embeddingCrossEntropy(e, texts: texts, label: 3, scale: 10)
        let n = numeric(e) { DetectionLoss.embeddingCrossEntropy($0, texts: texts, label: 3, scale: 10).loss }
        XCTAssertLessThanOrEqual(relativeError(g.grad, n), 1e-6)
    }

    /// The whole step: head forward (Float32 layers), the batch loss, head backward; every
    /// parameter's gradient against finite differences of a Float64 forward of the same head.
    func testHeadParameterGradients() throws {
        let (inW, hidden, d) = (7, 6, 4)
        let config = BoxHeadConfig(inputWidth: inW, hidden: hidden, embedDim: d, imageSize: 64, vocabulary: ["a", "b", "c"], logitScale: 5)
        var rng = SeededGenerator(seed: 13)
        // Random, non-trivial values for every parameter (LayerNorm 1/0 and zero biases would hide terms).
        var values: [String: Tensor] = [:]
        for (k, shape) in [("norm.weight", [inW]), ("norm.bias", [inW]), ("fc1.weight", [hidden, inW]), ("fc1.bias", [hidden]),
                           ("fc2.weight", [5 + d, hidden]), ("fc2.bias", [5 + d])] {
            values[k] = Tensor.random(shape: shape, in: -0.8...0.8, using: &rng)
        }
        let head = try BoxHead(config: config, weights: InMemoryWeights(values))
        let (gw, gh, stride) = (4, 4, 16.0)
        let rows = Tensor.random(shape: [2 * gw * gh, inW], in: -2...2, using: &rng)
        let targets: [[Int: DetectionLoss.Target]] = [
            DetectionLoss.assign([.init(box: Box(x0: 3, y0: 5, x1: 40, y1: 30), classIndex: 1), .init(box: Box(x0: 30, y0: 28, x1: 62, y1: 61), classIndex: nil)],
                                 gridWidth: gw, gridHeight: gh, stride: stride),
            DetectionLoss.assign([.init(box: Box(x0: 10, y0: 12, x1: 50, y1: 44), classIndex: 2)], gridWidth: gw, gridHeight: gh, stride: stride),
        ]
        XCTAssertGreaterThan(targets[0].count + targets[1].count, 3)
        let texts = (0..<3).map { _ -> [Double] in
            let t = (0..<d).map { _ in Double(Float.random(in: -1...1, using: &rng)) }
            let n = t.reduce(0) { $0 + $1 * $1 }.squareRoot()
            return t.map { $0 / n }
        }
        func lossOf(_ outputs: [Double]) -> (DetectionLoss.Parts, [Double]) {
            DetectionLoss.loss(outputs: outputs, width: 5 + d, targets: targets, gridWidth: gw, gridHeight: gh, stride: stride,
                               texts: texts, scale: 5)
        }
        // Analytic: Float32 head, Float64 loss.
        let (out, saved) = try head.forward(rows)
        let (_, dOut) = lossOf(out.scalars.map(Double.init))
        for p in head.parameters { p.zeroGrad() }
        try head.backward(try Tensor(shape: out.shape, data: dOut.map(Float.init)), saved: saved)

        // Float64 forward of the same head.
        let x = rows.scalars.map(Double.init), m = rows.shape[0]
        func forward64(_ p: [String: [Double]]) -> [Double] {
            var y = [Double](repeating: 0, count: m * (5 + d))
            for r in 0..<m {
                let row = Array(x[(r * inW)..<(r * inW + inW)])
                let mean = row.reduce(0, +) / Double(inW)
                let v = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(inW)
                let nrm = (0..<inW).map { (row[$0] - mean) / (v + 1e-6).squareRoot() * p["norm.weight"]![$0] + p["norm.bias"]![$0] }
                let h = (0..<hidden).map { o -> Double in
                    var s = p["fc1.bias"]![o]
                    for i in 0..<inW { s += nrm[i] * p["fc1.weight"]![o * inW + i] }
                    return 0.5 * s * (1 + erf(s / 2.0.squareRoot()))
                }
                for o in 0..<(5 + d) {
                    var s = p["fc2.bias"]![o]
                    for i in 0..<hidden { s += h[i] * p["fc2.weight"]![o * hidden + i] }
                    y[r * (5 + d) + o] = s
                }
            }
            return y
        }
        let base = values.mapValues { $0.scalars.map(Double.init) }
        for p in head.parameters {
            let analytic = try XCTUnwrap(p.grad).scalars.map(Double.init)
            let n = numeric(base[p.key]!, h: 1e-5) { v in
                var q = base; q[p.key] = v
                return lossOf(forward64(q)).0.total
            }
            XCTAssertLessThanOrEqual(relativeError(analytic, n), 2e-3, p.key)
        }
    }

    func testAssignmentGivesEverySmallBoxALocation() {
        let tiny = DetectionLoss.Target(box: Box(x0: 17, y0: 17, x1: 22, y1: 21), classIndex: 0)
        let big = DetectionLoss.Target(box: Box(x0: 0, y0: 0, x1: 64, y1: 64), classIndex: 1)
        let a = DetectionLoss.assign([big, tiny], gridWidth: 4, gridHeight: 4, stride: 16)
        XCTAssertTrue(a.values.contains(tiny))
        XCTAssertTrue(a.values.contains(big))
    }
}
