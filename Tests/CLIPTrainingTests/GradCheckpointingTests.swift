import CLIPEngine
import CLIPModels
import CLIPNN
import CLIPTraining
import Foundation
import XCTest

/// `--grad-checkpointing` keeps only each block's input and reruns the block in backward: the loss
/// and every gradient must be bit for bit those of the ordinary backward, for each tower kind,
/// with stochastic depth on (the rerun must reuse the step's draws, not draw again).
final class GradCheckpointingTests: XCTestCase {
    func check(_ name: String, dropPath: Double? = nil) throws {
        func gradients(checkpointing: Bool) throws -> (Double, [String: [Float]]) {
            var f = try TrainingFixture(name)
            if let dropPath {
                var json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: f.dir.appendingPathComponent("config.json"))) as? [String: Any])
                var vision = try XCTUnwrap(json["vision_cfg"] as? [String: Any])
                vision["timm_drop_path"] = dropPath
                json["vision_cfg"] = vision
                let config = try CLIPConfig.parse(json: JSONSerialization.data(withJSONObject: json), source: name)
                f = try TrainingFixture(name, config: config)
            }
            let trainer = try f.trainer()
            trainer.gradCheckpointing = checkpointing
            let loss = try trainer.lossAndGradients(images: f.images, tokens: f.tokens)
            return (loss, Dictionary(uniqueKeysWithValues: f.model.parameters.parameters.map { ($0.key, $0.grad?.scalars ?? []) }))
        }
        let (plainLoss, plain) = try gradients(checkpointing: false)
        let (loss, recomputed) = try gradients(checkpointing: true)
        XCTAssertEqual(loss, plainLoss, "\(name): loss")
        XCTAssertEqual(Set(plain.keys), Set(recomputed.keys))
        for (key, g) in plain {
            XCTAssertFalse(g.isEmpty, "\(name): \(key) has a gradient")
            XCTAssertEqual(recomputed[key], g, "\(name): gradient of \(key)")
        }
    }

    func testConvNeXtV2() throws { try check("train_convnext_v2") }
    func testConvNeXtV2WithStochasticDepth() throws { try check("train_convnext_v2", dropPath: 0.3) }
    func testConvNeXtV1WithStochasticDepth() throws { try check("train_convnext_v1_mlp", dropPath: 0.3) }
    func testViTAndText() throws { try check("train_vit_quickgelu") }
}
