import CLIPEngine
import CLIPModels
import CLIPNN
import Foundation
import XCTest

/// An inference-only model keeps its GEMM weights only in packed form (`Parameter.releaseValue`).
/// It must compute exactly what a model holding every value computes, and a released parameter's
/// `value` (what saving, export and `info` read) must be rebuilt from the packed form: bit for bit
/// in fp32, bf16-rounded in bf16, within half a quantisation step in int8.
final class InferenceOnlyTests: XCTestCase {
    func testConvNeXtV2() throws { try check("convnext_v2_atto") }
    func testConvNeXtV1WithFoldedLayerScale() throws { try check("convnext_atto_mlp") }
    func testConvNeXtV2TrunkClassifierHead() throws { try check("convnext_v2_atto_trunkfc") }
    func testViT() throws { try check("vit_tiny_quickgelu") }

    func check(_ name: String) throws {
        let dir = fixturesURL.appendingPathComponent(name)
        let config = try CLIPConfig.load(contentsOf: dir.appendingPathComponent("config.json"))
        let weights = dir.appendingPathComponent("model.safetensors")
        let images = try NPY.read(dir.appendingPathComponent("images.npy")).floatTensor()
        let tokenArray = try NPY.read(dir.appendingPathComponent("tokens.npy"))
        let ids = try tokenArray.intValues(), length = tokenArray.shape[1]
        let tokens = (0..<tokenArray.shape[0]).map { Array(ids[$0 * length..<($0 + 1) * length]) }
        let reference = try CLIPModel(config: config, weights: SafetensorsWeights(url: weights))
        XCTAssertTrue(reference.parameters.parameters.allSatisfy(\.holdsValue), "\(name): a training model holds every value")

        for precision in [Precision.fp32, .bf16, .int8] {
            let full = try CLIPModel(config: config, weights: SafetensorsWeights(url: weights), precision: precision)
            let lean = try CLIPModel(config: config, weights: SafetensorsWeights(url: weights), precision: precision, inferenceOnly: true)
            let released = lean.parameters.parameters.filter { !$0.holdsValue }
            XCTAssertGreaterThan(released.count, 4, "\(name) \(precision): the packed weights were released")
            XCTAssertTrue(released.allSatisfy { $0.shape.count >= 2 }, "\(name) \(precision): only matrices are released")
            XCTAssertEqual(try lean.encodeImage(images).scalars, try full.encodeImage(images).scalars, "\(name) \(precision) image")
            XCTAssertEqual(try lean.encodeText(tokens).scalars, try full.encodeText(tokens).scalars, "\(name) \(precision) text")
            for p in lean.parameters.parameters {
                let original = try XCTUnwrap(reference.parameters[p.key]).value.scalars, rebuilt = p.value.scalars
                XCTAssertEqual(p.value.shape, p.shape, p.key)
                if p.holdsValue || precision == .fp32 {
                    XCTAssertEqual(rebuilt, original, "\(name) \(precision) \(p.key)")
                } else if precision == .bf16 {
                    XCTAssertEqual(rebuilt, original.map(Self.bf16Rounded), "\(name) bf16 \(p.key)")
                } else {
                    // Symmetric per output channel (the first dimension): step = max|w| / 127.
                    let channels = p.shape[0], per = original.count / channels
                    for c in 0..<channels {
                        let row = original[c * per..<(c + 1) * per]
                        let halfStep = (row.map(abs).max() ?? 0) / 127 / 2
                        let worst = zip(row, rebuilt[c * per..<(c + 1) * per]).map { abs($0 - $1) }.max() ?? 0
                        XCTAssertLessThanOrEqual(worst, halfStep * 1.0001, "\(name) int8 \(p.key) channel \(c)")
                    }
                }
            }
        }

        // A write to a released parameter holds a value again, and the forward pass uses it.
        let lean = try CLIPModel(config: config, weights: SafetensorsWeights(url: weights), inferenceOnly: true)
        let p = try XCTUnwrap(lean.parameters.parameters.first { !$0.holdsValue && !$0.key.hasPrefix("visual.") })
        let doubled = try Tensor(shape: p.shape, data: reference.parameters[p.key]!.value.scalars.map { 2 * $0 })
        try p.assign(doubled)
        try reference.parameters[p.key]!.assign(doubled)
        XCTAssertTrue(p.holdsValue)
        XCTAssertEqual(try lean.encodeText(tokens).scalars, try reference.encodeText(tokens).scalars, "\(name): after assign")
    }

    /// Round to nearest even at bf16's 8 mantissa bits (finite inputs).
    static func bf16Rounded(_ x: Float) -> Float {
        let bits = x.bitPattern
        return Float(bitPattern: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) & 0xFFFF_0000)
    }
}
