import CLIPEngine
import CLIPModels
import CLIPNN
import CLIPTraining
import Foundation
import XCTest

/// The parameter tree is the one source of values: derived forms (packed GEMM weights, the
/// transposed depthwise weight, V1's gamma folded into fc2) follow it; loading, saving and
/// counting read it.
final class ParameterTreeTests: XCTestCase {
    /// After `update`, inference equals a model loaded from the same values (every cache rebuilt).
    func checkCachesFollowValues(_ name: String) throws {
        let f = try TrainingFixture(name)
        let before = try f.model.encodeImage(f.images)
        let beforeText = try f.model.encodeText(f.tokens)
        var rng = SeededGenerator(seed: 77)
        var changed: [String: Tensor] = [:]
        for p in f.model.parameters.parameters {
            changed[p.key] = try Tensor(shape: p.shape, data: p.value.scalars.map { $0 * (1 + 0.1 * Float.random(in: -1...1, using: &rng)) })
        }
        try f.model.parameters.update(changed, strict: true)
        let reference = try CLIPModel(config: f.model.config, weights: InMemoryWeights(changed), convNeXt: f.spec)
        let after = try f.model.encodeImage(f.images), afterText = try f.model.encodeText(f.tokens)
        XCTAssertGreaterThan(relativeError(after, before), 1e-3, "\(name): the update must change the output")
        XCTAssertGreaterThan(relativeError(afterText, beforeText), 1e-3)
        XCTAssertEqual(after.scalars, try reference.encodeImage(f.images).scalars, "\(name): image tower after update")
        XCTAssertEqual(afterText.scalars, try reference.encodeText(f.tokens).scalars, "\(name): text tower after update")
    }

    func testConvNeXtV2CachesFollowValues() throws { try checkCachesFollowValues("train_convnext_v2") }
    func testConvNeXtV1FoldedGammaFollowsValues() throws { try checkCachesFollowValues("train_convnext_v1_mlp") }
    func testViTCachesFollowValues() throws { try checkCachesFollowValues("train_vit_quickgelu") }

    func testUpdateIsStrictAndAtomic() throws {
        let f = try TrainingFixture("train_convnext_v2")
        let tree = f.model.parameters
        let key = "visual.head.proj.weight"
        let original = try XCTUnwrap(tree[key]).value.scalars
        // A wrong shape anywhere: nothing is written.
        let good = Tensor(repeating: 0.5, shape: try XCTUnwrap(tree[key]).shape)
        XCTAssertThrowsError(try tree.update([key: good, "logit_scale": Tensor(repeating: 1, shape: [2])])) { error in
            XCTAssertEqual(error as? WeightError, .shapeMismatch(key: "logit_scale", expected: [], found: [2], source: "update"))
        }
        XCTAssertEqual(try XCTUnwrap(tree[key]).value.scalars, original)
        XCTAssertThrowsError(try tree.update(["visual.nope": good])) { error in
            XCTAssertEqual(error as? WeightError, .unexpectedKeys(["visual.nope"], source: "update"))
        }
        XCTAssertThrowsError(try tree.update([key: good], strict: true)) { error in
            guard case .missingKey = error as? WeightError else { return XCTFail("\(error)") }
        }
        try tree.update([key: good])
        XCTAssertEqual(try XCTUnwrap(tree[key]).value.scalars, good.scalars)
        // Counting and the state dict read the tree.
        XCTAssertEqual(f.model.parameterCounts.total, tree.count())
        XCTAssertEqual(f.model.weights.stateDict.map(\.key), tree.keys)
    }

    /// Saving writes the current values; loading them back gives the same model.
    func testSaveAfterTrainingStepRoundTrips() throws {
        let f = try TrainingFixture("train_convnext_v2")
        let trainer = try f.trainer()
        try trainer.step(images: f.images, tokens: f.tokens)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("swiftclip-train-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try f.model.save(to: url)
        let loaded = try CLIPModel(config: f.model.config, weights: SafetensorsWeights(url: url), convNeXt: f.spec)
        for p in f.model.parameters.parameters {
            XCTAssertEqual(try XCTUnwrap(loaded.parameters[p.key]).value.scalars, p.value.scalars, p.key)
        }
        XCTAssertEqual(try loaded.encodeImage(f.images).scalars, try f.model.encodeImage(f.images).scalars)
    }

    /// --lock-image / --lock-text: the locked parameters get no gradient and do not move (a timm
    /// tower's lock covers its trunk; its head still trains, as in open_clip).
    func testLockedTowersStayPut() throws {
        for lockImage in [true, false] {
            let f = try TrainingFixture("train_convnext_v2")
            let trainer = try f.trainer()
            if lockImage { trainer.lockImageTower() } else { trainer.lockTextTower() }
            let before = Dictionary(uniqueKeysWithValues: f.model.parameters.parameters.map { ($0.key, $0.value.scalars) })
            try trainer.step(images: f.images, tokens: f.tokens)
            for p in f.model.parameters.parameters {
                let locked = lockImage ? p.key.hasPrefix("visual.trunk.") : (!p.key.hasPrefix("visual.") && p.key != "logit_scale")
                if locked {
                    XCTAssertNil(p.grad, "\(p.key) is locked")
                    XCTAssertEqual(p.value.scalars, before[p.key], "\(p.key) is locked")
                } else if p.key.hasSuffix(".weight") && p.shape.count >= 2 {
                    XCTAssertNotEqual(p.value.scalars, before[p.key], "\(p.key) trains")
                }
            }
        }
    }
}
