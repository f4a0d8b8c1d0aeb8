import CLIPEngine
import CLIPModels
import CLIPNN
import Foundation
import XCTest

/// Strict loading: every problem is an error that names the key.
final class LoadingTests: XCTestCase {
    func fixtureWeights() throws -> (CLIPConfig, [String: Tensor]) {
        let dir = fixturesURL.appendingPathComponent("convnext_v2_atto")
        let config = try CLIPConfig.load(contentsOf: dir.appendingPathComponent("config.json"))
        let file = try SafetensorsFile.read(dir.appendingPathComponent("model.safetensors"))
        var dict: [String: Tensor] = [:]
        for key in file.keys { dict[key] = try file.tensor(key) }
        return (config, dict)
    }

    func testMissingKeyIsNamed() throws {
        var (config, dict) = try fixtureWeights()
        dict["visual.trunk.stages.2.blocks.5.mlp.grn.weight"] = nil
        XCTAssertThrowsError(try CLIPModel(config: config, weights: InMemoryWeights(dict))) { error in
            XCTAssertEqual(error as? WeightError, .missingKey("visual.trunk.stages.2.blocks.5.mlp.grn.weight", source: "in-memory weights"))
        }
    }

    func testUnexpectedKeyIsNamed() throws {
        var (config, dict) = try fixtureWeights()
        dict["visual.trunk.extra.weight"] = Tensor(repeating: 1, shape: [3])
        XCTAssertThrowsError(try CLIPModel(config: config, weights: InMemoryWeights(dict))) { error in
            XCTAssertEqual(error as? WeightError, .unexpectedKeys(["visual.trunk.extra.weight"], source: "in-memory weights"))
        }
    }

    func testWrongShapeIsNamed() throws {
        var (config, dict) = try fixtureWeights()
        dict["text_projection"] = Tensor(repeating: 1, shape: [64, 31])
        XCTAssertThrowsError(try CLIPModel(config: config, weights: InMemoryWeights(dict))) { error in
            XCTAssertEqual(error as? WeightError,
                           .shapeMismatch(key: "text_projection", expected: [64, 32], found: [64, 31], source: "in-memory weights"))
        }
    }

    func testTruncatedFileIsAnErrorNotACrash() throws {
        let dir = fixturesURL.appendingPathComponent("convnext_v2_atto")
        let data = try Data(contentsOf: dir.appendingPathComponent("model.safetensors"))
        let cut = FileManager.default.temporaryDirectory.appendingPathComponent("swiftclip-truncated-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: cut) }
        try data.prefix(data.count / 2).write(to: cut)
        let config = try CLIPConfig.load(contentsOf: dir.appendingPathComponent("config.json"))
        XCTAssertThrowsError(try CLIPModel(config: config, weights: SafetensorsWeights(url: cut))) { error in
            XCTAssertTrue("\(error)".contains("truncated") || "\(error)".contains(cut.path), "\(error)")
        }
    }

    func testTokenIdOutsideVocabularyThrows() throws {
        let (config, dict) = try fixtureWeights()
        let model = try CLIPModel(config: config, weights: InMemoryWeights(dict))
        XCTAssertThrowsError(try model.encodeText([[998, 5, 999, config.text.vocabSize]]))
    }

    func testWrongImageShapeThrows() throws {
        let (config, dict) = try fixtureWeights()
        let model = try CLIPModel(config: config, weights: InMemoryWeights(dict))
        XCTAssertThrowsError(try model.encodeImage(Tensor(repeating: 0.5, shape: [1, 4, 64, 64])))
    }

    func testRandomInitIsSeeded() throws {
        let config = try CLIPConfig.load(contentsOf: fixturesURL.appendingPathComponent("convnext_v2_atto/config.json"))
        let a = try CLIPModel(config: config, seed: 3), b = try CLIPModel(config: config, seed: 3), c = try CLIPModel(config: config, seed: 4)
        let tokens = [[998, 17, 42, 999, 0, 0]]
        XCTAssertEqual(try a.encodeText(tokens).scalars, try b.encodeText(tokens).scalars)
        XCTAssertNotEqual(try a.encodeText(tokens).scalars, try c.encodeText(tokens).scalars)
    }
}

final class ConfigTests: XCTestCase {
    func testBuiltInParameterCounts() throws {
        // open_clip's counts (DESIGN.md, and Fixtures/param_counts.json from the reference script).
        XCTAssertEqual(try CLIPModel(model: "convnext_v2_tiny").parameterCounts.total, 91_687_809)
        XCTAssertEqual(try CLIPModel(model: "ViT-B-32").parameterCounts.total, 151_277_313)
    }

    func testUnknownModelNamesTheAlternatives() {
        XCTAssertThrowsError(try ModelRegistry.config(named: "convnext_v3_tiny")) { error in
            XCTAssertTrue("\(error)".contains("convnext_v2_tiny"), "\(error)")
        }
    }

    func testBadConfigsNameTheField() {
        let cases: [(String, String)] = [
            (#"{"vision_cfg": {}, "text_cfg": {}}"#, "embed_dim"),
            (#"{"embed_dim": 8, "vision_cfg": {"timm_model_name": "resnet50"}, "text_cfg": {}}"#, "resnet50"),
            (#"{"embed_dim": 8, "vision_cfg": {"timm_model_name": "convnextv2_atto", "timm_pool": "abs_attn"}, "text_cfg": {}}"#, "timm_pool"),
            (#"{"embed_dim": 8, "vision_cfg": {"width": 100, "head_width": 64}, "text_cfg": {}}"#, "vision_cfg.width"),
            (#"{"embed_dim": 8, "vision_cfg": {}, "text_cfg": {"layers": "twelve"}}"#, "text_cfg.layers"),
            (#"{"embed_dim": 8, "vision_cfg": {}"#, "not valid JSON"),
        ]
        for (json, mention) in cases {
            XCTAssertThrowsError(try CLIPModel(config: CLIPConfig.parse(json: Data(json.utf8), source: "test.json"))) { error in
                XCTAssertTrue("\(error)".contains(mention), "'\(error)' should mention \(mention)")
            }
        }
    }
}
