import Foundation
import SwiftCLIP
import XCTest

/// A Hugging Face hub folder as open_clip's `save_for_hf` writes it (open_clip_config.json with
/// model_cfg + a non-default preprocess_cfg, open_clip_model.safetensors), given as the model:
/// SwiftCLIP's preprocessing and embeddings against open_clip's
/// `create_model_and_transforms("local-dir:DIR")` (tools/reference/make_hub_fixtures.py).
final class HubFolderTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = root.appendingPathComponent("Tests/CLIPDataTests/Fixtures")
    static let hubFixture = fixtures.appendingPathComponent("hub")

    struct Expected: Decodable {
        struct Image: Decodable { let file: String; let embedding: [Float] }
        let image_size: Int
        let images: [Image]
    }

    /// The folder: the committed config and the tiny ViT's weights under the hub's file name.
    func makeHubFolder() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("swiftclip-hub-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: Self.hubFixture.appendingPathComponent("open_clip_config.json"),
                                         to: dir.appendingPathComponent("open_clip_config.json"))
        try FileManager.default.copyItem(at: Self.root.appendingPathComponent("Tests/CLIPModelsTests/Fixtures/vit_tiny_quickgelu/model.safetensors"),
                                         to: dir.appendingPathComponent("open_clip_model.safetensors"))
        return dir
    }

    func testHubFolderPreprocessesAndEmbedsAsOpenCLIP() throws {
        let dir = try makeHubFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: Self.hubFixture.appendingPathComponent("expected.json")))
        let config = try ModelRegistry.config(named: dir.path)
        XCTAssertEqual(config.preprocess.mean, [0.5, 0.5, 0.5])
        XCTAssertEqual(config.preprocess.interpolation, "bilinear")
        XCTAssertEqual(config.preprocess.resizeMode, "longest")
        XCTAssertEqual(ModelRegistry.hubWeights(in: dir.path)?.lastPathComponent, "open_clip_model.safetensors")

        // Preprocessing: the 8-bit pixels open_clip's transform hands ToTensor, exactly.
        let pre = Preprocessor(model: config)
        let crops = [UInt8](try Data(contentsOf: Self.hubFixture.appendingPathComponent("crops.rgb")))
        let n = expected.image_size * expected.image_size * 3
        for (i, image) in expected.images.enumerated() {
            let ours = pre.resizeAndCrop(try ImageDecoder.decodeImage(contentsOf: Self.fixtures.appendingPathComponent(image.file)))
            XCTAssertEqual(ours.pixels, Array(crops[(i * n)..<((i + 1) * n)]), image.file)
        }

        // Embeddings, with the folder's weights and preprocess_cfg: the parity tests' tolerance
        // (worst relative error 1e-4).
        let clip = try CLIP(model: dir.path, vocabulary: Self.root.appendingPathComponent("assets/bpe_simple_vocab_16e6.txt.gz"))
        for image in expected.images {
            let ours = try clip.embedImage(at: Self.fixtures.appendingPathComponent(image.file))
            let err = zip(ours, image.embedding).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot()
            XCTAssertLessThanOrEqual(err, 1e-4, image.file)
        }
    }

    func testHubFolderWithoutWeightsOrWithABadPreprocessCfgIsANamedError() throws {
        let dir = try makeHubFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.removeItem(at: dir.appendingPathComponent("open_clip_model.safetensors"))
        XCTAssertThrowsError(try CLIP(model: dir.path, vocabulary: Self.root.appendingPathComponent("assets/bpe_simple_vocab_16e6.txt.gz"))) {
            XCTAssertTrue("\($0)".contains(dir.path) && "\($0)".contains("weights"), "\($0)")
        }
        let config = dir.appendingPathComponent("open_clip_config.json")
        var text = try String(contentsOf: config, encoding: .utf8)
        text = text.replacingOccurrences(of: "\"longest\"", with: "\"widest\"")
        try Data(text.utf8).write(to: config)
        XCTAssertThrowsError(try ModelRegistry.config(named: dir.path)) {
            XCTAssertTrue("\($0)".contains("preprocess_cfg.resize_mode") && "\($0)".contains("open_clip_config.json"), "\($0)")
        }
    }
}
