import CLIPEngine
import CLIPModels
import CLIPNN
import Foundation
import XCTest

let fixturesURL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

/// Relative error ||a - b|| / ||b|| of each row, the worst row.
func worstRowRelativeError(_ a: Tensor, _ b: Tensor) -> Double {
    precondition(a.shape == b.shape)
    let rows = a.shape[0], cols = a.count / max(rows, 1)
    var worst = 0.0
    for r in 0..<rows {
        var diff = 0.0, norm = 0.0
        for c in 0..<cols {
            let x = Double(a[flat: r * cols + c]), y = Double(b[flat: r * cols + c])
            diff += (x - y) * (x - y)
            norm += y * y
        }
        worst = max(worst, (diff / max(norm, 1e-30)).squareRoot())
    }
    return worst
}

/// Each fixture: an open_clip model with perturbed weights, inputs and open_clip's outputs,
/// written by tools/reference/make_model_fixtures.py.
final class ParityTests: XCTestCase {
    func fixture(_ name: String) throws -> (model: CLIPModel, dir: URL) {
        let dir = fixturesURL.appendingPathComponent(name)
        let config = try CLIPConfig.load(contentsOf: dir.appendingPathComponent("config.json"))
        let model = try CLIPModel(config: config, weights: SafetensorsWeights(url: dir.appendingPathComponent("model.safetensors")))
        return (model, dir)
    }

    func checkParity(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let (model, dir) = try fixture(name)
        let images = try NPY.read(dir.appendingPathComponent("images.npy")).floatTensor()
        let expectedImage = try NPY.read(dir.appendingPathComponent("image_features.npy")).floatTensor()
        let imageFeatures = try model.encodeImage(images)
        XCTAssertEqual(imageFeatures.shape, expectedImage.shape, file: file, line: line)
        XCTAssertLessThanOrEqual(worstRowRelativeError(imageFeatures, expectedImage), 1e-4, "\(name) image features", file: file, line: line)

        let tokenArray = try NPY.read(dir.appendingPathComponent("tokens.npy"))
        let ids = try tokenArray.intValues()
        let length = tokenArray.shape[1]
        let rows = (0..<tokenArray.shape[0]).map { Array(ids[$0 * length..<($0 + 1) * length]) }
        let expectedText = try NPY.read(dir.appendingPathComponent("text_features.npy")).floatTensor()
        let textFeatures = try model.encodeText(rows)
        XCTAssertEqual(textFeatures.shape, expectedText.shape, file: file, line: line)
        XCTAssertLessThanOrEqual(worstRowRelativeError(textFeatures, expectedText), 1e-4, "\(name) text features", file: file, line: line)

        let logitScale = try NPY.read(dir.appendingPathComponent("logit_scale.npy")).floatTensor()
        XCTAssertEqual(model.logitScale, logitScale[flat: 0], file: file, line: line)

        let params = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("params.json"))) as? [String: Any])
        XCTAssertEqual(model.parameterCounts.visual, params["visual"] as? Int, "\(name) visual params", file: file, line: line)
        XCTAssertEqual(model.parameterCounts.total, params["total"] as? Int, "\(name) total params", file: file, line: line)
    }

    func testConvNeXtV2AttoMatchesOpenCLIP() throws { try checkParity("convnext_v2_atto") }
    func testViTQuickGELUMatchesOpenCLIP() throws { try checkParity("vit_tiny_quickgelu") }
    func testConvNeXtV1MLPHeadMatchesOpenCLIP() throws { try checkParity("convnext_atto_mlp") }
    func testConvNeXtV2TrunkClassifierHeadMatchesOpenCLIP() throws { try checkParity("convnext_v2_atto_trunkfc") }

    /// Saving writes open_clip's keys and shapes; reloading gives the same model.
    func testSaveThenLoadRoundTrips() throws {
        let (model, dir) = try fixture("convnext_v2_atto")
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("swiftclip-roundtrip-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: out) }
        try model.save(to: out)
        let original = try SafetensorsFile.read(dir.appendingPathComponent("model.safetensors"))
        let saved = try SafetensorsFile.read(out)
        XCTAssertEqual(saved.keys, original.keys)
        for key in original.keys { XCTAssertEqual(saved.info(key)?.shape, original.info(key)?.shape, key) }
        let reloaded = try CLIPModel(config: model.config, weights: SafetensorsWeights(url: out))
        let images = try NPY.read(dir.appendingPathComponent("images.npy")).floatTensor()
        XCTAssertEqual(try reloaded.encodeImage(images).scalars, try model.encodeImage(images).scalars)
    }
}
