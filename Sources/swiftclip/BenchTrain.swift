import ArgumentParser
import CLIPDistributed
import CLIPEngine
import CLIPModels
import CLIPTraining
import Foundation

struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-train",
        abstract: "Training steps (forward, ClipLoss, backward, AdamW) per second, time per step and peak memory (a benchmark: figures, not assertions).",
        discussion: """
        Random weights (or --weights), random images, realistic captions tokenized with the CLIP BPE. Each step \
        is one open_clip_train step at accum_freq 1 (schedule const, no clipping). Peak memory is the process's \
        peak resident set (ru_maxrss) after the steps: run one batch size per process to compare with other systems.         Under mpirun each rank takes --batch (data parallel, --gather-with-grad): rank 0 reports the global samples/s,         the allreduce time not hidden behind the backward pass, and one blocking allreduce of all gradients for comparison.
        """)

    @OptionGroup var options: ModelOptions
    @OptionGroup var vocabulary: VocabularyOptions
    @Option(name: .long, help: "Samples per step.") var batch = 8
    @Option(name: .long, help: "Untimed steps first.") var warmup = 1
    @Option(name: .long, help: "Timed steps.") var steps = 3
    @Flag(name: .long, help: "Print time per operation kind over one more step (profiler on).") var breakdown = false
    @Flag(name: .customLong("grad-checkpointing"), help: "Recompute each block in backward (open_clip's --grad-checkpointing).") var gradCheckpointing = false
    @Flag(name: .long, help: "Machine-readable JSON.") var json = false
    @Option(name: .long, help: "fp32 or amp_bf16 (bf16 forward GEMMs; fp32 master weights, optimizer, loss, backward).")
    var precision = "fp32"

    static let subjects = ["a dog", "two cats", "an old man", "a red car", "a wooden table", "a child", "a bowl of soup", "a city street"]
    static let scenes = ["sitting on a sofa", "in the rain at night", "next to a window", "on a sunny beach",
                         "covered in snow", "photographed from above", "in a busy market", "with a blurry background"]

    func validate() throws {
        try requireOption(batch, in: OptionLimits.batchSize, "--batch")
        try requireOption(warmup, in: OptionLimits.warmup, "--warmup")
        try requireOption(steps, in: OptionLimits.repeats, "--steps")
        guard precision == "fp32" || precision == "amp_bf16" else {
            throw ValidationError("--precision must be fp32 or amp_bf16, got '\(precision)'")
        }
    }

    func run() throws { try runAsRank(bench) }

    func bench(_ communicator: Communicator) throws {
        try runReportingErrors {
            let config = try ModelRegistry.config(named: options.model)
            // Weights, their gradients and AdamW's two moments; the batch's activations, kept for backward.
            let activations = config.imageActivationBytes(batch: batch).flatMap { i in
                config.textActivationBytes(batch: batch, length: config.text.contextLength).map { i.addingReportingOverflow($0) }
            }.flatMap { $0.overflow ? nil : $0.partialValue }
            try config.requireMemory(parameters: config.parameterCount.flatMap { $0 <= Int.max / 2 ? 2 * $0 : nil },
                                     activations: activations, what: "training \(options.model) at batch \(batch)")
            let model = try CLIPModel(model: options.model, weightsURL: options.weightsURL, seed: options.seed,
                                      precision: precision == "amp_bf16" ? .bf16 : .fp32)
            let tokenizer = try vocabulary.tokenizer()
            var rng = SeededGenerator(seed: 3)
            let captions = (0..<batch).map { i in "a photo of \(Self.subjects[i % 8]) \(Self.scenes[(i / 8 + i * 3) % 8])." }
            let tokens = tokenizer.tokenize(captions, contextLength: model.config.text.contextLength).map { $0.map(Int.init) }
            let s = model.config.vision.imageSize
            let images = Tensor.random(shape: [batch, 3, s, s], in: -2...2, using: &rng)
            let trainer = CLIPTrainer(model: model, settings: .openCLIPDefaults(modelName: options.model),
                                      schedule: .const(baseLR: 5e-4, warmup: 0))
            trainer.gradCheckpointing = gradCheckpointing
            trainer.enableDataParallel(communicator: communicator, gatherWithGrad: true, localLoss: false)
            try broadcastParameters(model.parameters.parameters, communicator: communicator)
            // Every step's time, in order (warm-up ones too), so that a reader sees when it settled.
            var warmupTimes: [Double] = []
            for _ in 0..<warmup {
                let t0 = DispatchTime.now().uptimeNanoseconds
                try trainer.step(images: images, tokens: tokens)
                warmupTimes.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            }
            var times: [Double] = [], exposed: [Double] = [], early = 0
            for _ in 0..<steps {
                try communicator.barrier()
                let t0 = DispatchTime.now().uptimeNanoseconds
                try trainer.step(images: images, tokens: tokens)
                times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
                if let r = trainer.allreduce {
                    exposed.append(r.exposedSeconds)
                    if r.earlyCompletedDuringBackward { early += 1 }
                }
            }
            var usage = rusage()
            getrusage(RUSAGE_SELF.rawValue, &usage)
            let stepTimes = times
            times.sort()
            let median = times[times.count / 2]
            let ranks = communicator.size
            var row: [String: Any] = [
                "system": "swiftclip-\(precision)", "model": options.model, "batch": batch, "steps": steps,
                "median_step_s": median, "min_step_s": times.first!, "max_step_s": times.last!,
                "images_per_s": Double(batch * ranks) / median, "peak_rss_mb": Double(usage.ru_maxrss) / 1024,
                "threads": Parallel.threadCount, "params": model.parameterCounts.total, "ranks": ranks,
                "grad_checkpointing": gradCheckpointing, "warmup": warmup,
                "warmup_step_s": warmupTimes, "step_s": stepTimes,
            ]
            if let r = trainer.allreduce {
                // The same gradients in one blocking allreduce, as if nothing overlapped.
                let all = model.parameters.parameters.filter { !$0.isFrozen }
                let count = all.reduce(0) { $0 + $1.count }
                let buffer = UnsafeMutablePointer<Float>.allocate(capacity: count)
                defer { buffer.deallocate() }
                buffer.initialize(repeating: 1, count: count)
                var blocking: [Double] = []
                for _ in 0..<3 {
                    try communicator.barrier()
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    try communicator.allreduceSum(buffer, count: count)
                    blocking.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
                }
                exposed.sort()
                blocking.sort()
                row["allreduce_bytes"] = r.bytes
                row["allreduce_buckets"] = r.bucketCount
                row["allreduce_exposed_median_s"] = exposed[exposed.count / 2]
                row["allreduce_blocking_median_s"] = blocking[1]
                row["text_buckets_done_before_backward_ended"] = "\(early) of \(steps) steps"
            }

            if breakdown {
                OpProfiler.reset()
                OpProfiler.isEnabled = true
                let t0 = DispatchTime.now().uptimeNanoseconds
                try trainer.step(images: images, tokens: tokens)
                row["profiled_step_s"] = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
                OpProfiler.isEnabled = false
                row["breakdown_s"] = Dictionary(uniqueKeysWithValues: OpProfiler.report.map { ($0.name, $0.seconds) })
            }
            guard communicator.isRoot else { return }
            if json {
                let data = try JSONSerialization.data(withJSONObject: row, options: [.prettyPrinted, .sortedKeys])
                print(String(decoding: data, as: UTF8.self))
                return
            }
            print("model \(options.model), batch \(batch)" + (ranks > 1 ? " per rank × \(ranks) ranks" : "") + ", \(precision)"
                  + ", \(Parallel.threadCount) threads" + (ranks > 1 ? " per rank" : "") + ", \(steps) timed steps"
                  + (gradCheckpointing ? ", gradient checkpointing" : ""))
            print(String(format: "step %.2f s (min %.2f, max %.2f), %.2f images/s, peak RSS %.0f MB",
                         median, times.first!, times.last!, Double(batch * ranks) / median, Double(usage.ru_maxrss) / 1024))
            let list = { (t: [Double]) in t.map { String(format: "%.2f", $0) }.joined(separator: ", ") }
            print("warm-up steps (s): \(list(warmupTimes)); timed steps in order (s): \(list(stepTimes))")
            if let e = row["allreduce_exposed_median_s"] as? Double, let b = row["allreduce_blocking_median_s"] as? Double {
                print(String(format: "allreduce of %.0f MB in %d buckets: %.3f s per step not hidden by the backward; one blocking allreduce of it all %.3f s; text buckets done before the backward ended: %@",
                             Double(row["allreduce_bytes"] as! Int) / 1e6, row["allreduce_buckets"] as! Int, e, b,
                             row["text_buckets_done_before_backward_ended"] as! String))
            }
            if let b = row["breakdown_s"] as? [String: Double], let total = row["profiled_step_s"] as? Double {
                let line = { (name: String, sec: Double) in
                    print("    " + name.padding(toLength: 44, withPad: " ", startingAt: 0) + String(format: " %8.3f s  %5.1f%%", sec, 100 * sec / total))
                }
                for (name, sec) in b.sorted(by: { $0.value > $1.value }) { line(name, sec) }
                line("other (loss, copies, residual adds)", total - b.values.reduce(0, +))
            }
        }
    }
}
