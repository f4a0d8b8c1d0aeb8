import CLIPModels
import Foundation
import XCTest

/// `preprocess_cfg` in a bare config or a hub folder's open_clip_config.json, and which weights
/// file a hub folder's model loads (open_clip's `_find_checkpoint_in_dir`).
final class PreprocessConfigTests: XCTestCase {
    let model = #""embed_dim": 32, "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16}, "text_cfg": {"context_length": 16, "vocab_size": 1000, "width": 64, "heads": 2, "layers": 2}"#

    func parse(_ preprocess: String) throws -> CLIPConfig {
        try CLIPConfig.parse(json: Data("{\(model), \"preprocess_cfg\": \(preprocess)}".utf8), source: "cfg.json")
    }

    func testFieldsDefaultsAndTheHubWrapping() throws {
        let c = try parse(#"{"mean": 0.5, "std": [0.1, 0.2, 0.3], "interpolation": "random", "resize_mode": "squash", "fill_color": 7, "size": 999, "mode": "RGB"}"#)
        XCTAssertEqual(c.preprocess.mean, [0.5, 0.5, 0.5])
        XCTAssertEqual(c.preprocess.std, [0.1, 0.2, 0.3])
        XCTAssertEqual(c.preprocess.interpolation, "bicubic")  // open_clip: "random" is bicubic at eval
        XCTAssertEqual(c.preprocess.resizeMode, "squash")
        XCTAssertEqual(c.preprocess.fillColor, 7)
        XCTAssertEqual(c.vision.imageSize, 64)  // size follows the model, as in open_clip
        let plain = try CLIPConfig.parse(json: Data("{\(model)}".utf8), source: "cfg.json")
        XCTAssertEqual(plain.preprocess, PreprocessConfig())
        let hub = try CLIPConfig.parse(json: Data(#"{"model_cfg": {\#(model)}, "preprocess_cfg": {"resize_mode": "longest"}}"#.utf8),
                                       source: "open_clip_config.json")
        XCTAssertEqual(hub.preprocess.resizeMode, "longest")
        XCTAssertEqual(hub.embedDim, 32)
        // 0 and 1 are numbers (Foundation on Linux also casts them to Bool); true and false are not.
        let unit = try parse(#"{"mean": [0, 0.0, 0], "std": [1, 1.0, 1], "fill_color": 1}"#)
        XCTAssertEqual(unit.preprocess.mean, [0, 0, 0])
        XCTAssertEqual(unit.preprocess.std, [1, 1, 1])
        XCTAssertEqual(unit.preprocess.fillColor, 1)
    }

    func testBadFieldsAreNamed() {
        for (cfg, field) in [(#"{"std": [0.1, 0, 0.3]}"#, "preprocess_cfg.std"), (#"{"mean": [1, 2]}"#, "preprocess_cfg.mean"),
                             (#"{"fill_color": 300}"#, "preprocess_cfg.fill_color"), (#"{"mode": "L"}"#, "preprocess_cfg.mode"),
                             (#"{"interpolation": "nearest"}"#, "preprocess_cfg.interpolation"), (#"[1]"#, "preprocess_cfg"),
                             (#"{"std": true}"#, "preprocess_cfg.std"), (#"{"mean": [0, false, 0]}"#, "preprocess_cfg.mean"),
                             (#"{"fill_color": true}"#, "preprocess_cfg.fill_color")] {
            XCTAssertThrowsError(try parse(cfg), cfg) { XCTAssertTrue("\($0)".contains(field) && "\($0)".contains("cfg.json"), "\($0)") }
        }
        XCTAssertThrowsError(try CLIPConfig.parse(json: Data(#"{"model_cfg": 3}"#.utf8), source: "h.json")) {
            XCTAssertTrue("\($0)".contains("model_cfg"), "\($0)")
        }
    }

    func testHubWeightsFollowOpenCLIPsPreferences() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("swiftclip-hubw-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func touch(_ name: String) throws { try Data().write(to: dir.appendingPathComponent(name)) }
        XCTAssertNil(ModelRegistry.hubWeights(in: dir.path))
        try touch("zz.pth")
        XCTAssertEqual(ModelRegistry.hubWeights(in: dir.path)?.lastPathComponent, "zz.pth")
        try touch("a.safetensors")
        XCTAssertEqual(ModelRegistry.hubWeights(in: dir.path)?.lastPathComponent, "a.safetensors")
        try touch("pytorch_model.bin")
        XCTAssertEqual(ModelRegistry.hubWeights(in: dir.path)?.lastPathComponent, "pytorch_model.bin")
        try touch("open_clip_pytorch_model.bin")
        XCTAssertEqual(ModelRegistry.hubWeights(in: dir.path)?.lastPathComponent, "open_clip_pytorch_model.bin")
        try touch("open_clip_model.safetensors")
        XCTAssertEqual(ModelRegistry.hubWeights(in: dir.path)?.lastPathComponent, "open_clip_model.safetensors")
        XCTAssertFalse(ModelRegistry.isHubFolder(dir.path))  // no open_clip_config.json yet
    }
}
