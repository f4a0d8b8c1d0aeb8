import CLIPData
import CLIPDistributed
import CLIPEngine
import CLIPEvaluation
import CLIPModels
import CLIPNN
import CLIPTokenizer
import Foundation

/// Why a run stopped early. Every case names what went wrong.
public enum TrainingError: Error, CustomStringConvertible {
    case experimentExists(String)
    case nonFiniteLoss(epoch: Int, step: Int, loss: Double, lastCheckpoint: String?)
    case interrupted(checkpoint: String)
    case badResume(String)
    case badOption(String)

    public var description: String {
        switch self {
        case .experimentExists(let path):
            return "experiment already exists at \(path); use --name to start a new one or --resume to continue it"
        case let .nonFiniteLoss(epoch, step, loss, last):
            return "the loss became \(loss) at step \(step) (epoch \(epoch)): stopped without saving; "
                + (last.map { "the last good checkpoint is \($0)" } ?? "no checkpoint was written yet")
                + " (try a lower --lr, --grad-clip-norm, or a longer --warmup)"
        case .interrupted(let checkpoint): return "interrupted: state saved to \(checkpoint) (continue with --resume latest)"
        case .badResume(let m): return "cannot resume: \(m)"
        case .badOption(let m): return m
        }
    }
}

/// What `swiftclip train` takes: open_clip_train.main's arguments, same names and defaults.
public struct TrainingOptions: Sendable {
    public enum DatasetType: String, Sendable { case csv, synthetic, webdataset }
    public enum Scheduler: String, Sendable { case cosine, const, constCooldown = "const-cooldown" }

    public var model: String
    public var pretrained: URL?
    /// timm ImageNet weights of the image trunk (`--pretrained-image FILE`), applied after `pretrained`.
    public var pretrainedImage: URL?
    public var trainData: URL?
    public var valData: URL?
    public var datasetType: DatasetType = .csv
    public var csvSeparator = "\t", csvImgKey = "filepath", csvCaptionKey = "title"
    public var batchSize = 64, epochs = 32
    /// nil: open_clip_train's per-model default (`AdamW.Settings.openCLIPDefaults`).
    public var lr: Double?, beta1: Double?, beta2: Double?, eps: Double?
    public var wd = 0.2
    public var warmup = 10_000
    public var lrScheduler: Scheduler = .cosine
    public var lrCooldownEnd = 0.0, lrCooldownPower = 1.0
    public var epochsCooldown: Int?
    public var gradClipNorm: Double?
    public var accumFreq = 1
    public var gradCheckpointing = false
    public var lockImage = false, lockText = false
    public var augScale = (0.9, 1.0), augRatio = (3.0 / 4.0, 4.0 / 3.0)
    public var seed: UInt64 = 0
    public var workers = 4
    public var logs = URL(fileURLWithPath: "./logs")
    public var name: String?
    public var saveFrequency = 1
    public var saveMostRecent = false, deletePreviousCheckpoint = false
    /// A checkpoint path, or "latest" (the furthest checkpoint of this run's folder).
    public var resume: String?
    public var valFrequency = 1, zeroshotFrequency = 2
    public var logEveryNSteps = 100
    /// Samples of the synthetic set (default 100); a cap on samples per epoch for CSV data; the
    /// samples of an epoch for webdataset (default: the shards' sizes.json).
    public var trainNumSamples: Int?
    /// Webdataset: draw shards with replacement (`--dataset-resampled`).
    public var datasetResampled = false
    /// Data parallel: open_clip's `--gather-with-grad` and `--local-loss`.
    public var gatherWithGrad = false, localLoss = false
    /// `.bf16` is open_clip's `--precision amp_bf16`: the forward GEMMs in bf16 (weights repacked
    /// from the fp32 master copy after every step, activations rounded where a GEMM reads them);
    /// master weights, optimizer state, loss and the backward pass stay fp32 (docs/precision.md).
    public var precision: Precision = .fp32
    /// Flags beyond these options (zero-shot set, precision, …) for params.txt and the checkpoints.
    public var arguments: [String: String] = [:]

    public init(model: String) { self.model = model }

