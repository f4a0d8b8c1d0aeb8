import CLIPEngine
import CLIPModels
import CLIPNN
import CLIPTraining
import Foundation
import XCTest

/// open_clip hub `.bin` and open_clip_train `epoch_K.pt` files written by torch
/// (tools/reference/make_checkpoint_fixtures.py) loaded into SwiftCLIP's model and AdamW.
final class TorchInteropTests: XCTestCase {
    let dir = trainingFixtures.appendingPathComponent("torch")
    let configPath = trainingFixtures.appendingPathComponent("train_vit_quickgelu/config.json").path

    static let settings = AdamW.Settings(lr: 2e-3, beta1: 0.9, beta2: 0.98, eps: 1e-6, weightDecay: 0.2)

    /// The ViT fixture after one SwiftCLIP step at lr 2e-3 (AdamW then holds state for every parameter).
    func fixtureAfterOneStep() throws -> (TrainingFixture, CLIPTrainer) {
        let f = try TrainingFixture("train_vit_quickgelu")
        let trainer = CLIPTrainer(model: f.model, settings: Self.settings, schedule: .const(baseLR: 2e-3, warmup: 0), gradClipNorm: 1.0)
        _ = try trainer.step(images: f.images, tokens: f.tokens)
        return (f, trainer)
    }

    func testHubBinLoadsByContent() throws {
        let model = try CLIPModel(model: configPath, weightsURL: dir.appendingPathComponent("open_clip_pytorch_model.bin"))
        let reference = try SafetensorsFile.read(trainingFixtures.appendingPathComponent("train_vit_quickgelu/model.safetensors"))
        for p in model.parameters.parameters {
            // The .bin holds the fp16 rounding of the fixture's weights.
            let expected = try reference.tensor(p.key).scalars.map { Float(Float16($0)) }
            XCTAssertEqual(p.value.scalars, expected, p.key)
        }
    }

