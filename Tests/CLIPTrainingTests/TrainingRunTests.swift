import CLIPData
import CLIPEngine
import CLIPModels
import CLIPNN
import CLIPTokenizer
import CLIPTraining
import Foundation
import XCTest

/// `swiftclip train`'s workflow on a tiny ConvNeXt-V2 CLIP and the in-memory synthetic set:
/// checkpoints, bit-exact resume with shuffling and augmentation on, flags' effects, and bad
/// input that must end in a clear error with the last checkpoint intact.
final class TrainingRunTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let tokenizer = try! CLIPTokenizer(vocabularyURL: root.appendingPathComponent("assets/bpe_simple_vocab_16e6.txt.gz"))
    static let config: URL = {
        let json = """
        {"embed_dim": 32, "vision_cfg": {"timm_model_name": "convnextv2_atto", "timm_model_pretrained": false,
          "timm_pool": "avg", "timm_proj": "linear", "image_size": 32},
         "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
        """
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("swiftclip-train-tiny-\(getpid()).json")
        try! Data(json.utf8).write(to: url)
        return url
    }()

    var logs: URL!

    override func setUpWithError() throws {
        logs = FileManager.default.temporaryDirectory.appendingPathComponent("swiftclip-train-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: logs) }

    func options(_ name: String, epochs: Int = 2, change: (inout TrainingOptions) -> Void = { _ in }) -> TrainingOptions {
        var o = TrainingOptions(model: Self.config.path)
        o.datasetType = .synthetic
        o.trainNumSamples = 24
        o.batchSize = 4
        o.epochs = epochs
        o.lr = 1e-3
        o.warmup = 2
        o.workers = 2
        o.logs = logs
        o.name = name
        o.logEveryNSteps = 2
        o.seed = 5
        change(&o)
        return o
    }

    func weights(_ run: TrainingRun) -> [String: [Float]] {
        Dictionary(uniqueKeysWithValues: run.model.parameters.parameters.map { ($0.key, $0.value.scalars) })
    }

    func testAnInterruptedAndResumedRunEndsWithExactlyTheUninterruptedWeights() throws {
        let straight = try TrainingRun(options: options("straight"), tokenizer: Self.tokenizer)
        try straight.run()

        let first = try TrainingRun(options: options("resumed"), tokenizer: Self.tokenizer)
        var steps = 0
        first.shouldStop = { steps += 1; return steps == 4 }   // mid-epoch 0 (6 steps per epoch)
        XCTAssertThrowsError(try first.run()) { error in
            guard case TrainingError.interrupted(let path) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(path.hasSuffix("epoch_latest.safetensors"), path)
        }
        let second = try TrainingRun(options: options("resumed") { $0.resume = "latest" }, tokenizer: Self.tokenizer)
        XCTAssertEqual(second.trainer.step, 4)
        try second.run()
        XCTAssertEqual(second.trainer.step, straight.trainer.step)
        let a = weights(straight), b = weights(second)
        XCTAssertEqual(a.keys.sorted(), b.keys.sorted())
        for key in a.keys.sorted() { XCTAssertEqual(a[key]!, b[key]!, "\(key) differs after resume") }
        XCTAssertNotEqual(a["visual.head.proj.weight"] ?? a.values.first!, TrainingRunTests.initialWeights()[
            a.keys.contains("visual.head.proj.weight") ? "visual.head.proj.weight" : a.keys.first!]!, "training changed the weights")

        // The final checkpoint: open_clip keys, loadable as plain weights, its training state beside them.
        let ckpt = second.checkpoints.appendingPathComponent("epoch_2.safetensors")
        let reloaded = try CLIPModel(config: CLIPConfig.load(contentsOf: Self.config), weights: SafetensorsWeights(url: ckpt))
        XCTAssertEqual(reloaded.parameters.parameters.map { $0.value.scalars }, second.model.parameters.parameters.map { $0.value.scalars })
        let state = try XCTUnwrap(Checkpoint.state(of: ckpt))
        XCTAssertEqual(state.epoch, 2)
        XCTAssertEqual(state.step, 12)
        XCTAssertTrue(FileManager.default.fileExists(atPath: Checkpoint.optimizerURL(for: ckpt).path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: second.checkpoints.appendingPathComponent("epoch_latest.safetensors").path),
                       "the interruption's checkpoint is replaced once an epoch completes")
    }

    static func initialWeights() -> [String: [Float]] {
        let model = try! CLIPModel(config: CLIPConfig.load(contentsOf: config), seed: 5)
        return Dictionary(uniqueKeysWithValues: model.parameters.parameters.map { ($0.key, $0.value.scalars) })
    }

    func testLogsParamsStepsAndCheckpointFlags() throws {
        let run = try TrainingRun(options: options("flags", epochs: 3) {
            $0.saveFrequency = 2; $0.saveMostRecent = true; $0.accumFreq = 2; $0.lrScheduler = .cosine
        }, tokenizer: Self.tokenizer)
        XCTAssertEqual(run.stepsPerEpoch, 3, "6 batches per epoch, two per step with --accum-freq 2")
        try run.run()
        let files = Set(try FileManager.default.contentsOfDirectory(atPath: run.checkpoints.path))
        XCTAssertEqual(Set(files.filter { $0.hasPrefix("epoch_") && !$0.contains("optimizer") }),
                       ["epoch_2.safetensors", "epoch_3.safetensors", "epoch_latest.safetensors"],
                       "every 2nd epoch, the last, and the most recent")
        let params = try String(contentsOf: run.directory.appendingPathComponent("params.txt"), encoding: .utf8)
        XCTAssertTrue(params.contains("accum_freq: 2") && params.contains("name: flags"), params)
        let out = try String(contentsOf: run.directory.appendingPathComponent("out.log"), encoding: .utf8)
        XCTAssertEqual(out.components(separatedBy: "Train Epoch:").count - 1, 3 * 2, "a line every 2 steps and at each epoch's end")
        let steps = try String(contentsOf: run.directory.appendingPathComponent("steps.jsonl"), encoding: .utf8)
            .split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Double] }
        XCTAssertEqual(steps.count, 9)
        // open_clip's cosine schedule: warmup 2 steps, then cosine over the remaining 7.
        for (i, s) in steps.enumerated() {
            let want = i < 2 ? 1e-3 * Double(i + 1) / 2 : 0.5 * (1 + cos(Double.pi * Double(i - 2) / 7)) * 1e-3
            XCTAssertEqual(s["lr"]!, want, accuracy: 1e-12, "step \(i)")
            XCTAssertTrue(s["loss"]!.isFinite)
        }
        XCTAssertThrowsError(try TrainingRun(options: options("flags"), tokenizer: Self.tokenizer)) { error in
            XCTAssertTrue("\(error)".contains("already exists"), "\(error)")
        }

        // The loss curve beside the logs: a 720×400 PNG with the curve's colour, drawn from all 9 steps.
        let chart = try ImageDecoder.decode(contentsOf: run.directory.appendingPathComponent("loss.png"))
        XCTAssertEqual([chart.width, chart.height], [LossChart.width, LossChart.height])
        let blue = stride(from: 0, to: chart.pixels.count, by: 3).filter { chart.pixels[$0] == 31 && chart.pixels[$0 + 1] == 119 }.count
        XCTAssertGreaterThan(blue, 100, "the curve is drawn")
        XCTAssertEqual(LossChart.read(stepsLog: run.directory.appendingPathComponent("steps.jsonl")).map(\.step), Array(1...9))
    }

    func testLockedImageTrunkAndEvaluationResults() throws {
        let folder = logs.appendingPathComponent("zs")
        let held = try SyntheticShapes(seed: 9, count: 12, imageSize: 32)
        for colour in SyntheticShapes.classNames {
            try FileManager.default.createDirectory(at: folder.appendingPathComponent(colour), withIntermediateDirectories: true)
        }
        var csv = "filepath\ttitle\n"
        for i in 0..<12 {
            let s = held.sample(i)
            let name = "\(SyntheticShapes.classNames[s.colour])/\(i).png"
            try PNGEncoder.encode(s.image).write(to: folder.appendingPathComponent(name))
            csv += "zs/\(name)\t\(s.caption)\n"
        }
        try Data(csv.utf8).write(to: logs.appendingPathComponent("val.csv"))
        let zeroShot = try ImageFolderDataset(root: folder)
        let run = try TrainingRun(options: options("locked", epochs: 2) {
            $0.lockImage = true; $0.zeroshotFrequency = 2; $0.valFrequency = 1; $0.valData = self.logs.appendingPathComponent("val.csv")
        }, tokenizer: Self.tokenizer, zeroShot: (zeroShot, SyntheticShapes.templates))
        let before = weights(run)
        let results = try run.run()
        let after = weights(run)
        for key in before.keys where key.hasPrefix("visual.trunk.") { XCTAssertEqual(before[key]!, after[key]!, "\(key) is locked") }
        XCTAssertNotEqual(before["visual.head.proj.weight"]!, after["visual.head.proj.weight"]!, "the head still trains")
        XCTAssertEqual(results.count, 2)
        XCTAssertNil(results[0]["zeroshot-val-top1"], "zero-shot every 2nd epoch")
        XCTAssertNotNil(results[1]["zeroshot-val-top1"])
        XCTAssertNotNil(results[0]["clip_val_loss"])
        XCTAssertNotNil(results[1]["image_to_text_R@1"])
        let lines = try String(contentsOf: run.checkpoints.appendingPathComponent("results.jsonl"), encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 2)
    }

    func testADivergingLossStopsWithoutTouchingTheLastCheckpoint() throws {
        let first = try TrainingRun(options: options("diverge", epochs: 1), tokenizer: Self.tokenizer)
        try first.run()
        let ckpt = first.checkpoints.appendingPathComponent("epoch_1.safetensors")
        let bytes = try Data(contentsOf: ckpt)
        let again = try TrainingRun(options: options("diverge", epochs: 2) { $0.resume = "latest"; $0.lr = 1e30; $0.warmup = 0 },
                                    tokenizer: Self.tokenizer)
        XCTAssertThrowsError(try again.run()) { error in
            guard case TrainingError.nonFiniteLoss = error else { return XCTFail("\(error)") }
            XCTAssertTrue("\(error)".contains("epoch_1.safetensors"), "\(error)")
        }
        XCTAssertEqual(try Data(contentsOf: ckpt), bytes)
        XCTAssertFalse(FileManager.default.fileExists(atPath: first.checkpoints.appendingPathComponent("epoch_2.safetensors").path))
    }

    func testBadPretrainedAndTruncatedCheckpointsAreErrorsNamingTheProblem() throws {
        let run = try TrainingRun(options: options("bad", epochs: 1), tokenizer: Self.tokenizer)
        try run.run()
        let ckpt = run.checkpoints.appendingPathComponent("epoch_1.safetensors")
        // Weights of another architecture: the key that does not fit is named.
        let other = logs.appendingPathComponent("vit.safetensors")
        let vit = try CLIPModel(config: CLIPConfig.load(contentsOf: Self.root.appendingPathComponent("examples/Embedder/tiny-config.json")))
        try vit.weights.save(to: other)
        XCTAssertThrowsError(try TrainingRun(options: options("bad2") { $0.pretrained = other }, tokenizer: Self.tokenizer)) { error in
            XCTAssertTrue("\(error)".contains("vit.safetensors") && "\(error)".contains("weight"), "\(error)")
        }
        // A truncated checkpoint: an error naming it; the file is left as it was.
        let truncated = logs.appendingPathComponent("truncated.safetensors")
        let bytes = try Data(contentsOf: ckpt)
        try bytes.prefix(bytes.count / 2).write(to: truncated)
        let half = try Data(contentsOf: truncated)
        XCTAssertThrowsError(try TrainingRun(options: options("bad3") { $0.resume = truncated.path }, tokenizer: Self.tokenizer)) { error in
            XCTAssertTrue("\(error)".contains("truncated.safetensors"), "\(error)")
        }
        XCTAssertEqual(try Data(contentsOf: truncated), half)
        // Plain weights are not a resumable checkpoint.
        XCTAssertThrowsError(try TrainingRun(options: options("bad4") { $0.resume = other.path }, tokenizer: Self.tokenizer)) { error in
            XCTAssertTrue("\(error)".contains("--pretrained"), "\(error)")
        }
        // A CSV without the caption column names the column and lists the header.
        let csv = logs.appendingPathComponent("train.csv")
        try Data("filepath\tcaption\na.png\ta cat\n".utf8).write(to: csv)
        XCTAssertThrowsError(try TrainingRun(options: options("bad5") { $0.datasetType = .csv; $0.trainData = csv }, tokenizer: Self.tokenizer)) { error in
            XCTAssertTrue("\(error)".contains("'title'") && "\(error)".contains("'caption'"), "\(error)")
        }
    }

    /// A full disk while writing a checkpoint: the error names the file, the previous checkpoint
    /// stays intact. Runs on a small tmpfs (needs root, as CI and these machines have).
    func testAFullDiskLeavesThePreviousCheckpointIntact() throws {
        // 2 epochs: epoch_2 is the last checkpoint, written at once; 3 epochs: epoch_2 is written in
        // the background while epoch 3 starts, and its error must still stop the run.
        for epochs in [2, 3] {
            let mountPoint = logs.appendingPathComponent("small-disk-\(epochs)")
            try FileManager.default.createDirectory(at: mountPoint, withIntermediateDirectories: true)
            let mount = Process()
            mount.executableURL = URL(fileURLWithPath: "/bin/mount")
            mount.arguments = ["-t", "tmpfs", "-o", "size=100m", "tmpfs", mountPoint.path]
            mount.standardError = FileHandle.nullDevice
            try mount.run()
            mount.waitUntilExit()
            guard mount.terminationStatus == 0 else { throw XCTSkip("cannot mount a tmpfs here (needs root)") }
            defer {
                let umount = Process()
                umount.executableURL = URL(fileURLWithPath: "/bin/umount")
                umount.arguments = [mountPoint.path]
                try? umount.run()
                umount.waitUntilExit()
            }
            // ~63 MB per checkpoint (weights + AdamW moments): the first fits, the second does not.
            let run = try TrainingRun(options: options("disk\(epochs)", epochs: epochs) { $0.logs = mountPoint }, tokenizer: Self.tokenizer)
            XCTAssertThrowsError(try run.run()) { error in
                XCTAssertTrue("\(error)".contains("epoch_2"), "the error names the file: \(error)")
            }
            // 6 steps per epoch; with 3 epochs the failed background save stops the run before epoch 3's first update.
            XCTAssertEqual(run.trainer.step, 12, "no optimizer update after the failed save")
            let first = run.checkpoints.appendingPathComponent("epoch_1.safetensors")
            let reloaded = try CLIPModel(config: CLIPConfig.load(contentsOf: Self.config), weights: SafetensorsWeights(url: first))
            XCTAssertEqual(reloaded.parameterCounts, run.model.parameterCounts)
            XCTAssertNotNil(try Checkpoint.state(of: first))
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: run.checkpoints.path).filter { $0.contains("tmp") || $0.hasPrefix(".") }
            XCTAssertEqual(leftovers, [], "no temporary files left behind")
        }
    }

    /// The loss of every step, from steps.jsonl.
    func losses(_ run: TrainingRun) throws -> [Double] {
        try String(contentsOf: run.directory.appendingPathComponent("steps.jsonl"), encoding: .utf8)
            .split(separator: "\n").map { line in
                let row = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                return try XCTUnwrap(row["loss"] as? Double)
            }
    }

    /// `--precision amp_bf16`: bf16 forward GEMMs over fp32 master weights follow the fp32 run's
    /// loss curve step for step, without being it.
    func testAmpBF16FollowsTheFP32LossCurve() throws {
        let fp32 = try TrainingRun(options: options("fp32"), tokenizer: Self.tokenizer)
        _ = try fp32.run()
        let amp = try TrainingRun(options: options("amp") { $0.precision = .bf16 }, tokenizer: Self.tokenizer)
        _ = try amp.run()
        XCTAssertEqual(amp.model.precision, .bf16)
        let a = try losses(fp32), b = try losses(amp)
        XCTAssertEqual(a.count, 12)
        XCTAssertEqual(a.count, b.count)
        // Relative per step: bf16 rounds each GEMM operand by up to 2^-9 (0.2%); twelve steps of
        // lr 1e-3 on 4 samples compound it to ~1% here (fp32 vs amp_bf16, worst step 2.703 vs 2.731).
        let worst = zip(a, b).map { abs($0 - $1) / abs($0) }.max() ?? .infinity
        print("amp_bf16 vs fp32 losses: \(zip(a, b).map { String(format: "%.4f/%.4f", $0, $1) }.joined(separator: " "))")
        XCTAssertLessThan(worst, 0.02, "amp_bf16 loss curve vs fp32 (relative, worst step)")
        XCTAssertNotEqual(a, b, "amp_bf16 rounds (it is not the fp32 run)")
        // The master weights stay fp32 and move by the same updates.
        for p in amp.model.parameters.parameters { XCTAssertTrue(p.value.scalars.allSatisfy(\.isFinite), p.key) }
    }
}