    /// Every argument by open_clip_train's attribute name (params.txt, checkpoints' state).
    public var record: [String: String] {
        let opt = { (v: Any?) in v.map { "\($0)" } ?? "None" }
        var r: [String: String] = [
            "model": model, "pretrained": opt(pretrained?.path), "pretrained_image": opt(pretrainedImage?.path), "train_data": opt(trainData?.path), "val_data": opt(valData?.path),
            "dataset_type": datasetType.rawValue, "csv_separator": csvSeparator, "csv_img_key": csvImgKey,
            "csv_caption_key": csvCaptionKey, "batch_size": "\(batchSize)", "epochs": "\(epochs)",
            "epochs_cooldown": opt(epochsCooldown), "lr": opt(lr), "beta1": opt(beta1), "beta2": opt(beta2), "eps": opt(eps),
            "wd": "\(wd)", "warmup": "\(warmup)", "lr_scheduler": lrScheduler.rawValue, "lr_cooldown_end": "\(lrCooldownEnd)",
            "lr_cooldown_power": "\(lrCooldownPower)", "grad_clip_norm": opt(gradClipNorm), "accum_freq": "\(accumFreq)", "grad_checkpointing": "\(gradCheckpointing)",
            "lock_image": "\(lockImage)", "lock_text": "\(lockText)",
            "aug_cfg": "{'scale': (\(augScale.0), \(augScale.1)), 'ratio': (\(augRatio.0), \(augRatio.1))}",
            "seed": "\(seed)", "workers": "\(workers)", "logs": logs.path, "save_frequency": "\(saveFrequency)",
            "save_most_recent": "\(saveMostRecent)", "delete_previous_checkpoint": "\(deletePreviousCheckpoint)",
            "resume": opt(resume), "val_frequency": "\(valFrequency)", "zeroshot_frequency": "\(zeroshotFrequency)",
            "log_every_n_steps": "\(logEveryNSteps)", "train_num_samples": opt(trainNumSamples),
            "dataset_resampled": "\(datasetResampled)", "gather_with_grad": "\(gatherWithGrad)", "local_loss": "\(localLoss)",
        ]
        for (k, v) in arguments { r[k] = v }
        return r
    }
}

/// Results of evaluating after an epoch (what results.jsonl gets).
public typealias EvaluationMetrics = [String: Double]

/// open_clip_train.main's loop: per epoch, batches from the loader, one optimiser step per
/// `accumFreq` batches, a log line every `logEveryNSteps` steps, evaluation (zero-shot and
/// validation) by their frequencies, checkpoints by `saveFrequency`. Files under LOGS/NAME/:
/// `out.log`, `params.txt`, `steps.jsonl` (every step: loss, lr, logit scale, samples/s),
/// `checkpoints/epoch_K.safetensors` (+ `.optimizer.safetensors`), `checkpoints/results.jsonl`.
public final class TrainingRun {
    public let options: TrainingOptions
    public let model: CLIPModel
    public let trainer: CLIPTrainer
    public let tokenizer: CLIPTokenizer
    /// The training pairs (CSV, synthetic); nil for webdataset, which streams `shards`.
    public let source: (any CaptionedImageSource)?
    public let shards: [String]
    /// The data-parallel job (`Communicator.single` for one process). Rank 0 alone writes files.
    public let communicator: Communicator
    public let transform: TrainTransform
    public let directory: URL
    static let stepsLogName = "steps.jsonl"
    public var checkpoints: URL { directory.appendingPathComponent("checkpoints") }
    /// Zero-shot set evaluated every `zeroshotFrequency` epochs.
    public let zeroShot: (dataset: LabeledImageDataset, templates: [String])?
    public let validation: CSVPairs?
    public let batchesPerEpoch: Int, stepsPerEpoch: Int, totalSteps: Int
    /// Called between steps; true stops the run with a checkpoint (Ctrl-C).
    public var shouldStop: () -> Bool = { false }
    /// Log lines also go here (stderr in the CLI).
    public var echo: (String) -> Void = { _ in }
    /// A live status line (on a terminal), replaced at every step.
    public var status: ((String) -> Void)?

    private(set) var state: TrainingState
    private var lastCheckpoint: String?
    private var pendingSave: BackgroundSave?
    private let log: FileHandle?
    private let stepsLog: FileHandle?
    public private(set) var skippedSamples = 0
    /// Where the run's time went (`RunTimes`), logged as its last line.
    private var times = RunTimes()

