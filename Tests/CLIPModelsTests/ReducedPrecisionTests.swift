import CLIPEngine
import CLIPModels
import CLIPNN
import Foundation
import XCTest

/// bf16 and int8 inference of the tiny open_clip fixtures (perturbed weights, so every layer
/// matters) against open_clip's own fp32 outputs: the worst row's cosine similarity, image and
/// text towers, at the thresholds of docs/precision.md (0.999 bf16, 0.99 int8). The full-size
/// numbers on real photos are in docs/precision.md.
final class ReducedPrecisionTests: XCTestCase {
    static let thresholds: [(Precision, Double)] = [(.bf16, 0.999), (.int8, 0.99)]

    func worstCosine(_ a: Tensor, _ b: Tensor) -> Double {
        precondition(a.shape == b.shape)
        let rows = a.shape[0], cols = a.count / max(rows, 1)
        var worst = 1.0
        for r in 0..<rows {
            var dot = 0.0, na = 0.0, nb = 0.0
            for c in 0..<cols {
                let x = Double(a[flat: r * cols + c]), y = Double(b[flat: r * cols + c])
                dot += x * y; na += x * x; nb += y * y
            }
            worst = min(worst, dot / max((na * nb).squareRoot(), 1e-30))
        }
        return worst
    }

    func check(_ name: String) throws {
        let dir = fixturesURL.appendingPathComponent(name)
        let config = try CLIPConfig.load(contentsOf: dir.appendingPathComponent("config.json"))
        let images = try NPY.read(dir.appendingPathComponent("images.npy")).floatTensor()
        let tokenArray = try NPY.read(dir.appendingPathComponent("tokens.npy"))
        let ids = try tokenArray.intValues(), length = tokenArray.shape[1]
        let tokens = (0..<tokenArray.shape[0]).map { Array(ids[$0 * length..<($0 + 1) * length]) }
        let openCLIPImage = try NPY.read(dir.appendingPathComponent("image_features.npy")).floatTensor()
        let openCLIPText = try NPY.read(dir.appendingPathComponent("text_features.npy")).floatTensor()
        for (precision, threshold) in Self.thresholds {
            let model = try CLIPModel(config: config, weights: SafetensorsWeights(url: dir.appendingPathComponent("model.safetensors")),
                                      precision: precision)
            XCTAssertEqual(model.precision, precision)
            let image = try model.encodeImage(images), text = try model.encodeText(tokens)
            let ci = worstCosine(image, openCLIPImage), ct = worstCosine(text, openCLIPText)
            print("\(name) \(precision): worst cosine vs open_clip fp32: image \(ci), text \(ct)")
            XCTAssertGreaterThanOrEqual(ci, threshold, "\(name) \(precision) image cosine")
            XCTAssertGreaterThanOrEqual(ct, threshold, "\(name) \(precision) text cosine")
            // Not fp32 in disguise: rounding leaves a trace (fp32 matches open_clip to ~1e-6).
            XCTAssertGreaterThan(worstRowRelativeError(image, openCLIPImage), 1e-4, "\(name) \(precision) image is rounded")
        }
    }

    func testConvNeXtV2Atto() throws { try check("convnext_v2_atto") }
    func testConvNeXtV1MLPHead() throws { try check("convnext_atto_mlp") }
    func testConvNeXtV2TrunkClassifierHead() throws { try check("convnext_v2_atto_trunkfc") }
    func testViTQuickGELU() throws { try check("vit_tiny_quickgelu") }
}