    /// A hub folder whose weights are torch's `open_clip_pytorch_model.bin` (no safetensors beside it),
    /// given as the model: the folder's config and the `.bin`, read by content.
    func testHubFolderWithTorchBinWeights() throws {
        let hub = FileManager.default.temporaryDirectory.appendingPathComponent("swiftclip-hub-bin-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: hub, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: hub) }
        let modelConfig = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: configPath)))
        try JSONSerialization.data(withJSONObject: ["model_cfg": modelConfig]).write(to: hub.appendingPathComponent("open_clip_config.json"))
        try FileManager.default.copyItem(at: dir.appendingPathComponent("open_clip_pytorch_model.bin"),
                                         to: hub.appendingPathComponent("open_clip_pytorch_model.bin"))
        let fromFolder = try CLIPModel(model: hub.path)
        let direct = try CLIPModel(model: configPath, weightsURL: dir.appendingPathComponent("open_clip_pytorch_model.bin"))
        XCTAssertEqual(fromFolder.parameters.parameters.map(\.key), direct.parameters.parameters.map(\.key))
        for (a, b) in zip(fromFolder.parameters.parameters, direct.parameters.parameters) {
            XCTAssertEqual(a.value.scalars, b.value.scalars, a.key)
        }
    }

    /// open_clip_train's epoch_1.pt (one AdamW step in torch, `module.` keys) restored, then one
    /// more step here: the same parameters as torch's second step.
    func testResumeOpenCLIPTrainCheckpointContinuesTorchsRun() throws {
        let model = try CLIPModel(model: configPath)
        let trainer = CLIPTrainer(model: model, settings: Self.settings, schedule: .const(baseLR: 2e-3, warmup: 0), gradClipNorm: 1.0)
        let info = try OpenCLIPTrainCheckpoint.restore(model: model, optimizer: trainer.optimizer, from: dir.appendingPathComponent("epoch_1.pt"))
        XCTAssertEqual(info, .init(epoch: 1, name: "fixture", optimizerStep: 1))
        let f = try TrainingFixture("train_vit_quickgelu")
        _ = try trainer.step(images: f.images, tokens: f.tokens)
        try compareAfterTraining(model, SafetensorsWeights(url: dir.appendingPathComponent("after_step2.safetensors")),
                                 keyBiasBound: 3 * 2e-3 * 2, "epoch_1.pt + 1 step")
    }

    /// An epoch_K.pt written here reads back to the same weights, moments and steps.
    func testWrittenEpochCheckpointRoundTrips() throws {
        let (f, trainer) = try fixtureAfterOneStep()
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("swiftclip-epoch-\(UUID().uuidString).pt")
        defer { try? FileManager.default.removeItem(at: url) }
        try OpenCLIPTrainCheckpoint.save(model: f.model, optimizer: trainer.optimizer, epoch: 2, name: "rt", to: url)

        let model = try CLIPModel(model: configPath)
        let optimizer = AdamW(parameters: model.parameters.parameters, settings: Self.settings)
        XCTAssertEqual(try OpenCLIPTrainCheckpoint.restore(model: model, optimizer: optimizer, from: url), .init(epoch: 2, name: "rt", optimizerStep: 1))
        XCTAssertEqual(model.weights.stateDict.map(\.tensor.scalars), f.model.weights.stateDict.map(\.tensor.scalars))
        let (a, sa) = trainer.optimizer.exportState(), (b, sb) = optimizer.exportState()
        XCTAssertEqual(sa, sb)
        XCTAssertEqual(Set(a.keys), Set(b.keys))
        for (k, t) in a { XCTAssertEqual(t.scalars, b[k]?.scalars, k) }
    }

    /// `swiftclip convert`: a SwiftCLIP training checkpoint to epoch_K.pt (model and AdamW settings
    /// from its recorded arguments), and weights between safetensors and torch state dicts.
    func testConvertTrainingCheckpointAndWeights() throws {
        let (f, trainer) = try fixtureAfterOneStep()
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("swiftclip-convert-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: tmp) }
        let ours = tmp.appendingPathComponent("epoch_3.safetensors")
        let args = ["model": configPath, "lr": "0.002", "beta1": "0.9", "beta2": "0.98", "eps": "1e-06", "wd": "0.2", "name": "run"]
        try Checkpoint.save(model: f.model, optimizer: trainer.optimizer, state: TrainingState(
            epoch: 3, batchesDone: 0, step: 3, rng: [1, 2], optimizerSteps: [:], arguments: args, checkpointID: "x"), to: ours)
        let pt = tmp.appendingPathComponent("epoch_3.pt")
        XCTAssertEqual(try CheckpointConversion.convert(ours, to: pt), .init(target: .openCLIPTrain, tensors: 62, epoch: 3))
        let model = try CLIPModel(model: configPath)
        let optimizer = AdamW(parameters: model.parameters.parameters, settings: Self.settings)
        XCTAssertEqual(try OpenCLIPTrainCheckpoint.restore(model: model, optimizer: optimizer, from: pt), .init(epoch: 3, name: "run", optimizerStep: 1))
        let (a, _) = trainer.optimizer.exportState(), (b, _) = optimizer.exportState()
        for (k, t) in a { XCTAssertEqual(t.scalars, b[k]?.scalars, k) }

        // Weights: epoch_3.pt -> .safetensors -> .bin, each equal to the model's.
        let st = tmp.appendingPathComponent("w.safetensors"), bin = tmp.appendingPathComponent("w.bin")
        XCTAssertEqual(try CheckpointConversion.convert(pt, to: st).target, .safetensors)
        XCTAssertEqual(try CheckpointConversion.convert(st, to: bin).target, .stateDict)
        let back = try WeightFiles.tensors(bin)
        for (k, t) in f.model.weights.stateDict { XCTAssertEqual(back[k]?.scalars, t.scalars, k) }
        XCTAssertThrowsError(try CheckpointConversion.convert(st, to: tmp.appendingPathComponent("x.pt"), target: .openCLIPTrain))
        XCTAssertThrowsError(try CheckpointConversion.convert(st, to: tmp.appendingPathComponent("x.onnx")))
    }

    /// `--pretrained-image`: timm's trunk checkpoint (.bin and .safetensors) gives the trunk open_clip's
    /// TimmModel(pretrained=True) has (head.norm kept, head.fc dropped); nothing else changes.
    func testPretrainedImageTrunkAsOpenCLIPLoadsIt() throws {
        let expected = try SafetensorsFile.read(dir.appendingPathComponent("pretrained_image.safetensors"))
        for file in ["timm_trunk.bin", "timm_trunk.safetensors"] {
            let f = try TrainingFixture("train_convnext_v2")
            let before = Dictionary(uniqueKeysWithValues: f.model.weights.stateDict.map { ($0.key, $0.tensor.scalars) })
            let loaded = try f.model.loadPretrainedImageTrunk(from: dir.appendingPathComponent(file))
            var trunk = 0
            for p in f.model.parameters.parameters {
                if p.key.hasPrefix("visual.trunk.") {
                    trunk += 1
                    XCTAssertEqual(p.value.scalars, try expected.tensor(p.key).scalars, "\(file): \(p.key)")
                } else {
                    XCTAssertEqual(p.value.scalars, before[p.key], "\(file): \(p.key) changed")
                }
            }
            XCTAssertEqual(loaded, trunk, file)
            XCTAssertNotNil(f.model.parameters["visual.trunk.head.norm.weight"])
        }
    }

    func testPretrainedImageMismatchesAreNamed() throws {
        // The ViT fixture has no timm trunk; a trunk of other widths is a shape error naming the key.
        let vit = try TrainingFixture("train_vit_quickgelu")
        XCTAssertThrowsError(try vit.model.loadPretrainedImageTrunk(from: dir.appendingPathComponent("timm_trunk.bin"))) { error in
            XCTAssertTrue("\(error)".contains("timm image tower"), "\(error)")
        }
        let f = try TrainingFixture("train_convnext_v2")
        var sd = try SafetensorsFile.read(dir.appendingPathComponent("timm_trunk.safetensors")).tensors()
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("swiftclip-trunk-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        sd["stem.0.weight"] = nil
        try Safetensors.write(sd, to: url)
        XCTAssertThrowsError(try f.model.loadPretrainedImageTrunk(from: url)) { error in
            XCTAssertEqual(error as? WeightError, .missingKey("stem.0.weight", source: url.path))
        }
        sd["stem.0.weight"] = Tensor(zeros: [1, 2, 3, 4])
        try Safetensors.write(sd, to: url)
        XCTAssertThrowsError(try f.model.loadPretrainedImageTrunk(from: url)) { error in
            XCTAssertTrue("\(error)".contains("visual.trunk.stem.0.weight"), "\(error)")
        }
    }
}