    public init(options o: TrainingOptions, tokenizer: CLIPTokenizer, zeroShot: (dataset: LabeledImageDataset, templates: [String])? = nil,
                communicator: Communicator = .single) throws {
        guard o.batchSize >= 1, o.epochs >= 1, o.accumFreq >= 1 else {
            throw TrainingError.badOption("--batch-size, --epochs and --accum-freq must be at least 1")
        }
        if communicator.size > 1 && o.accumFreq > 1 {
            throw TrainingError.badOption("--accum-freq above 1 is not implemented for data-parallel (MPI) training yet")
        }
        let setUpStart = RunTimes.now()
        times.beforeSetUp = RunTimes.processAge()
        options = o
        self.communicator = communicator
        self.tokenizer = tokenizer
        self.zeroShot = zeroShot
        let fm = FileManager.default

        // The run's folder: a new one, unless resuming it (rank 0's name and checks; only rank 0 writes).
        let name = try communicator.broadcast(o.name ?? Self.defaultName(o))
        directory = o.logs.appendingPathComponent(name)
        let resuming = o.resume != nil
        if o.resume == "latest" && o.name == nil {
            throw TrainingError.badOption("--resume latest needs --name (the run to continue)")
        }
        if communicator.isRoot {
            if fm.fileExists(atPath: directory.path) && !resuming && o.name != nil {
                throw TrainingError.experimentExists(directory.path)
            }
            try fm.createDirectory(at: directory.appendingPathComponent("checkpoints"), withIntermediateDirectories: true)
            log = try Self.appending(directory.appendingPathComponent("out.log"))
            stepsLog = try Self.appending(directory.appendingPathComponent(Self.stepsLogName))
        } else {
            log = nil
            stepsLog = nil
        }

        // Model: random from the seed, or --pretrained (open_clip weights or one of our checkpoints).
        model = try CLIPModel(model: o.model, weightsURL: o.pretrained, seed: o.seed, precision: o.precision)
        // open_clip applies the image tower's own weights after the full checkpoint (factory.py).
        var trunkTensors: Int?
        if let trunk = o.pretrainedImage { trunkTensors = try model.loadPretrainedImageTrunk(from: trunk) }
        let imageSize = model.config.vision.imageSize
        // open_clip normalises training crops with the model's preprocess_cfg too (image_transform_v2).
        let eval = Preprocessor(model: model.config)
        transform = try TrainTransform(imageSize: imageSize, scale: o.augScale, ratio: o.augRatio, mean: eval.mean, std: eval.std)

        let world = communicator.size
        switch o.datasetType {
        case .synthetic:
            source = try SyntheticShapes(seed: o.seed, count: o.trainNumSamples ?? 100, imageSize: imageSize)
            shards = []
        case .csv:
            guard let train = o.trainData else { throw TrainingError.badOption("--train-data is required with --dataset-type csv") }
            source = try CSVPairs(file: train, imageKey: o.csvImgKey, captionKey: o.csvCaptionKey, separator: o.csvSeparator)
            shards = []
        case .webdataset:
            guard let train = o.trainData else { throw TrainingError.badOption("--train-data is required with --dataset-type webdataset") }
            source = nil
            shards = try ShardList.existingShards(train.relativePath)
        }
        validation = try o.valData.map { try CSVPairs(file: $0, imageKey: o.csvImgKey, captionKey: o.csvCaptionKey, separator: o.csvSeparator) }
        let globalBatch = o.batchSize * world
        let samples: Int
        if let source {
            samples = min(o.trainNumSamples ?? source.count, source.count)
            batchesPerEpoch = samples / globalBatch
        } else {
            guard let n = try o.trainNumSamples ?? ShardList.sampleCount(shards) else {
                throw TrainingError.badOption("--dataset-type webdataset needs --train-num-samples (no sizes.json beside the shards lists them all)")
            }
            if !o.datasetResampled && shards.count < o.workers * world {
                throw TrainingError.badOption("\(shards.count) shard(s) for --workers \(o.workers) × \(world) rank(s): each loader worker needs at least one "
                                              + "(use fewer --workers, more shards, or --dataset-resampled)")
            }
            samples = n
            batchesPerEpoch = WebDatasetLoader.batchesPerEpoch(samples: n, batchSize: o.batchSize, worldSize: world, workers: o.workers)
        }
        guard batchesPerEpoch >= o.accumFreq, batchesPerEpoch > 0 else {
            throw TrainingError.badOption("\(samples) training samples make \(batchesPerEpoch) batch(es) of \(o.batchSize)"
                + (world > 1 ? " × \(world) ranks" : "") + " per epoch (the last partial batch is dropped), fewer than --accum-freq \(o.accumFreq)")
        }
        stepsPerEpoch = batchesPerEpoch / o.accumFreq
        totalSteps = stepsPerEpoch * o.epochs

        var settings = AdamW.Settings.openCLIPDefaults(modelName: o.model)
        if let lr = o.lr { settings.lr = lr }
        if let b = o.beta1 { settings.beta1 = b }
        if let b = o.beta2 { settings.beta2 = b }
        if let e = o.eps { settings.eps = e }
        settings.weightDecay = o.wd
        let schedule: LearningRateSchedule
        switch o.lrScheduler {
        case .cosine: schedule = .cosine(baseLR: settings.lr, warmup: o.warmup, steps: totalSteps)
        case .const: schedule = .const(baseLR: settings.lr, warmup: o.warmup)
        case .constCooldown:
            guard let ec = o.epochsCooldown else { throw TrainingError.badOption("--lr-scheduler const-cooldown needs --epochs-cooldown") }
            schedule = .constCooldown(baseLR: settings.lr, warmup: o.warmup, steps: totalSteps, cooldownSteps: stepsPerEpoch * ec,
                                      power: o.lrCooldownPower, endLR: o.lrCooldownEnd)
        }
        // Each rank draws its own stochastic-depth masks; rank 0 those of a single process.
        trainer = CLIPTrainer(model: model, settings: settings, schedule: schedule, gradClipNorm: o.gradClipNorm,
                              seed: communicator.rank == 0 ? o.seed : BatchLoader.mix(o.seed, UInt64(communicator.rank), 0x5241_4E4B))
        trainer.gradCheckpointing = o.gradCheckpointing
        if o.lockImage { trainer.lockImageTower() }
        if o.lockText { trainer.lockTextTower() }
        trainer.enableDataParallel(communicator: communicator, gatherWithGrad: o.gatherWithGrad, localLoss: o.localLoss)
        state = TrainingState(epoch: 0, batchesDone: 0, step: 0, rng: trainer.rng.snapshot, optimizerSteps: [:],
                              arguments: o.record, checkpointID: "")

        if let n = trunkTensors, let trunk = o.pretrainedImage {
            logLine("Loaded image trunk weights from \(trunk.path): \(n) tensors into visual.trunk (head.fc dropped).")
        }
        if let resume = o.resume { try restore(resume) }
        try broadcastParameters(model.parameters.parameters, communicator: communicator)
        if communicator.isRoot { try writeParams() }
        times.setUp = RunTimes.seconds(since: setUpStart)
    }

