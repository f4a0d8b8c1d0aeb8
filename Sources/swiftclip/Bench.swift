import ArgumentParser
import CLIPEngine
import CLIPModels
import Foundation

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Latency, throughput, peak memory and parameters of a tower (a benchmark: figures, not assertions).",
        discussion: """
        Peak memory is the process's peak resident set (getrusage ru_maxrss) after the runs of each batch \
        size, so it accumulates across batch sizes: run one tower and one batch size per process to \
        compare peaks with other systems (benchmarks/ scripts do).
        """)

    enum Tower: String, ExpressibleByArgument { case image, text }

    @OptionGroup var options: ModelOptions
    @Option(name: .long, help: "image or text.") var tower: Tower = .image
    @Option(name: .long, help: "Comma-separated batch sizes.") var batchSizes = "1,32"
    @Option(name: .long, help: "Untimed runs before timing.") var warmup = 2
    @Option(name: .long, help: "Timed runs (default: as many as fit in ~4 s, at least 3).") var repeats: Int?
    @Option(name: .long, help: "Text length up to the end-of-text token (77 = the full context, as PyTorch always computes).")
    var textLength: Int?
    @Flag(name: .long, help: "Print time per operation kind (mean of 5 more runs with the profiler on).") var breakdown = false
    @Flag(name: .long, help: "Machine-readable JSON (a list of result objects).") var json = false

    func validate() throws {
        _ = try parseBatchSizes(batchSizes)
        try requireOption(warmup, in: OptionLimits.warmup, "--warmup")
        if let repeats { try requireOption(repeats, in: OptionLimits.repeats, "--repeats") }
        if let textLength { try requireOption(textLength, in: OptionLimits.contextLength, "--text-length") }
    }

    func run() throws {
        try runReportingErrors {
            let sizes = try parseBatchSizes(batchSizes)
            // Without --weights only the measured tower is built, so peak memory is that tower's.
            let config = try ModelRegistry.config(named: options.model)
            if let textLength, textLength > config.text.contextLength {
                throw ValidationError("--text-length must be in 2...\(config.text.contextLength) (the model's context_length), got \(textLength)")
            }
            if tower == .text && (config.text.vocabSize < 4 || config.text.contextLength < 2) {
                throw InputError(description: "\(config.source): text_cfg.vocab_size \(config.text.vocabSize) / context_length "
                                 + "\(config.text.contextLength) are too small to make benchmark tokens (need ≥ 4 / ≥ 2)")
            }
            var encodeImage: ((Tensor) throws -> Tensor)?
            var encodeText: (([[Int]]) throws -> Tensor)?
            let parameters: Int
            if let url = options.weightsURL {
                let model = try CLIPModel(model: options.model, weightsURL: url, seed: options.seed)
                encodeImage = { try model.encodeImage($0) }
                encodeText = { try model.encodeText($0) }
                parameters = tower == .image ? model.parameterCounts.visual : model.parameterCounts.text
            } else if tower == .image {
                let (encoder, count) = try CLIPModel.randomImageTower(config: config, seed: options.seed)
                encodeImage = { try encoder($0) }
                parameters = count
            } else {
                let (encoder, count) = try CLIPModel.randomTextTower(config: config, seed: options.seed)
                encodeText = { try encoder($0) }
                parameters = count
            }
            var results: [[String: Any]] = []
            var rng = SeededGenerator(seed: 7)
            for batch in sizes {
                let activations = tower == .image ? config.imageActivationBytes(batch: batch)
                    : config.textActivationBytes(batch: batch, length: config.text.contextLength)
                try config.requireMemory(parameters: 0, activations: activations, what: "a batch of \(batch) through the \(tower.rawValue) tower")
                let forward: () throws -> Void
                switch tower {
                case .image:
                    let s = config.vision.imageSize
                    let images = Tensor.random(shape: [batch, 3, s, s], in: -2...2, using: &rng)
                    forward = { _ = try encodeImage!(images) }
                case .text:
                    let ctx = config.text.contextLength
                    let length = min(max(textLength ?? ctx, 2), ctx)
                    let vocab = config.text.vocabSize
                    // [sot, words…, eot, 0 padding]; the eot id is the largest, as in CLIP's vocabulary.
                    let rows = (0..<batch).map { _ in
                        [vocab - 2] + (0..<(length - 2)).map { _ in Int.random(in: 1..<(vocab - 2), using: &rng) } + [vocab - 1]
                            + Array(repeating: 0, count: ctx - length)
                    }
                    forward = { _ = try encodeText!(rows) }
                }
                for _ in 0..<warmup { try forward() }
                var times: [Double] = []
                let budget = 4.0
                let started = DispatchTime.now().uptimeNanoseconds
                while true {
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    try forward()
                    times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
                    let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
                    if let repeats { if times.count >= repeats { break } } else if times.count >= 3 && (elapsed > budget || times.count >= 50) { break }
                }
                times.sort()
                let median = times.count % 2 == 1 ? times[times.count / 2] : (times[times.count / 2 - 1] + times[times.count / 2]) / 2
                let pct = { (p: Double) in times[min(times.count - 1, Int(Double(times.count - 1) * p + 0.5))] }
                var usage = rusage()
                getrusage(RUSAGE_SELF.rawValue, &usage)
                var row: [String: Any] = [
                    "system": "swiftclip-fp32", "model": options.model, "tower": tower.rawValue, "batch": batch,
                    "median_ms": median, "p10_ms": pct(0.1), "p90_ms": pct(0.9), "repeats": times.count,
                    "items_per_s": Double(batch) / (median / 1000), "peak_rss_mb": Double(usage.ru_maxrss) / 1024,
                    "params": parameters, "threads": Parallel.threadCount,
                ]
                if tower == .text { row["text_length"] = min(max(textLength ?? config.text.contextLength, 2), config.text.contextLength) }
                if breakdown {
                    OpProfiler.reset()
                    OpProfiler.isEnabled = true
                    let profiledRuns = 5
                    for _ in 0..<profiledRuns { try forward() }
                    OpProfiler.isEnabled = false
                    row["breakdown_ms"] = Dictionary(uniqueKeysWithValues: OpProfiler.report.map {
                        ($0.name, $0.seconds * 1000 / Double(profiledRuns))
                    })
                }
                results.append(row)
            }
            if json {
                let data = try JSONSerialization.data(withJSONObject: results, options: [.prettyPrinted, .sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                print("model \(options.model), \(tower.rawValue) tower, \(parameters) params, \(Parallel.threadCount) threads")
                print("batch   median ms    p10 ms    p90 ms   items/s  peak RSS MB")
                for r in results {
                    print(String(format: "%5d %11.2f %9.2f %9.2f %9.1f %12.0f", r["batch"] as! Int, r["median_ms"] as! Double,
                                 r["p10_ms"] as! Double, r["p90_ms"] as! Double, r["items_per_s"] as! Double, r["peak_rss_mb"] as! Double))
                    if let b = r["breakdown_ms"] as? [String: Double] {
                        let total = r["median_ms"] as! Double
                        for (name, ms) in b.sorted(by: { $0.value > $1.value }) {
                            print(String(format: "        %-44@ %9.2f ms  %5.1f%%", name as NSString, ms, 100 * ms / total))
                        }
                        let other = total - b.values.reduce(0, +)
                        print(String(format: "        %-44@ %9.2f ms  %5.1f%%", "other (residual adds, pooling, layout)" as NSString, other, 100 * other / total))
                    }
                }
            }
        }
    }
}
