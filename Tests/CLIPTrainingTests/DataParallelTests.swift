import CLIPEngine
import CLIPNN
import CLIPTraining
import Foundation
import XCTest

/// `mpirun -np 2 swiftclip train` (Open MPI, the release binary `make test` builds) against one
/// process with the global batch: open_clip's ClipLoss over all-gathered features, gradients
/// averaged by allreduce, rank 0 alone writing; exact resume; a failing rank ending the job.
final class DataParallelTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let binary = root.appendingPathComponent(".build/release/swiftclip").path
    var dir: URL!

    override func setUpWithError() throws {
        // make test reruns CLIPTrainingTests with the kernels capped (SWIFTCLIP_ISA); the MPI layer
        // does not depend on the kernel level, and the single-process parity runs at every level.
        if ProcessInfo.processInfo.environment["SWIFTCLIP_ISA"] != nil { throw XCTSkip("runs once, at the best kernel level") }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/mpirun") else {
            if ProcessInfo.processInfo.environment["CI"] == "1" { XCTFail("mpirun is missing: scripts/setup.sh installs openmpi-bin") }
            throw XCTSkip("Open MPI's mpirun is not installed (apt-get install openmpi-bin libopenmpi-dev)")
        }
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("swiftclip-mpi-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { if let dir { try? FileManager.default.removeItem(at: dir) } }

    /// Runs a command (with a deadline: a hung collective fails the test instead of hanging it).
    @discardableResult
    func run(_ arguments: [String], expectSuccess: Bool = true, seconds: Double = 120) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = arguments
        p.currentDirectoryURL = dir
        var env = ProcessInfo.processInfo.environment
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        env["SWIFTCLIP_VOCAB"] = Self.root.appendingPathComponent("assets/bpe_simple_vocab_16e6.txt.gz").path
        p.environment = env
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        let collected = OutputBox()
        out.fileHandleForReading.readabilityHandler = { h in collected.append(h.availableData) }
        try p.run()
        let deadline = Date().addingTimeInterval(seconds)
        while p.isRunning && Date() < deadline { usleep(20_000) }
        if p.isRunning { p.terminate(); p.waitUntilExit(); XCTFail("timed out after \(seconds) s: \(arguments.joined(separator: " "))") }
        p.waitUntilExit()
        out.fileHandleForReading.readabilityHandler = nil
        collected.append(out.fileHandleForReading.readDataToEndOfFile())
        let text = collected.text
        if expectSuccess { XCTAssertEqual(p.terminationStatus, 0, "\(arguments.joined(separator: " "))\n\(text)") }
        return (p.terminationStatus, text)
    }

    final class OutputBox: @unchecked Sendable {
        private let lock = NSLock()
        private var data = Data()
        func append(_ d: Data) { lock.lock(); data.append(d); lock.unlock() }
        var text: String { lock.lock(); defer { lock.unlock() }; return String(decoding: data, as: UTF8.self) }
    }

    static let mpirun = ["mpirun", "-np", "2", "--oversubscribe", "--bind-to", "none"]

    /// The tiny ConvNeXt-V2 CLIP of TrainingRunTests on 24 synthetic samples: 3 steps per epoch at global batch 8.
    func train(_ name: String, ranks: Int, _ extra: [String] = [], epochs: Int = 1) throws {
        let args = [binary, "train", "--model", TrainingRunTests.config.path, "--dataset-type", "synthetic", "--train-num-samples", "24",
                    "--batch-size", "\(8 / ranks)", "--epochs", "\(epochs)", "--lr", "1e-3", "--eps", "1e-6", "--warmup", "2", "--seed", "5",
                    "--workers", "1", "--threads", "1", "--logs", dir.path, "--name", name, "--log-every-n-steps", "1"] + extra
        try run((ranks > 1 ? Self.mpirun : []) + args)
    }

    func weights(_ name: String, epoch: Int = 1) throws -> [(String, [Float])] {
        let file = try SafetensorsFile.read(dir.appendingPathComponent("\(name)/checkpoints/epoch_\(epoch).safetensors"))
        return try file.tensors().sorted { $0.key < $1.key }.map { ($0.key, $0.value.scalars) }
    }

    func steps(_ name: String, _ field: String) throws -> [Double] {
        try String(contentsOf: dir.appendingPathComponent("\(name)/steps.jsonl"), encoding: .utf8).split(separator: "\n")
            .map { (try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Double])[field]! }
    }
    func losses(_ name: String) throws -> [Double] { try steps(name, "loss") }

    func testTwoRanksMatchOneProcessWithTheGlobalBatch() throws {
        // --grad-clip-norm far above the norm: nothing is clipped, and steps.jsonl records the
        // gradient's norm after the allreduce, before the first update.
        let clip = ["--grad-clip-norm", "1000"]
        try train("single", ranks: 1, clip)
        let singleNorm = try steps("single", "grad_norm")[0]
        let single = try weights("single"), singleLoss = try losses("single")
        XCTAssertEqual(singleLoss.count, 3)
        var rounding = 0.0
        for (mode, flags) in [("gather", ["--gather-with-grad"]), ("local", ["--gather-with-grad", "--local-loss"])] {
            try train(mode, ranks: 2, flags + clip)
            XCTAssertEqual(try steps(mode, "grad_norm")[0], singleNorm, accuracy: 1e-5 * singleNorm, "\(mode): the first step's gradient")
            let w = try weights(mode), l = try losses(mode)
            XCTAssertEqual(l.count, 3, mode)
            for (a, b) in zip(l, singleLoss) { XCTAssertEqual(a, b, accuracy: 1e-5 * abs(b), "\(mode): loss per step") }
            XCTAssertEqual(w.map(\.0), single.map(\.0))
            let error = relativeError(w.flatMap(\.1), single.flatMap(\.1))
            print("mpirun -np 2 \(flags.joined(separator: " ")): losses \(l) against \(singleLoss); relative error of the weights after 3 steps \(error)")
            XCTAssertLessThanOrEqual(error, 1e-5, "\(mode): weights after 3 steps")
            rounding = max(rounding, error)
            // Rank 0 alone wrote: one log line per step, not two.
            let log = try String(contentsOf: dir.appendingPathComponent("\(mode)/out.log"), encoding: .utf8)
            XCTAssertEqual(log.components(separatedBy: "Train Epoch:").count - 1, 3, mode)
            let params = try String(contentsOf: dir.appendingPathComponent("\(mode)/params.txt"), encoding: .utf8)
            XCTAssertTrue(params.contains("world_size: 2") && params.contains("gather_with_grad: true"), params)
        }
        // open_clip's default (features gathered without gradient): the same loss at the first step,
        // but the towers' gradients are 1/W of the single process's (logit_scale's is whole), so
        // AdamW's ε weighs differently and the weights part ways by far more than rounding does.
        try train("plain", ranks: 2, clip)
        let plain = try losses("plain")
        XCTAssertEqual(plain[0], singleLoss[0], accuracy: 1e-6 * singleLoss[0])
        let plainNorm = try steps("plain", "grad_norm")[0]
        XCTAssertTrue(plainNorm < 0.9 * singleNorm && plainNorm >= 0.5 * singleNorm - 1e-9, "towers' gradients halved: \(plainNorm) against \(singleNorm)")
        let apart = relativeError(try weights("plain").flatMap(\.1), single.flatMap(\.1))
        print("mpirun -np 2 without --gather-with-grad: relative error of the weights after 3 steps \(apart)")
        XCTAssertGreaterThan(apart, 10 * rounding)
    }

    func testResumeWithTheSameWorldSizeIsBitExact() throws {
        let flags = ["--gather-with-grad", "--lr-scheduler", "const"]
        try train("straight", ranks: 2, flags, epochs: 2)
        try train("resumed", ranks: 2, flags, epochs: 1)
        try train("resumed", ranks: 2, flags + ["--resume", "latest"], epochs: 2)
        let a = try weights("straight", epoch: 2), b = try weights("resumed", epoch: 2)
        XCTAssertEqual(a.map(\.0), b.map(\.0))
        for (x, y) in zip(a, b) { XCTAssertEqual(x.1, y.1, "\(x.0) differs after resume") }
        let state = try XCTUnwrap(Checkpoint.state(of: dir.appendingPathComponent("resumed/checkpoints/epoch_2.safetensors")))
        XCTAssertEqual(state.rankRNG?.count, 2)
    }

    func testWebdatasetShardsAcrossRanksAndAFailingRankEndsTheJob() throws {
        // make-shards from a CSV, then two ranks on the brace-expanded shard list.
        try run([binary, "make-synthetic", "--samples", "16", "--val-samples", "2", "--image-size", "32", "--output", "data"])
        let made = try run([binary, "make-shards", "--train-data", "data/train.csv", "--csv-caption-key", "caption",
                            "--output", "shards", "--samples-per-shard", "4"]).output
        XCTAssertTrue(made.contains("16 samples in 4 shard(s)"), made)
        let common = [binary, "train", "--model", TrainingRunTests.config.path, "--batch-size", "4", "--lr", "1e-3", "--warmup", "1",
                      "--workers", "1", "--threads", "1", "--logs", dir.path, "--name", "wds", "--log-every-n-steps", "1"]
        try run(Self.mpirun + common + ["--dataset-type", "webdataset", "--train-data", "shards/{00000..00003}.tar", "--epochs", "1"])
        let checkpoint = dir.appendingPathComponent("wds/checkpoints/epoch_1.safetensors")
        let before = try Data(contentsOf: checkpoint)
        let log = try String(contentsOf: dir.appendingPathComponent("wds/out.log"), encoding: .utf8)
        XCTAssertTrue(log.contains("Train Epoch: 0 [16/16 (100%)]") && log.contains("4 webdataset shard(s)"), log)

        // One rank's shard holds nothing readable: that rank fails, the job ends (no hang), the
        // message names the shard, and the last checkpoint is untouched.
        try Data(count: 1024).write(to: dir.appendingPathComponent("shards/empty.tar"))
        let failed = try run(Self.mpirun + common + ["--dataset-type", "webdataset", "--train-data", "shards/00000.tar::shards/empty.tar",
                                                     "--train-num-samples", "8", "--epochs", "2", "--resume", "latest"],
                             expectSuccess: false, seconds: 60)
        XCTAssertNotEqual(failed.status, 0)
        XCTAssertTrue(failed.output.contains("empty.tar") && failed.output.contains("no readable webdataset samples"), failed.output)
        XCTAssertTrue(failed.output.contains("of 2 failed; ending the MPI job"), failed.output)
        XCTAssertEqual(try Data(contentsOf: checkpoint), before)
        XCTAssertNotNil(try Checkpoint.state(of: checkpoint))
    }
}
