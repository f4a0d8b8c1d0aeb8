import CLIPEngine
import CLIPModels
import CLIPNN
import Foundation
import XCTest

/// Per-field bounds, overflow-checked arithmetic and the memory estimate made before allocating.
final class ConfigLimitsTests: XCTestCase {
    func parse(vision: String = #""image_size": 64, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16"#,
               text: String = #""width": 32, "heads": 2, "layers": 1"#, top: String = #""embed_dim": 16"#) throws -> CLIPConfig {
        try CLIPConfig.parse(json: Data("{\(top), \"vision_cfg\": {\(vision)}, \"text_cfg\": {\(text)}}".utf8), source: "t.json")
    }

    func assertField(_ field: String, vision: String? = nil, text: String? = nil, top: String? = nil, line: UInt = #line) {
        XCTAssertThrowsError(try parse(vision: vision ?? #""image_size": 64, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16"#,
                                       text: text ?? #""width": 32, "heads": 2, "layers": 1"#, top: top ?? #""embed_dim": 16"#), line: line) { e in
            guard case .invalidField(let f, _, let source)? = e as? ConfigError else { return XCTFail("\(e)", line: line) }
            XCTAssertEqual(f, field, line: line)
            XCTAssertEqual(source, "t.json", line: line)
        }
    }

    func testMLPRatioOutsideTheHiddenSizeBoundsIsNamed() {
        let vit = #""image_size": 64, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16, "mlp_ratio": "#
        for ratio in ["1e300", "9223372036854775808", "0.01", "1e-300", "1e9", "0", "-1", "\"4\""] {
            assertField("vision_cfg.mlp_ratio", vision: vit + ratio)
            assertField("text_cfg.mlp_ratio", text: #""width": 32, "heads": 2, "layers": 1, "mlp_ratio": "# + ratio)
        }
        XCTAssertEqual(try parse(vision: vit + "2.5").vision, try parse(vision: vit + "2.5").vision)
    }

    func testImageSizeBothFormsAreBounded() {
        for size in ["[4611686018427387904, 4611686018427387904]", "[70000, 70000]", "70000", "[64, 32]", "[64]", "[0, 0]", "1e300"] {
            assertField("vision_cfg.image_size", vision: #""layers": 1, "width": 32, "head_width": 16, "patch_size": 16, "image_size": "# + size)
        }
        XCTAssertEqual(try parse(vision: #""layers": 1, "width": 32, "head_width": 16, "patch_size": 16, "image_size": [64, 64]"#).vision.imageSize, 64)
    }

    func testEveryIntegerFieldIsBounded() {
        let big = "999999999"
        assertField("text_cfg.layers", text: #""width": 32, "heads": 2, "layers": "# + big)
        assertField("text_cfg.context_length", text: #""width": 32, "heads": 2, "layers": 1, "context_length": "# + big)
        assertField("text_cfg.vocab_size", text: #""width": 32, "heads": 2, "layers": 1, "vocab_size": "# + big)
        assertField("text_cfg.width", text: #""width": 70000, "heads": 2, "layers": 1"#)
        assertField("text_cfg.heads", text: #""width": 32, "heads": 64, "layers": 1"#)
        assertField("embed_dim", top: #""embed_dim": "# + big)
        assertField("vision_cfg.layers", vision: #""image_size": 64, "width": 32, "head_width": 16, "patch_size": 16, "layers": "# + big)
        assertField("vision_cfg.width", vision: #""image_size": 64, "layers": 1, "head_width": 16, "patch_size": 16, "width": 70000"#)
        assertField("vision_cfg.patch_size", vision: #""image_size": 64, "layers": 1, "width": 32, "head_width": 16, "patch_size": 128"#)
        assertField("vision_cfg.head_width", vision: #""image_size": 64, "layers": 1, "width": 32, "patch_size": 16, "head_width": 64"#)
    }

    func testJSONErrorsHavePositionsAndNameTheTopLevel() {
        for (text, part) in [("{\"embed_dim\": 16,\n \"vision_cfg\": [1,}", "line 2, column 19"), ("null", "the top level is null"),
                             ("[1]", "the top level is an array"), ("", "the file is empty"),
                             (String(repeating: "[", count: 50_000), "nested deeper than 64")] {
            XCTAssertThrowsError(try CLIPConfig.parse(json: Data(text.utf8), source: "t.json")) { e in
                XCTAssertTrue("\(e)".contains(part) && "\(e)".contains("t.json"), "\(e)")
            }
        }
    }

    /// The estimate must be the count open_clip reports, or the memory check would be guesswork.
    func testParameterEstimateEqualsTheBuiltModel() throws {
        var configs = try ["convnext_v2_tiny", "ViT-B-32"].map { try ModelRegistry.config(named: $0) }
        for fixture in ["vit_tiny_quickgelu", "convnext_v2_atto_trunkfc", "convnext_v2_atto"] {
            configs.append(try CLIPConfig.load(contentsOf: fixturesURL.appendingPathComponent(fixture).appendingPathComponent("config.json")))
        }
        let mlpHead = #"{"embed_dim": 64, "vision_cfg": {"timm_model_name": "convnext_atto", "timm_proj": "mlp", "timm_proj_bias": true, "image_size": 64}, "text_cfg": {"width": 32, "heads": 2, "layers": 1, "mlp_ratio": 2.5}}"#
        configs.append(try CLIPConfig.parse(json: Data(mlpHead.utf8), source: "mlp"))
        for c in configs {
            let model = try CLIPModel(config: c)
            XCTAssertEqual(c.parameterCount, model.parameterCounts.total, c.source)
            XCTAssertEqual(c.imageTowerParameters, model.parameterCounts.visual, c.source)
            XCTAssertEqual(c.textTowerParameters, model.parameterCounts.text, c.source)
        }
    }

    func testAModelTooLargeForTheMachineIsAnErrorWithBothNumbers() throws {
        let huge = try CLIPConfig.parse(json: Data(#"{"embed_dim": 1024, "vision_cfg": {"timm_model_name": "convnextv2_huge"}, "text_cfg": {"width": 1024, "heads": 16, "layers": 24}}"#.utf8), source: "huge.json")
        setenv(MemoryBudget.environmentVariable, "4G", 1)
        defer { unsetenv(MemoryBudget.environmentVariable) }
        for build in [{ _ = try CLIPModel(config: huge) }, { _ = try CLIPModel.randomImageTower(config: huge, seed: 0) }] {
            XCTAssertThrowsError(try build()) { e in
                guard let m = e as? InsufficientMemory else { return XCTFail("\(e)") }
                XCTAssertGreaterThan(m.neededBytes, 4 << 30)
                XCTAssertEqual(m.availableBytes, 4 << 30)
                XCTAssertTrue("\(e)".contains("huge.json") && "\(e)".contains("needs about"), "\(e)")
            }
        }
        // The largest config inside every bound overflows no arithmetic and asks for more than any machine has.
        let max = CLIPConfig.Limits.self
        let widest = try parse(vision: "\"image_size\": \(max.imageSize), \"patch_size\": 1, \"width\": \(max.width), \"layers\": \(max.layers), \"head_width\": 64",
                               text: "\"width\": \(max.width), \"heads\": 64, \"layers\": \(max.layers), \"context_length\": \(max.contextLength), \"vocab_size\": \(max.vocabSize)",
                               top: "\"embed_dim\": \(max.embedDim)")
        XCTAssertNotNil(widest.parameterCount)
        XCTAssertNil(widest.imageActivationBytes(batch: 1 << 30), "overflow is reported as nil")
        XCTAssertNil(widest.imageActivationBytes(batch: 1 << 30, onePassPerThreadOn: 2), "overflow is reported as nil")
        XCTAssertThrowsError(try CLIPModel(config: widest))
    }

    /// One pass per image per thread holds the batch's pixels and `threads` one-image passes, so a
    /// batch of 64 needs far less than a 64-image pass (and `embed-image --batch-size 512` is no
    /// longer refused for the memory of a pass it never makes).
    func testPerThreadEmbeddingNeedsThePixelsAndOnePassPerThread() throws {
        let config = try CLIPConfig.load(contentsOf: fixturesURL.appendingPathComponent("convnext_v2_atto/config.json"))
        let s = config.vision.imageSize, pixel = 3 * s * s * MemoryLayout<Float>.stride
        for (batch, threads) in [(64, 2), (64, 8), (1, 2), (3, 16)] {
            let passes = min(batch, threads)
            XCTAssertEqual(config.imageActivationBytes(batch: batch, onePassPerThreadOn: threads),
                           batch * pixel + config.imageActivationBytes(batch: passes)!, "batch \(batch), threads \(threads)")
        }
        XCTAssertLessThan(config.imageActivationBytes(batch: 64, onePassPerThreadOn: 2)!, config.imageActivationBytes(batch: 64)! / 4)
    }
}
