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
        compare peaks with other systems (benchmarks/ scripts do). With several --precision values the \
        towers are built side by side and timed interleaved (one run of each in turn), so that the rows \
        share the machine's drift; their peak memory is then the sum of all of them.
        """)

    enum Tower: String, ExpressibleByArgument { case image, text }

    @OptionGroup var options: ModelOptions
    @Option(name: .long, help: "image or text.") var tower: Tower = .image
    @Option(name: .long, help: "Comma-separated batch sizes.") var batchSizes = "1,32"
    @Option(name: .long, help: "Untimed runs before timing.") var warmup = 2
    @Option(name: .long, help: "Timed runs (default: as many as fit in ~4 s, at least 3).") var repeats: Int?
    @Option(name: .long, help: "Text length up to the end-of-text token (77 = the full context, as PyTorch always computes).")
    var textLength: Int?
    @Flag(name: .long, help: "Print time per operation kind (mean of 5 more runs with the profiler on; batched passes only).") var breakdown = false
    @Flag(name: .long, help: "Machine-readable JSON (a list of result objects).") var json = false
    @Option(name: .long, help: "Comma-separated precisions (fp32, bf16, int8), timed interleaved in one run.") var precision = "fp32"
    @Option(name: .long, help: """
        Comma-separated ways to run an image batch, timed interleaved: batched (one pass, each layer split across \
        the threads: latency) and per-thread (one pass per image on each thread, as index, embed-image and \
        evaluation run: throughput).
        """) var passes = "batched"

    enum Passes: String, CaseIterable { case batched, perThread = "per-thread" }

    func parsePasses() throws -> [Passes] {
        let modes = try passes.split(separator: ",").map { text in
            guard let mode = Passes(rawValue: text.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("--passes takes batched and/or per-thread, got '\(text)'")
            }
            return mode
        }
        guard !modes.isEmpty else { throw ValidationError("--passes takes batched and/or per-thread") }
        if tower == .text && modes != [.batched] { throw ValidationError("--passes per-thread is for the image tower") }
        return modes
    }

    func validate() throws {
        _ = try parseBatchSizes(batchSizes)
        _ = try parsePrecisions(precision)
        _ = try parsePasses()
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
            let precisions = try parsePrecisions(precision)
            /// One tower per precision: its forward over images or token rows, and its parameter count.
            struct Built {
                let precision: Precision
                var encodeImage: ((Tensor) throws -> Tensor)?
                var encodeText: (([[Int]]) throws -> Tensor)?
                let parameters: Int
            }
            let built: [Built] = try precisions.map { p in
                if let url = options.weightsURL {
                    let model = try CLIPModel(model: options.model, weightsURL: url, seed: options.seed, precision: p,
                                              inferenceOnly: true)
                    return Built(precision: p, encodeImage: { try model.encodeImage($0) }, encodeText: { try model.encodeText($0) },
                                 parameters: tower == .image ? model.parameterCounts.visual : model.parameterCounts.text)
                } else if tower == .image {
                    let (encoder, count) = try CLIPModel.randomImageTower(config: config, seed: options.seed, precision: p)
                    return Built(precision: p, encodeImage: { try encoder($0) }, encodeText: nil, parameters: count)
                } else {
                    let (encoder, count) = try CLIPModel.randomTextTower(config: config, seed: options.seed, precision: p)
                    return Built(precision: p, encodeImage: nil, encodeText: { try encoder($0) }, parameters: count)
                }
            }
            // Each precision in each way of running a batch.
            let runs = try parsePasses().flatMap { mode in built.map { (built: $0, passes: mode) } }
            let parameters = built[0].parameters
            var results: [[String: Any]] = []
            var rng = SeededGenerator(seed: 7)
            for batch in sizes {
                let activations = tower == .image ? config.imageActivationBytes(batch: batch)
                    : config.textActivationBytes(batch: batch, length: config.text.contextLength)
                try config.requireMemory(parameters: 0, activations: activations, what: "a batch of \(batch) through the \(tower.rawValue) tower")
                let forwards: [() throws -> Void]
                switch tower {
                case .image:
                    let s = config.vision.imageSize
                    let images = Tensor.random(shape: [batch, 3, s, s], in: -2...2, using: &rng)
                    forwards = runs.map { run in
                        run.passes == .perThread ? { _ = try onePassPerThread(images, run.built.encodeImage!) }
                            : { _ = try run.built.encodeImage!(images) }
                    }
                case .text:
                    let ctx = config.text.contextLength
                    let length = min(max(textLength ?? ctx, 2), ctx)
                    let vocab = config.text.vocabSize
                    // [sot, words…, eot, 0 padding]; the eot id is the largest, as in CLIP's vocabulary.
                    let rows = (0..<batch).map { _ in
                        [vocab - 2] + (0..<(length - 2)).map { _ in Int.random(in: 1..<(vocab - 2), using: &rng) } + [vocab - 1]
                            + Array(repeating: 0, count: ctx - length)
                    }
                    forwards = runs.map { run in { _ = try run.built.encodeText!(rows) } }
                }
                for forward in forwards { for _ in 0..<warmup { try forward() } }
                // Interleaved: each pass runs every precision once, in a rotating order.
                var times = [[Double]](repeating: [], count: forwards.count)
                let budget = 4.0 * Double(forwards.count)
                let started = DispatchTime.now().uptimeNanoseconds
                var pass = 0
                while true {
                    for i in 0..<forwards.count {
                        let which = (i + pass) % forwards.count
                        let t0 = DispatchTime.now().uptimeNanoseconds
                        try forwards[which]()
                        times[which].append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
                    }
                    pass += 1
                    let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
                    if let repeats { if pass >= repeats { break } } else if pass >= 3 && (elapsed > budget || pass >= 50) { break }
                }
                var usage = rusage()
                getrusage(RUSAGE_SELF.rawValue, &usage)
                for (i, (b, mode)) in runs.enumerated() {
                    let sorted = times[i].sorted()
                    let median = sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
                    let pct = { (p: Double) in sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * p + 0.5))] }
                    var row: [String: Any] = [
                        "system": "swiftclip-\(b.precision)" + (mode == .batched ? "" : "-per-thread"), "precision": b.precision.rawValue, "model": options.model,
                        "tower": tower.rawValue, "batch": batch,
                        "median_ms": median, "p10_ms": pct(0.1), "p90_ms": pct(0.9), "repeats": sorted.count,
                        "items_per_s": Double(batch) / (median / 1000), "peak_rss_mb": Double(usage.ru_maxrss) / 1024,
                        "params": parameters, "threads": Parallel.threadCount, "kernels": KernelLevel.active,
                        "bf16_kernel": KernelLevel.bf16Kernel, "passes": mode.rawValue,
                    ]
                    if tower == .text { row["text_length"] = min(max(textLength ?? config.text.contextLength, 2), config.text.contextLength) }
                    // Per-thread passes run the profiled operations on several threads at once: their sum is
                    // not a share of the wall time, so only batched rows get a breakdown.
                    if breakdown && mode == .batched {
                        OpProfiler.reset()
                        OpProfiler.isEnabled = true
                        let profiledRuns = 5
                        for _ in 0..<profiledRuns { try forwards[i]() }
                        OpProfiler.isEnabled = false
                        row["breakdown_ms"] = Dictionary(uniqueKeysWithValues: OpProfiler.report.map {
                            ($0.name, $0.seconds * 1000 / Double(profiledRuns))
                        })
                    }
                    results.append(row)
                }
            }
            if json {
                let data = try JSONSerialization.data(withJSONObject: results, options: [.prettyPrinted, .sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                print("model \(options.model), \(tower.rawValue) tower, \(parameters) params, \(Parallel.threadCount) threads, kernels \(KernelLevel.active)")
                print("precision passes      batch   median ms    p10 ms    p90 ms   items/s  peak RSS MB")
                for r in results {
                    print(padded(r["precision"] as! String, 9) + " " + padded(r["passes"] as! String, 10)
                          + String(format: " %6d %11.2f %9.2f %9.2f %9.1f %12.0f",
                                 r["batch"] as! Int, r["median_ms"] as! Double,
                                 r["p10_ms"] as! Double, r["p90_ms"] as! Double, r["items_per_s"] as! Double, r["peak_rss_mb"] as! Double))
                    if let b = r["breakdown_ms"] as? [String: Double] {
                        let total = r["median_ms"] as! Double
                        for (name, ms) in b.sorted(by: { $0.value > $1.value }) {
                            print("        " + padded(name, 44) + String(format: " %9.2f ms  %5.1f%%", ms, 100 * ms / total))
                        }
                        let other = total - b.values.reduce(0, +)
                        print("        " + padded("other (residual adds, pooling, layout)", 44) + String(format: " %9.2f ms  %5.1f%%", other, 100 * other / total))
                    }
                }
            }
        }
    }
}

/// `text` padded with spaces to `width` characters (String(format:)'s %-Ns does not pad a Swift string).
private func padded(_ text: String, _ width: Int) -> String {
    text.padding(toLength: max(width, text.count), withPad: " ", startingAt: 0)
}
