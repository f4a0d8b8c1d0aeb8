import CLIPEngine
import CLIPModels
import CLIPNN
import CLIPTraining
import Foundation
import XCTest

/// timm's drop_path: linear rates over blocks, per-sample keep masks scaled by 1/keep, identity at 0.
final class StochasticDepthTests: XCTestCase {
    func testRatesRiseLinearlyOverAllBlocks() {
        let r = StochasticDepth.rates(depths: [3, 3, 9, 3], rate: 0.1)     // convnext_v2_tiny, timm_drop_path 0.1
        XCTAssertEqual(r.map(\.count), [3, 3, 9, 3])
        let flat = r.flatMap { $0 }
        XCTAssertEqual(flat.first, 0)
        XCTAssertEqual(flat.last!, 0.1, accuracy: 1e-15)
        for i in 1..<flat.count { XCTAssertEqual(flat[i] - flat[i - 1], 0.1 / 17, accuracy: 1e-15) }
        XCTAssertEqual(StochasticDepth.rates(depths: [1], rate: 0.3), [[0]])
    }

    func testConfigReadsTimmDropPath() throws {
        guard case .timm(let t) = try ModelRegistry.config(named: "convnext_v2_tiny").vision else { return XCTFail("timm tower") }
        XCTAssertEqual(t.dropPath, 0.1)
        let json = { (v: String) in Data(#"{"embed_dim": 8, "vision_cfg": {"timm_model_name": "convnextv2_atto", "timm_drop_path": \#(v)}, "text_cfg": {}}"#.utf8) }
        guard case .timm(let n) = try CLIPConfig.parse(json: json("null"), source: "t").vision else { return XCTFail("timm tower") }
        XCTAssertEqual(n.dropPath, 0)
        XCTAssertThrowsError(try CLIPConfig.parse(json: json("1.5"), source: "t")) { XCTAssertTrue("\($0)".contains("timm_drop_path"), "\($0)") }
        XCTAssertThrowsError(try CLIPConfig.parse(json: json("\"x\""), source: "t"))
    }

    func testMaskFrequencyAndScaling() {
        var rng = SeededGenerator(seed: 5)
        XCTAssertNil(StochasticDepth.sampleFactors(batch: 8, rate: 0, rng: &rng), "rate 0 draws nothing (identity)")
        for rate in [0.1, 0.5] {
            let draws = 20_000
            let f = StochasticDepth.sampleFactors(batch: draws, rate: rate, rng: &rng)!
            let kept = Float(1 / (1 - rate))
            XCTAssertTrue(f.allSatisfy { $0 == 0 || $0 == kept }, "factors are 0 or 1/keep")
            let dropped = Double(f.filter { $0 == 0 }.count) / Double(draws)
            let sigma = (rate * (1 - rate) / Double(draws)).squareRoot()
            XCTAssertEqual(dropped, rate, accuracy: 5 * sigma, "drop frequency at rate \(rate)")
            // E[factor] = 1: the expected branch is unchanged.
            XCTAssertEqual(f.reduce(0.0) { $0 + Double($1) } / Double(draws), 1, accuracy: 5 * sigma / (1 - rate))
        }
        XCTAssertEqual(StochasticDepth.sampleFactors(batch: 4, rate: 1 - 1e-12, rng: &rng)?.filter { $0 != 0 }.count, 0)
    }

    func testResidualBranchOpAgainstDefinition() throws {
        var rng = SeededGenerator(seed: 6)
        let x = Tensor.random(shape: [3, 2, 2, 5], using: &rng), u = Tensor.random(shape: [3, 2, 2, 5], using: &rng)
        let gamma = Tensor.random(shape: [5], using: &rng), s: [Float] = [0, 1.25, 1.25]
        var y = x
        try Ops.addScaledBranch(&y, u, sampleScale: s, channelScale: gamma)
        for i in 0..<x.count {
            XCTAssertEqual(y[flat: i], x[flat: i] + s[i / 20] * gamma[flat: i % 5] * u[flat: i], accuracy: 1e-6)
        }
        let dOut = Tensor.random(shape: [3, 2, 2, 5], using: &rng)
        var dGamma = [Float](repeating: 0.5, count: 5)
        let du = try dGamma.withUnsafeMutableBufferPointer {
            try Ops.scaledBranchBackward(dOut, branch: u, sampleScale: s, channelScale: gamma, channelScaleGrad: $0.baseAddress!)
        }
        for i in 0..<x.count { XCTAssertEqual(du[flat: i], dOut[flat: i] * s[i / 20] * gamma[flat: i % 5], accuracy: 1e-6) }
        for c in 0..<5 {
            let expected = (0..<12).reduce(0.0) { $0 + Double(dOut[flat: $1 * 5 + c] * s[$1 / 4] * u[flat: $1 * 5 + c]) }
            XCTAssertEqual(Double(dGamma[c]) - 0.5, expected, accuracy: 1e-5)
        }
        XCTAssertThrowsError(try Ops.addScaledBranch(&y, u, sampleScale: [1, 1], channelScale: nil))
    }

    /// With stochastic depth on, a training forward differs between draws and a dropped sample's
    /// features equal those of the tower with that block removed; at rate 0 the training forward
    /// is the inference forward.
    func testTowerWithAndWithoutStochasticDepth() throws {
        let f = try TrainingFixture("train_convnext_v2")
        var rng = SeededGenerator(seed: 9)
        let inference = try f.model.encodeImage(f.images)
        let (training, _) = try f.model.visual.forwardForTraining(f.images, rng: &rng)
        XCTAssertLessThanOrEqual(relativeError(training, inference), 1e-6, "rate 0: training forward = inference")

        var config = f.model.config
        guard case .timm(var timm) = config.vision else { return XCTFail("timm fixture expected") }
        timm.dropPath = 0.6
        config.vision = .timm(timm)
        let dropping = try CLIPModel(config: config, weights: InMemoryWeights(Dictionary(uniqueKeysWithValues: f.model.weights.stateDict)),
                                     convNeXt: f.spec)
        XCTAssertEqual(try dropping.encodeImage(f.images).scalars, inference.scalars, "eval: no stochastic depth")
        let a = try dropping.visual.forwardForTraining(f.images, rng: &rng).output
        let b = try dropping.visual.forwardForTraining(f.images, rng: &rng).output
        XCTAssertGreaterThan(relativeError(a, b), 1e-3, "two draws differ")
        // Backward runs through dropped and kept samples alike (gradients exist and are finite).
        let (out, saved) = try dropping.visual.forwardForTraining(f.images, rng: &rng)
        try dropping.visual.backward(Tensor(repeating: 1, shape: out.shape), saved: saved)
        for p in dropping.parameters.parameters(under: "visual.") {
            let g: Tensor = try XCTUnwrap(p.grad, p.key)
            XCTAssertTrue(g.scalars.allSatisfy { $0.isFinite }, p.key)
        }
    }
}