    static func defaultName(_ o: TrainingOptions) -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyy_MM_dd-HH_mm_ss"
        f.locale = Locale(identifier: "en_US_POSIX")
        let safeModel = o.model.replacingOccurrences(of: "/", with: "-")
        return [f.string(from: Date()), "model_\(safeModel)", "lr_\(o.lr.map { "\($0)" } ?? "default")", "b_\(o.batchSize)",
                "j_\(o.workers)", "p_fp32"].joined(separator: "-")
    }

    static func appending(_ url: URL) throws -> FileHandle {
        if !FileManager.default.fileExists(atPath: url.path) { _ = FileManager.default.createFile(atPath: url.path, contents: nil) }
        guard let h = FileHandle(forWritingAtPath: url.path) else {
            throw TrainingError.badOption("\(url.path): cannot open for writing")
        }
        h.seekToEndOfFile()
        return h
    }

    func logLine(_ line: String) {
        let f = DateFormatter()
        f.dateFormat = "yyyy-MM-dd,HH:mm:ss"
        f.locale = Locale(identifier: "en_US_POSIX")
        log?.write(Data("\(f.string(from: Date())) | INFO | \(line)\n".utf8))
        if communicator.isRoot { echo(line) }
    }

    /// params.txt as open_clip writes it: `name: value` per argument, sorted.
    func writeParams() throws {
        var args = options.record
        args["name"] = directory.lastPathComponent
        args["world_size"] = "\(communicator.size)"
        let text = args.keys.sorted().map { "\($0): \(args[$0]!)" }.joined(separator: "\n") + "\n"
        try Data(text.utf8).write(to: directory.appendingPathComponent("params.txt"))
    }

    // MARK: Resume

    /// The furthest checkpoint (by epoch, then batches) among epoch_K and epoch_latest.
    func latestCheckpoint() throws -> URL? {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: checkpoints.path)) ?? []
        var best: (URL, Int, Int)?
        for n in names where n.hasPrefix("epoch_") && n.hasSuffix(".safetensors") && !n.hasSuffix(".optimizer.safetensors") {
            let url = checkpoints.appendingPathComponent(n)
            guard let s = try? Checkpoint.state(of: url) else { continue }
            if best == nil || (s.epoch, s.batchesDone) > (best!.1, best!.2) { best = (url, s.epoch, s.batchesDone) }
        }
        return best?.0
    }

    func restore(_ resume: String) throws {
        let url: URL
        if resume == "latest" {
            // Rank 0 chooses, so that every rank resumes from the same file.
            let chosen = try communicator.broadcast(communicator.isRoot ? (try latestCheckpoint()?.path ?? "") : "")
            guard !chosen.isEmpty else {
                logLine("No latest resume checkpoint found in \(checkpoints.path).")
                return
            }
            url = URL(fileURLWithPath: chosen)
        } else {
            url = URL(fileURLWithPath: resume)
        }
        if try WeightFiles.format(of: url) == .torch {
            try restoreOpenCLIPTrain(url)
            return
        }
        guard let s = try Checkpoint.state(of: url) else {
            throw TrainingError.badResume("\(url.path) holds weights only (no training state); use --pretrained to start from it")
        }
        let weights = try SafetensorsFile.read(url)
        try model.parameters.update(weights.tensors(), strict: true, source: url.path)
        try Checkpoint.restoreOptimizer(trainer.optimizer, from: url, state: s)
        trainer.step = s.step
        let world = communicator.size
        if let ranks = s.rankRNG, ranks.count == world {
            trainer.rng = try SeededGenerator(snapshot: ranks[communicator.rank])
        } else {
            trainer.rng = try SeededGenerator(snapshot: s.rng)
            if (s.rankRNG?.count ?? 1) != world {
                logLine("Note: the checkpoint was written by \(s.rankRNG?.count ?? 1) rank(s), this run has \(world): "
                        + "data order and stochastic depth differ from a run that kept its world size.")
            }
        }
        state = s
        state.arguments = options.record
        lastCheckpoint = url.path
        logLine("Resuming from \(url.path): epoch \(s.epoch), \(s.batchesDone) batches done, step \(s.step).")
    }

    /// `--resume epoch_K.pt` written by open_clip_train (or `swiftclip convert`): weights, AdamW's
    /// state and the epoch; the step is where open_clip_train would be (K epochs of this run's
    /// steps), and the generator starts from --seed (open_clip_train keeps none).
    func restoreOpenCLIPTrain(_ url: URL) throws {
        let info = try OpenCLIPTrainCheckpoint.restore(model: model, optimizer: trainer.optimizer, from: url)
        trainer.step = info.epoch * stepsPerEpoch
        state.epoch = info.epoch
        state.batchesDone = 0
        state.step = trainer.step
        state.arguments = options.record
        lastCheckpoint = url.path
        logLine("Resuming from \(url.path) (open_clip_train): epoch \(info.epoch), step \(trainer.step); "
                + "AdamW had taken \(info.optimizerStep) step(s).")
    }

    // MARK: The loop

    /// Trains to `epochs`; returns each evaluated epoch's metrics.
    @discardableResult
    public func run() throws -> [EvaluationMetrics] {
        var results: [EvaluationMetrics] = []
        let data = source.map { "\($0.count) samples" } ?? "\(shards.count) webdataset shard(s)"
        let ranks = communicator.size > 1 ? " per rank on each of \(communicator.size) ranks" : ""
        logLine("Model \(options.model): \(model.parameterCounts.total) parameters; \(data), "
                + "\(batchesPerEpoch) batches of \(options.batchSize)\(ranks) per epoch, \(totalSteps) steps")
        trainer.beforeUpdate = { [unowned self] in try self.finishPendingSave() }
        do {
            for epoch in state.epoch..<options.epochs {
                logLine("Start epoch \(epoch)")
                try trainEpoch(epoch)
                let completed = epoch + 1
                state.epoch = completed
                state.batchesDone = 0
                let metrics = try RunTimes.measure(&times.evaluation) { try evaluate(epoch: completed) }
                if !metrics.isEmpty { results.append(metrics) }
                try saveEpochCheckpoints(completed)
            }
            try finishPendingSave()
        } catch {
            // Whatever stopped the run, a checkpoint being written is finished (or its own error reported) first.
            do { try finishPendingSave() } catch let saveError { logLine("error: \(saveError)") }
            throw error
        }
        if skippedSamples > 0 { logLine("\(skippedSamples) unreadable sample(s) were skipped (named above)") }
        defer { if communicator.isRoot { logLine(times.summary) } }
        if stepsLog != nil {
            // The whole run's curve, resumed parts included; a chart that cannot be drawn loses nothing else.
            let chart = directory.appendingPathComponent("loss.png")
            do {
                if try RunTimes.measure(&times.chart, { try LossChart.write(stepsLog: directory.appendingPathComponent(Self.stepsLogName), to: chart) }) { logLine("Loss curve: \(chart.path)") }
            } catch {
                logLine("warning: could not write the loss curve \(chart.path): \(error)")
            }
        }
        return results
    }

    func trainEpoch(_ epoch: Int) throws {
        let start = state.epoch == epoch ? state.batchesDone : 0
        let (rank, world) = (communicator.rank, communicator.size)
        let loader: any TrainingBatchSource
        if let source {
            loader = try BatchLoader(source: source, transform: transform, batchSize: options.batchSize, seed: options.seed,
                                     epoch: epoch, workers: options.workers, startBatch: start,
                                     samples: options.trainNumSamples, rank: rank, worldSize: world)
        } else {
            loader = try WebDatasetLoader(shards: shards, transform: transform, batchSize: options.batchSize, seed: options.seed,
                                          epoch: epoch, batchCount: batchesPerEpoch, workers: options.workers, rank: rank,
                                          worldSize: world, resampled: options.datasetResampled, startBatch: start)
        }
        defer { loader.cancel() }
        var batch = start
        var lossAverage = RunningMean(), timeAverage = RunningMean(), dataAverage = RunningMean()
        var tick = RunTimes.now()
        while batch + options.accumFreq <= stepsPerEpoch * options.accumFreq {
            var micro: [(images: Tensor, tokens: [[Int]])] = []
            var samples = 0
            for _ in 0..<options.accumFreq {
                guard let b = try loader.next() else { break }
                for s in b.skipped {
                    if communicator.isRoot { logLine("skipped sample: \(s.message)") } else { echo("[rank \(rank)] skipped sample: \(s.message)") }
                }
                skippedSamples += b.skipped.count
                let ids = tokenizer.tokenize(b.captions, contextLength: model.config.text.contextLength).map { $0.map(Int.init) }
                micro.append((b.images, ids))
                samples += b.images.shape[0]
            }
            let dataSeconds = RunTimes.seconds(since: tick)
            times.dataWait += dataSeconds
            guard micro.count == options.accumFreq, micro.allSatisfy({ $0.images.shape[0] >= 2 }) else {
                throw TrainingError.badOption("epoch \(epoch): too few readable samples for a batch (see the skipped samples above)")
            }
            let stepStart = RunTimes.now()
            let result = try trainer.step(microBatches: micro)
            times.steps.append(RunTimes.seconds(since: stepStart))
            batch += options.accumFreq
            guard result.loss.isFinite else {
                throw TrainingError.nonFiniteLoss(epoch: epoch, step: trainer.step - 1, loss: result.loss, lastCheckpoint: lastCheckpoint)
            }
            let stepSeconds = RunTimes.seconds(since: tick)
            tick = RunTimes.now()
            lossAverage.add(result.loss); timeAverage.add(stepSeconds); dataAverage.add(dataSeconds)
            let stepInEpoch = batch / options.accumFreq
            samples = result.samples
            let rate = Double(samples) / stepSeconds
            let scale = Foundation.exp(Double(model.logitScale))
            var record = ["epoch": Double(epoch), "step": Double(trainer.step), "loss": result.loss, "lr": result.learningRate,
                          "logit_scale": scale, "samples_per_s": rate, "data_s": dataSeconds, "step_s": stepSeconds]
            if let g = result.gradNorm { record["grad_norm"] = g }   // with --grad-clip-norm: the norm before clipping
            if let r = trainer.allreduce {
                record["allreduce_exposed_s"] = r.exposedSeconds
                record["global_batch"] = Double(samples)
            }
            writeStep(record)
            let done = stepInEpoch == stepsPerEpoch
            let remaining = Double(totalSteps - trainer.step) * timeAverage.mean
            status?(String(format: "epoch %d step %d/%d loss %.4f lr %.3g logit scale %.2f %.1f samples/s ETA %@",
                           epoch, stepInEpoch, stepsPerEpoch, result.loss, result.learningRate, scale, rate, duration(remaining)))
            if stepInEpoch % max(1, options.logEveryNSteps) == 0 || done {
                let seen = batch * options.batchSize * world, total = batchesPerEpoch * options.batchSize * world
                logLine(String(format: "Train Epoch: %d [%d/%d (%.0f%%)] Data (t): %.3f Batch (t): %.3f, %.4g/s LR: %.6f Logit Scale: %.3f Contrastive_loss: %.4f (%.4f) Loss: %.4f (%.4f)",
                               epoch, seen, total, 100 * Double(seen) / Double(total), dataAverage.mean, timeAverage.mean,
                               Double(options.batchSize * options.accumFreq * world) / timeAverage.mean, result.learningRate, scale,
                               result.loss, lossAverage.mean, result.loss, lossAverage.mean))
            }
            state.batchesDone = batch
            // Every rank stops at the same step when any was asked to (Ctrl-C reaches them one by one).
            let stop = try communicator.allreduceMax([shouldStop() ? 1 : 0])[0] != 0
            if stop && !done {
                let url = checkpoints.appendingPathComponent("epoch_latest.safetensors")
                try saveCheckpoint(to: url)
                throw TrainingError.interrupted(checkpoint: url.path)
            }
        }
    }

    func duration(_ s: Double) -> String {
        guard s.isFinite else { return "?" }
        let t = Int(s.rounded())
        return t >= 3600 ? String(format: "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60) : String(format: "%d:%02d", t / 60, t % 60)
    }

    func writeStep(_ values: [String: Double]) {
        let data = (try? JSONSerialization.data(withJSONObject: values, options: [.sortedKeys])) ?? Data()
        stepsLog?.write(data + Data("\n".utf8))
    }

    // MARK: Checkpoints

    /// Writes a checkpoint of the model, optimizer and run state as they are now. `inBackground`:
    /// on another thread, while the next step's forward and backward passes run (they only read
    /// the weights); the trainer's `beforeUpdate` waits for it before the optimizer changes the
    /// weights or moments, and so does every later save and the end of the run. (An epoch's
    /// checkpoint of convnext_v2_tiny is 1.1 GB with AdamW's moments, fsynced: 1.0–2.3 s here.)
    func saveCheckpoint(to url: URL, inBackground: Bool = false) throws {
        try finishPendingSave()
        state.step = trainer.step
        state.rng = trainer.rng.snapshot
        if communicator.size > 1 {
            // Every rank's generator, so that a resume with the same world size is exact.
            let snap = trainer.rng.snapshot
            let words = try communicator.allgather(SIMD2<UInt64>(snap[0], snap[1]))
            state.rankRNG = words.map { [$0[0], $0[1]] }
        }
        lastCheckpoint = url.path
        guard communicator.isRoot else { return }
        state.checkpointID = UUID().uuidString
        let checkpoint = try Checkpoint.prepare(model: model, optimizer: trainer.optimizer, state: state, to: url)
        if inBackground {
            let save = BackgroundSave(checkpoint)
            pendingSave = save
            Thread.detachNewThread { save.run() }
        } else {
            try RunTimes.measure(&times.checkpoints) { try checkpoint.write() }
            logLine("Saved checkpoint \(url.path)")
        }
    }

    /// Waits for a checkpoint being written in the background; throws its error (the file it was
    /// to replace is untouched: writes are atomic).
    func finishPendingSave() throws {
        guard let save = pendingSave else { return }
        pendingSave = nil
        RunTimes.measure(&times.checkpoints) { save.done.wait() }
        if let error = save.error { throw error }
        logLine("Saved checkpoint \(save.checkpoint.url.path)")
    }

    final class BackgroundSave: @unchecked Sendable {
        let checkpoint: PendingCheckpoint
        let done = DispatchSemaphore(value: 0)
        var error: Error?
        init(_ checkpoint: PendingCheckpoint) { self.checkpoint = checkpoint }
        func run() {
            do { try checkpoint.write() } catch { self.error = error }
            done.signal()
        }
    }

    /// open_clip's rules: epoch_K at the last epoch and every `saveFrequency` epochs; the
    /// previous epoch's file deleted with --delete-previous-checkpoint; epoch_latest with
    /// --save-most-recent (an interruption's epoch_latest is replaced once an epoch ends).
    func saveEpochCheckpoints(_ completed: Int) throws {
        // Written while the next epoch starts, unless this was the last.
        let more = completed < options.epochs
        if completed == options.epochs || (options.saveFrequency > 0 && completed % options.saveFrequency == 0) {
            try saveCheckpoint(to: checkpoints.appendingPathComponent("epoch_\(completed).safetensors"), inBackground: more)
        }
        if options.deletePreviousCheckpoint && communicator.isRoot {
            Checkpoint.delete(checkpoints.appendingPathComponent("epoch_\(completed - 1).safetensors"))
        }
        let latest = checkpoints.appendingPathComponent("epoch_latest.safetensors")
        if options.saveMostRecent {
            try saveCheckpoint(to: latest, inBackground: more)
        } else if communicator.isRoot && FileManager.default.fileExists(atPath: latest.path) {
            Checkpoint.delete(latest)
        }
    }

    // MARK: Evaluation

    /// open_clip_train's `evaluate` after `epoch` completed epochs: zero-shot top-1/top-5 every
    /// `zeroshotFrequency` epochs and at the last; validation loss and retrieval every
    /// `valFrequency` epochs and at the last. Appends to checkpoints/results.jsonl.
    public func evaluate(epoch: Int) throws -> EvaluationMetrics {
        var metrics: EvaluationMetrics = [:]
        guard communicator.isRoot else { return metrics }   // open_clip evaluates on the master rank only
        let last = epoch == options.epochs
        if let z = zeroShot, options.zeroshotFrequency > 0, epoch % options.zeroshotFrequency == 0 || last {
            let r = try ZeroShotEvaluation.evaluate(model: model, tokenizer: tokenizer, dataset: z.dataset, templates: z.templates,
                                                    batchSize: options.batchSize)
            metrics["zeroshot-val-top1"] = r.top1
            metrics["zeroshot-val-top5"] = r.top5
        }
        if let val = validation, options.valFrequency > 0, epoch % options.valFrequency == 0 || last {
            for (k, v) in try validationMetrics(val) { metrics[k] = v }
            metrics["epoch"] = Double(epoch)
        }
        guard !metrics.isEmpty else { return metrics }
        logLine("Eval Epoch: \(epoch) " + metrics.keys.sorted().map { String(format: "%@: %.4f", $0, metrics[$0]!) }.joined(separator: "\t"))
        let data = try JSONSerialization.data(withJSONObject: metrics, options: [.sortedKeys])
        let results = try Self.appending(checkpoints.appendingPathComponent("results.jsonl"))
        results.write(data + Data("\n".utf8))
        try results.close()
        return metrics
    }

    /// `clip_val_loss` (ClipLoss per batch of `batchSize`, weighted by batch size) and
    /// get_clip_metrics over all pairs, with the eval transform.
    func validationMetrics(_ pairs: CSVPairs) throws -> [String: Double] {
        let preprocessor = Preprocessor(model: model.config)
        var images: [Tensor] = [], texts: [Tensor] = []
        var cumulative = 0.0
        for start in stride(from: 0, to: pairs.count, by: options.batchSize) {
            let end = min(pairs.count, start + options.batchSize)
            let batch = try preprocessor.batch(count: end - start) { try ImageDecoder.decodeImage(contentsOf: pairs.images[start + $0]) }
            let ids = tokenizer.tokenize(Array(pairs.captions[start..<end]), contextLength: model.config.text.contextLength)
            let i = try model.encodeImagePerThread(batch, normalize: true), t = try model.encodeText(ids.map { $0.map(Int.init) }, normalize: true)
            cumulative += try ClipLoss.compute(image: i, text: t, logitScale: model.logitScale).loss * Double(end - start)
            images.append(i); texts.append(t)
        }
        var out = try Retrieval.metrics(imageFeatures: Tensor.concatenate(rows: images), textFeatures: Tensor.concatenate(rows: texts),
                                        logitScale: Foundation.exp(model.logitScale)).openCLIPNames
        out["clip_val_loss"] = cumulative / Double(pairs.count)
        out["num_samples"] = Double(pairs.count)
        return out
    }
}

struct RunningMean {
    private(set) var mean = 0.0
    private var n = 0
    mutating func add(_ x: Double) { n += 1; mean += (x - mean) / Double(n) }
}
