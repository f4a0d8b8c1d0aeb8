import ArgumentParser
import CLIPData
import CLIPDistributed
import CLIPEngine
import CLIPEvaluation
import CLIPTraining
import Dispatch
import Foundation

/// `swiftclip train`: open_clip_train.main's flags, names and defaults (docs/training.md maps each).
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Contrastive training as open_clip_train.main does it, on CSV or synthetic data, with checkpoints, exact resume, logs and evaluation.",
        discussion: "Flags keep open_clip_train's names, defaults and meaning; docs/training.md maps every one.")

    @Option(help: "Built-in model name or open_clip JSON config.") var model = "RN50"
    @Option(help: "Start from these weights: open_clip safetensors, a torch .bin/.pt/.pth, or a swiftclip checkpoint.") var pretrained: String?
    @Option(name: .customLong("pretrained-image"),
            help: "timm ImageNet weights of the image trunk (safetensors or torch .bin) loaded into visual.trunk, head.fc dropped (open_clip's TimmModel(pretrained=True)).")
    var pretrainedImage: String?
    @Option(name: .customLong("train-data"), help: "Training CSV (open_clip's CsvDataset format), or webdataset shards: 'shards/{00000..00099}.tar', sources joined by '::'.")
    var trainData: String?
    @Option(name: .customLong("val-data"), help: "Validation CSV: loss and retrieval metrics.") var valData: String?
    @Option(name: .customLong("dataset-type"), help: "csv, webdataset (tar shards), synthetic (coloured shapes, in memory), or auto (webdataset for .tar, else csv).")
    var datasetType = "auto"
    @Flag(name: .customLong("dataset-resampled"), help: "Webdataset: draw shards with replacement (open_clip's --dataset-resampled).")
    var datasetResampled = false
    @Flag(name: .customLong("gather-with-grad"), help: "Data parallel: let the loss's gradient flow through the all-gathered features of every rank.")
    var gatherWithGrad = false
    @Flag(name: .customLong("local-loss"), help: "Data parallel: each rank's loss over its own rows against the global batch.")
    var localLoss = false
    @Option(name: .customLong("csv-separator"), help: "CSV field separator (default: tab).") var csvSeparator = "\t"
    @Option(name: .customLong("csv-img-key")) var csvImgKey = "filepath"
    @Option(name: .customLong("csv-caption-key")) var csvCaptionKey = "title"
    @Option(name: .customLong("batch-size")) var batchSize = 64
    @Option var epochs = 32
    @Option(name: .customLong("epochs-cooldown"), help: "Epochs of cooldown (const-cooldown schedule).") var epochsCooldown: Int?
    @Option(help: "Learning rate (default: open_clip's per-model default, 5e-4).") var lr: Double?
    @Option var beta1: Double?
    @Option var beta2: Double?
    @Option var eps: Double?
    @Option var wd = 0.2
    @Option(help: "Warmup steps.") var warmup = 10_000
    @Option(name: .customLong("lr-scheduler"), help: "cosine, const or const-cooldown.") var lrScheduler = "cosine"
    @Option(name: .customLong("lr-cooldown-end")) var lrCooldownEnd = 0.0
    @Option(name: .customLong("lr-cooldown-power")) var lrCooldownPower = 1.0
    @Option(name: .customLong("grad-clip-norm")) var gradClipNorm: Double?
    @Option(name: .customLong("accum-freq")) var accumFreq = 1
    @Flag(name: .customLong("grad-checkpointing")) var gradCheckpointing = false
    @Flag(name: .customLong("lock-image")) var lockImage = false
    @Flag(name: .customLong("lock-text")) var lockText = false
    @Option(name: .customLong("aug-cfg"), parsing: .upToNextOption, help: "key=value pairs: scale='(0.9,1.0)' ratio='(0.75,1.3333)'.")
    var augCfg: [String] = []
    @Option var seed: UInt64 = 0
    @Option(help: "Threads decoding and augmenting images.") var workers = 4
    @Option(help: "Threads for the kernels (default: all cores).") var threads: Int?
    @Option(help: "Where runs are written.") var logs = "./logs/"
    @Option(help: "Run name (default: date, model, lr, batch, workers, precision).") var name: String?
    @Option(name: .customLong("save-frequency")) var saveFrequency = 1
    @Flag(name: .customLong("save-most-recent")) var saveMostRecent = false
    @Flag(name: .customLong("delete-previous-checkpoint")) var deletePreviousCheckpoint = false
    @Option(help: "A checkpoint to continue from, or 'latest' (with --name).") var resume: String?
    @Option(name: .customLong("val-frequency")) var valFrequency = 1
    @Option(name: .customLong("zeroshot-frequency")) var zeroshotFrequency = 2
    @Option(name: .customLong("log-every-n-steps")) var logEveryNSteps = 100
    @Option(name: .customLong("train-num-samples"), help: "Samples of the synthetic set (default 100); a cap per epoch for CSV; samples per epoch for webdataset (default: sizes.json).")
    var trainNumSamples: Int?
    @Option(help: "fp32, or amp_bf16: bf16 forward GEMMs, fp32 master weights, optimizer state, loss and backward (docs/precision.md).")
    var precision = "fp32"
    @Option(name: .customLong("zeroshot-data"), help: "Zero-shot set during training: a folder (one sub-folder per class) or CIFAR files.")
    var zeroshotData: String?
    @Option(name: .customLong("zeroshot-dataset"), help: "folder, cifar10 or cifar100.") var zeroshotDataset = "folder"
    @Option(name: .customLong("zeroshot-classnames"), help: "Class names, one per line.") var zeroshotClassnames: String?
    @Option(name: .customLong("zeroshot-templates"), help: "Prompt templates, one per line ('{}' is the class).") var zeroshotTemplates: String?
    @OptionGroup var vocabulary: VocabularyOptions
    @Argument(parsing: .allUnrecognized, help: .hidden) var unrecognized: [String] = []

    /// open_clip_train flags swiftclip train does not implement: named in the error, never ignored.
    static let unsupported: [String: String] = [
        "--imagenet-val": "use --zeroshot-data", "--imagenet-v2": "use --zeroshot-data",
        "--train-data-upsampling-factors": "not implemented yet: give each source its share of shards instead",
        "--val-num-samples": "validation reads a CSV (--val-data)",
    ]
    static let openCLIPFlags: Set<String> = [
        "--cache-dir", "--log-local", "--momentum", "--opt", "--use-bn-sync", "--skip-scheduler",
        "--lock-image-unlocked-groups", "--lock-image-freeze-bn-stats", "--force-quick-gelu", "--force-patch-dropout",
        "--force-custom-text", "--torchscript", "--torchcompile", "--trace", "--device", "--dist-url", "--dist-backend",
        "--report-to", "--wandb-notes", "--wandb-project-name", "--debug", "--copy-codebase", "--horovod", "--ddp-static-graph",
        "--no-set-device-rank", "--lock-text-unlocked-layers", "--lock-text-freeze-layer-norm", "--coca-caption-loss-weight",
        "--coca-contrastive-loss-weight", "--remote-sync", "--remote-sync-frequency", "--remote-sync-protocol", "--distill-model",
        "--distill-pretrained", "--use-bnb-linear", "--siglip", "--loss-dist-impl", "--image-mean", "--image-std",
        "--image-interpolation", "--image-resize-mode", "--force-context-length", "--force-image-size",
    ]

    func validate() throws {
        if let first = unrecognized.first {
            let flag = String(first.split(separator: "=", maxSplits: 1).first ?? Substring(first))
            if let why = Self.unsupported[flag] { throw ValidationError("open_clip_train's \(flag) is not supported by swiftclip train (\(why))") }
            if Self.openCLIPFlags.contains(flag) { throw ValidationError("open_clip_train's \(flag) is not supported by swiftclip train") }
            throw ValidationError("unknown option or argument '\(first)'")
        }
        let positive: [(String, Int)] = [("--batch-size", batchSize), ("--epochs", epochs), ("--accum-freq", accumFreq), ("--workers", workers)]
        for (flag, v) in positive where !(1...1_000_000).contains(v) { throw ValidationError("\(flag) must be in 1...1000000, got \(v)") }
        let counts: [(String, Int)] = [("--warmup", warmup), ("--save-frequency", saveFrequency), ("--val-frequency", valFrequency),
                                       ("--zeroshot-frequency", zeroshotFrequency), ("--log-every-n-steps", logEveryNSteps)]
        for (flag, v) in counts where !(0...1_000_000_000).contains(v) { throw ValidationError("\(flag) must be in 0...1000000000, got \(v)") }
        if let n = trainNumSamples, !(1...1_000_000_000).contains(n) { throw ValidationError("--train-num-samples must be in 1...1000000000, got \(n)") }
        if let e = epochsCooldown, !(0...epochs).contains(e) { throw ValidationError("--epochs-cooldown must be in 0...\(epochs), got \(e)") }
        for (flag, v) in [("--lr", lr), ("--eps", eps), ("--grad-clip-norm", gradClipNorm)] {
            if let v, !(v.isFinite && v > 0) { throw ValidationError("\(flag) must be a positive number, got \(v)") }
        }
        for (flag, v) in [("--beta1", beta1), ("--beta2", beta2)] {
            if let v, !(v >= 0 && v < 1) { throw ValidationError("\(flag) must be in [0, 1), got \(v)") }
        }
        guard wd.isFinite && wd >= 0 else { throw ValidationError("--wd must be a non-negative number, got \(wd)") }
        guard lrCooldownEnd.isFinite && lrCooldownEnd >= 0, lrCooldownPower.isFinite && lrCooldownPower > 0 else {
            throw ValidationError("--lr-cooldown-end must be ≥ 0 and --lr-cooldown-power > 0")
        }
        if let t = threads, !(1...4096).contains(t) { throw ValidationError("--threads must be in 1...4096, got \(t)") }
        guard ["cosine", "const", "const-cooldown"].contains(lrScheduler) else {
            throw ValidationError("--lr-scheduler must be cosine, const or const-cooldown, got '\(lrScheduler)'")
        }
        guard ["auto", "csv", "synthetic", "webdataset"].contains(datasetType) else {
            throw ValidationError("--dataset-type must be csv, webdataset, synthetic or auto, got '\(datasetType)'")
        }
        if datasetResampled && resolvedDatasetType != .webdataset { throw ValidationError("--dataset-resampled needs --dataset-type webdataset") }
        guard precision == "fp32" || precision == "amp_bf16" else {
            throw ValidationError("--precision \(precision) is not supported: swiftclip train runs fp32 or amp_bf16")
        }
        guard ["folder", "cifar10", "cifar100"].contains(zeroshotDataset) else {
            throw ValidationError("--zeroshot-dataset must be folder, cifar10 or cifar100, got '\(zeroshotDataset)'")
        }
        _ = try augmentation()
    }

    /// --aug-cfg's scale and ratio (open_clip parses each value as a Python literal).
    func augmentation() throws -> (scale: (Double, Double), ratio: (Double, Double)) {
        var scale = (0.9, 1.0), ratio = (3.0 / 4.0, 4.0 / 3.0)
        for item in augCfg {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw ValidationError("--aug-cfg takes key=value, got '\(item)'") }
            let numbers = parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "()[] '\"")).split(separator: ",")
                .map { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard numbers.count == 2, let a = numbers[0], let b = numbers[1] else {
                throw ValidationError("--aug-cfg \(parts[0]) needs two numbers like '(0.9, 1.0)', got '\(parts[1])'")
            }
            switch parts[0] {
            case "scale": scale = (a, b)
            case "ratio": ratio = (a, b)
            default: throw ValidationError("--aug-cfg \(parts[0]) is not supported (scale and ratio are)")
            }
        }
        guard scale.0 > 0, scale.0 <= scale.1, scale.1 <= 1 else { throw ValidationError("--aug-cfg scale must satisfy 0 < min ≤ max ≤ 1") }
        guard ratio.0 > 0, ratio.0 <= ratio.1, ratio.1 < 100 else { throw ValidationError("--aug-cfg ratio must satisfy 0 < min ≤ max < 100") }
        return (scale, ratio)
    }

    /// open_clip's `auto`: webdataset when the data names tar files, CSV otherwise.
    var resolvedDatasetType: TrainingOptions.DatasetType {
        switch datasetType {
        case "synthetic": return .synthetic
        case "webdataset": return .webdataset
        case "csv": return .csv
        default: return trainData.map { $0.contains(".tar") } == true ? .webdataset : .csv
        }
    }

    func run() throws { try runAsRank(train) }

    func train(_ communicator: Communicator) throws {
        try runReportingErrors {
            if let threads {
                Parallel.threadCount = threads
            } else if let local = ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap(Int.init), local > 1 {
                // Several ranks on this machine: share the cores instead of each taking all of them.
                Parallel.threadCount = max(1, ProcessInfo.processInfo.activeProcessorCount / local)
            }
            var o = TrainingOptions(model: model)
            o.precision = precision == "amp_bf16" ? .bf16 : .fp32
            o.pretrained = pretrained.map { URL(fileURLWithPath: $0) }
            o.pretrainedImage = pretrainedImage.map { URL(fileURLWithPath: $0) }
            o.trainData = trainData.map { URL(fileURLWithPath: $0) }
            o.valData = valData.map { URL(fileURLWithPath: $0) }
            o.datasetType = resolvedDatasetType
            o.datasetResampled = datasetResampled
            o.gatherWithGrad = gatherWithGrad
            o.localLoss = localLoss
            o.csvSeparator = csvSeparator == "\\t" ? "\t" : csvSeparator
            o.csvImgKey = csvImgKey; o.csvCaptionKey = csvCaptionKey
            o.batchSize = batchSize; o.epochs = epochs; o.epochsCooldown = epochsCooldown
            o.lr = lr; o.beta1 = beta1; o.beta2 = beta2; o.eps = eps; o.wd = wd; o.warmup = warmup
            o.lrScheduler = TrainingOptions.Scheduler(rawValue: lrScheduler)!
            o.lrCooldownEnd = lrCooldownEnd; o.lrCooldownPower = lrCooldownPower
            o.gradClipNorm = gradClipNorm; o.accumFreq = accumFreq; o.gradCheckpointing = gradCheckpointing
            o.lockImage = lockImage; o.lockText = lockText
            (o.augScale, o.augRatio) = try augmentation()
            o.seed = seed; o.workers = workers
            o.logs = URL(fileURLWithPath: logs); o.name = name
            o.saveFrequency = saveFrequency; o.saveMostRecent = saveMostRecent; o.deletePreviousCheckpoint = deletePreviousCheckpoint
            o.resume = resume; o.valFrequency = valFrequency; o.zeroshotFrequency = zeroshotFrequency
            o.logEveryNSteps = logEveryNSteps; o.trainNumSamples = trainNumSamples
            o.arguments = argumentRecord()

            let tokenizer = try vocabulary.tokenizer()
            var zeroShot: (dataset: LabeledImageDataset, templates: [String])?
            if let zeroshotData {
                let url = URL(fileURLWithPath: zeroshotData)
                var set: LabeledImageDataset = zeroshotDataset == "folder" ? try ImageFolderDataset(root: url)
                    : try CIFARDataset.load(zeroshotDataset == "cifar10" ? .cifar10 : .cifar100, at: url)
                if let zeroshotClassnames {
                    try set.overrideClassNames(readLines(URL(fileURLWithPath: zeroshotClassnames)), source: zeroshotClassnames)
                }
                let templates = try zeroshotTemplates.map { try readLines(URL(fileURLWithPath: $0)) } ?? CIFARClassNames.templates
                zeroShot = (set, templates)
            }
            let run = try TrainingRun(options: o, tokenizer: tokenizer, zeroShot: zeroShot, communicator: communicator)
            let terminal = isatty(STDERR_FILENO) == 1
            run.echo = { line in FileHandle.standardError.write(Data(((terminal ? "\r\u{1B}[K" : "") + line + "\n").utf8)) }
            if terminal { run.status = { FileHandle.standardError.write(Data("\r\u{1B}[K\($0)".utf8)) } }
            // Ctrl-C: finish the step, write a checkpoint, exit non-zero; a second Ctrl-C quits at once.
            let stop = StopRequest()
            signal(SIGINT, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
            source.setEventHandler {
                if stop.request() { FileHandle.standardError.write(Data("\nstopping now\n".utf8)); Foundation.exit(130) }
                FileHandle.standardError.write(Data("\ninterrupt: finishing this step, then saving a checkpoint (Ctrl-C again to quit now)\n".utf8))
            }
            source.resume()
            run.shouldStop = { stop.isRequested }
            defer { source.cancel() }
            let results = try run.run()
            guard communicator.isRoot else { return }
            if let last = results.last {
                print("trained \(epochs) epoch(s): " + last.keys.sorted().map { String(format: "%@ %.4f", $0, last[$0]!) }.joined(separator: ", "))
            } else {
                print("trained \(epochs) epoch(s)")
            }
            print("run folder: \(run.directory.path)")
        }
    }

    /// The flags TrainingOptions does not hold, by attribute name (params.txt).
    func argumentRecord() -> [String: String] {
        ["precision": precision, "zeroshot_data": zeroshotData ?? "None", "zeroshot_dataset": zeroshotDataset,
         "zeroshot_classnames": zeroshotClassnames ?? "None", "zeroshot_templates": zeroshotTemplates ?? "None",
         "threads": threads.map(String.init) ?? "None"]
    }
}

/// Set from the signal handler's queue, read by the training loop.
final class StopRequest: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    /// Records a request; true when one was already pending.
    func request() -> Bool { lock.lock(); defer { lock.unlock() }; count += 1; return count > 1 }
    var isRequested: Bool { lock.lock(); defer { lock.unlock() }; return count > 0 }
}
