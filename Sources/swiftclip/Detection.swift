import ArgumentParser
import CLIPData
import CLIPDetection
import CLIPEngine
import CLIPModels
import CLIPNN
import CLIPTraining
import Foundation

// Open-vocabulary detection commands (docs/detection.md): heatmap, make-synthetic-scenes,
// train-detector, detect, eval-detect. The work is in CLIPDetection; these parse and print.

/// "a cat, a dog" -> ["a cat", "a dog"]; an empty list or item is a usage error.
func parseLabels(_ text: String) throws -> [String] {
    let labels = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
    do { try OpenVocabularyDetector.checkLabels(labels.count == 1 && labels[0].isEmpty ? [] : labels) } catch {
        throw ValidationError("--labels: \(error) (got '\(text)')")
    }
    return labels
}

func writePNG(_ image: RGBImage, to path: String) throws {
    try writeAtomically(PNGEncoder.encode(image), to: URL(fileURLWithPath: path))
}

struct Heatmap: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Each label's CLIP similarity map over an image (the tower's head at every last-stage location).",
        discussion: """
        The image is stretched to --size × --size (any multiple of 32 works, not only the config's size). OUTPUT is a PNG with one \
        panel per label: the softmax over labels of exp(logit_scale) · cos(location, text), red = 1. --npy writes the raw \
        cosines as float32 [labels, h, w].
        """)

    @OptionGroup var options: ModelOptions
    @OptionGroup var vocabulary: VocabularyOptions
    @Option(name: .long, help: "Comma-separated labels (each embedded as 'a <label>').") var labels: String
    @Option(name: .long, help: "Input side in pixels (default: the model's image size).") var size: Int?
    @Option(name: .long, help: "PNG to write.") var output: String
    @Option(name: .long, help: "Also write the cosine maps as .npy [labels, h, w].") var npy: String?
    @Argument(help: "Image file (JPEG or PNG).") var image: String

    func validate() throws {
        _ = try parseLabels(labels)
        if let size { try requireOption(size, in: 32...4096, "--size") }
        try requireNonEmptyPaths([(output, "--output"), (npy, "--npy"), (image, "image")])
    }

    func run() throws {
        try runReportingErrors {
            let names = try parseLabels(labels)
            let model = try CLIPModel(model: options.model, weightsURL: options.weightsURL, seed: options.seed, inferenceOnly: true)
            try requireTokenizerFits(model.config)
            let dense = try DenseCLIP(model: model)
            let picture = try ImageDecoder.decode(contentsOf: URL(fileURLWithPath: image))
            let texts = try OpenVocabularyDetector.textEmbeddings(names, model: model, tokenizer: vocabulary.tokenizer())
            let maps = try LabelHeatmaps(dense: dense, image: picture, texts: texts, side: size ?? model.config.vision.imageSize)
            try writePNG(Drawing.heatPanels(image: picture, maps: maps.probabilities, mapWidth: maps.mapWidth, mapHeight: maps.mapHeight,
                                            labels: names), to: output)
            if let npy {
                try NPY.write(Tensor(shape: [names.count, maps.mapHeight, maps.mapWidth], data: maps.cosines.flatMap { $0 }), to: URL(fileURLWithPath: npy))
            }
            for (k, name) in names.enumerated() {
                let p = maps.probabilities[k]
                print(String(format: "%@: max cos %.4f, max prob %.4f", name, Double(maps.cosines[k].max() ?? 0), Double(p.max() ?? 0)))
            }
            print("heatmap: \(maps.mapWidth)×\(maps.mapHeight) map at \(maps.side) px -> \(output)")
        }
    }
}

struct MakeSyntheticScenes: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "make-synthetic-scenes",
        abstract: "Write COCO-format scenes of coloured shapes with boxes, captions for CLIP training, and a base/novel split.",
        discussion: """
        OUTPUT/train/*.png, OUTPUT/val/*.png; OUTPUT/train.csv (tab-separated filepath, caption: every object named, novel \
        ones too) for `swiftclip train`; OUTPUT/instances_train_base.json (boxes of base categories only: what the detector \
        trains on), OUTPUT/instances_train_all.json (every box: the closed-vocabulary upper bound), OUTPUT/instances_val.json \
        (every box). Categories carry "split": "base" or "novel" (docs/detection.md).
        """)

    @Option(name: .long, help: "Training scenes.") var samples: Int = 400
    @Option(name: .long, help: "Validation scenes.") var valSamples: Int = 100
    @Option(name: .long, help: "Image side in pixels.") var imageSize: Int = 256
    @Option(name: .long, help: "Most objects per scene.") var maxObjects: Int = 4
    @Option(name: .long, help: "Seed of the training scenes (validation uses seed + 1).") var seed: UInt64 = 0
    @Option(name: .long, help: "Output folder.") var output: String

    func validate() throws {
        try requireOption(samples, in: 1...1_000_000, "--samples")
        try requireOption(valSamples, in: 1...1_000_000, "--val-samples")
        try requireOption(imageSize, in: 64...2048, "--image-size")
        try requireOption(maxObjects, in: 1...16, "--max-objects")
        guard seed < UInt64.max else { throw ValidationError("--seed must be below \(UInt64.max)") }
        try requireNonEmptyPaths([(output, "--output")])
    }

    func run() throws {
        try runReportingErrors {
            let root = URL(fileURLWithPath: output)
            let categories = SyntheticScenes.categories.map { COCODataset.Category(id: $0.id, name: $0.name, split: $0.isNovel ? "novel" : "base") }
            var trainAll = COCODataset(images: [], annotations: [], categories: categories), val = trainAll
            var csv = "filepath\tcaption\n"
            for (split, count, seed) in [("train", samples, seed), ("val", valSamples, seed + 1)] {
                try FileManager.default.createDirectory(at: root.appendingPathComponent(split), withIntermediateDirectories: true)
                let scenes = try SyntheticScenes(seed: seed, count: count, imageSize: imageSize, maxObjects: maxObjects)
                var dataset = COCODataset(images: [], annotations: [], categories: categories)
                let progress = Progress(label: "make-synthetic-scenes \(split)", total: count)
                for i in 0..<count {
                    let scene = scenes.scene(i)
                    let name = "\(split)/\(String(format: "%06d", i)).png"
                    try writeAtomically(PNGEncoder.encode(scene.image), to: root.appendingPathComponent(name))
                    dataset.images.append(.init(id: i + 1, file_name: String(name.dropFirst(split.count + 1)), width: imageSize, height: imageSize))
                    for o in scene.objects {
                        dataset.annotations.append(.init(id: dataset.annotations.count + 1, image_id: i + 1, category_id: o.category.id,
                                                         bbox: [o.box.x, o.box.y, o.box.width, o.box.height]))
                    }
                    if split == "train" { csv += "\(name)\t\(scene.caption)\n" }
                    progress.update(i + 1)
                }
                if split == "train" { trainAll = dataset } else { val = dataset }
            }
            let novel = Set(categories.filter(\.isNovel).map(\.id))
            var trainBase = trainAll
            trainBase.annotations = trainAll.annotations.filter { !novel.contains($0.category_id) }
            try writeAtomically(Data(csv.utf8), to: root.appendingPathComponent("train.csv"))
            try trainAll.write(to: root.appendingPathComponent("instances_train_all.json"))
            try trainBase.write(to: root.appendingPathComponent("instances_train_base.json"))
            try val.write(to: root.appendingPathComponent("instances_val.json"))
            print("make-synthetic-scenes: \(samples) training scenes (\(trainAll.annotations.count) boxes, \(trainBase.annotations.count) base), "
                  + "\(valSamples) validation scenes (\(val.annotations.count) boxes), \(imageSize) px, in \(root.path)")
            print("novel categories: " + categories.filter(\.isNovel).map(\.name).joined(separator: ", "))
        }
    }
}

struct TrainDetector: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-detector",
        abstract: "Train the class-agnostic box head (and its in-vocabulary embedding head) on a frozen CLIP ConvNeXt.",
        discussion: """
        The backbone's stage-3/4 features of every training image are computed once and kept in memory; each epoch trains the \
        head alone (AdamW; focal + GIoU + embedding cross-entropy). OUTPUT (and OUTPUT's .optimizer.safetensors) is written \
        atomically after every epoch; --resume OUTPUT continues a run. The embedding head learns the categories with boxes in \
        --annotations.
        """)

    @OptionGroup var options: ModelOptions
    @OptionGroup var vocabulary: VocabularyOptions
    @Option(name: .long, help: "COCO instances.json.") var annotations: String
    @Option(name: .long, help: "Folder the images' file_name entries are relative to.") var images: String
    @Option(name: .long, help: "Head checkpoint to write (.safetensors).") var output: String
    @Option(name: .long, help: "Continue from this checkpoint (written by train-detector).") var resume: String?
    @Option(name: .long, help: "Epochs (in total, counting resumed ones).") var epochs: Int = 30
    @Option(name: .long, help: "Images per step.") var batchSize: Int = 16
    @Option(name: .long, help: "AdamW learning rate.") var lr: Double = 2e-3
    @Option(name: .long, help: "Input side in pixels.") var imageSize: Int = 256
    @Option(name: .long, help: "Hidden width of the head.") var hidden: Int = 256
    @Flag(name: .long, help: "No in-vocabulary embedding head (boxes and objectness only).") var noEmbedding = false

    func validate() throws {
        try requireOption(epochs, in: 1...100_000, "--epochs")
        try requireOption(batchSize, in: 1...4096, "--batch-size")
        try requireOption(imageSize, in: 64...2048, "--image-size")
        try requireOption(hidden, in: 1...65_536, "--hidden")
        guard lr.isFinite, lr > 0, lr < 10 else { throw ValidationError("--lr must be in (0, 10), got \(lr)") }
        try requireNonEmptyPaths([(annotations, "--annotations"), (images, "--images"), (output, "--output"), (resume, "--resume")])
    }

    func run() throws {
        try runReportingErrors {
            let dataset = try COCODataset.load(URL(fileURLWithPath: annotations))
            guard !dataset.images.isEmpty else { throw ValidationError("\(annotations): no images") }
            let model = try CLIPModel(model: options.model, weightsURL: options.weightsURL, seed: options.seed, inferenceOnly: true)
            let dense = try DenseCLIP(model: model)
            let vocab = noEmbedding ? [] : DetectorTraining.vocabulary(of: dataset)
            var texts: Tensor? = nil
            if !vocab.isEmpty {
                try requireTokenizerFits(model.config)
                texts = try OpenVocabularyDetector.textEmbeddings(vocab, model: model, tokenizer: vocabulary.tokenizer())
            }
            let config = BoxHeadConfig(inputWidth: dense.stageWidths[2] + dense.stageWidths[3], hidden: hidden,
                                       embedDim: vocab.isEmpty ? 0 : model.config.embedDim, imageSize: imageSize, vocabulary: vocab)
            var opts = DetectorTraining.Options()
            opts.epochs = epochs; opts.batchSize = batchSize; opts.lr = lr; opts.imageSize = imageSize; opts.hidden = hidden
            opts.embedding = !vocab.isEmpty; opts.seed = options.seed
            let arguments = ["model": options.model, "annotations": annotations, "image_size": "\(imageSize)", "hidden": "\(hidden)",
                             "batch_size": "\(batchSize)", "lr": "\(lr)", "embedding": "\(!vocab.isEmpty)"]
            let head: BoxHead
            if let resume {
                head = try BoxHead.load(URL(fileURLWithPath: resume))
                guard head.config == config else {
                    throw ValidationError("--resume \(resume): its head (\(head.config)) differs from this run's (\(config))")
                }
            } else {
                head = try BoxHead(config: config, seed: options.seed)
            }
            let training = try DetectorTraining(head: head, texts: texts, options: opts, arguments: arguments,
                                                resume: resume.map { URL(fileURLWithPath: $0) })
            if let resume, training.state.arguments != arguments {
                throw ValidationError("--resume \(resume) was trained with \(training.state.arguments), not \(arguments)")
            }
            let start = Date()
            let progress = Progress(label: "caching backbone features", total: dataset.images.count)
            let samples = try DetectorTraining.cacheFeatures(dense: dense, dataset: dataset, images: URL(fileURLWithPath: images), imageSize: imageSize,
                                                             vocabulary: vocab) { done, _ in progress.update(done) }
            print(String(format: "train-detector: %d images, %d boxes, features cached in %.1f s; vocabulary: %@", samples.count,
                         dataset.annotations.count, Date().timeIntervalSince(start), vocab.joined(separator: ", ")))
            let url = URL(fileURLWithPath: output)
            while training.state.epoch < epochs {
                let t0 = Date()
                let parts = try training.epoch(samples)
                try training.saveCheckpoint(to: url)
                print(String(format: "epoch %d/%d  loss %.4f (objectness %.4f, box %.4f, embedding %.4f)  %.1f s", training.state.epoch, epochs,
                             parts.total, parts.objectness, parts.box, parts.embedding, Date().timeIntervalSince(t0)))
            }
            print("train-detector: head written to \(output)")
        }
    }
}

extension OpenVocabularyDetector.Scoring: ExpressibleByArgument {}
extension OpenVocabularyDetector.BlendMean: ExpressibleByArgument {}
extension RegionEmbedding: ExpressibleByArgument {}

/// How the CLIP region score is computed and blended (detect and eval-detect).
struct RegionScoreOptions: ParsableArguments {
    @Option(name: .long, help: "CLIP region embedding: mask (the default: the image with everything outside the box grey, encoded), roiAlign (F-VLM, on the frozen map: the fastest) or crop (ViLD: each box cut out and encoded).")
    var regionEmbedding: RegionEmbedding = .mask
    @Option(name: .long, help: "roiAlign: RoI-align on a second backbone pass at this side (default: the detector's map); crop, mask: encode each box at this side (default: CLIP's image size).")
    var regionSize: Int?
    @Option(name: .long, help: "crop, mask: re-encode at most this many proposals (the highest objectness first; the others are RoI-aligned).")
    var encodedRegions: Int = 10
    @Option(name: .long, help: "Softmax scale of the CLIP region score (default: CLIP's exp(logit_scale)).") var clipScale: Double?
    @Option(name: .long, help: "Blend: geometric (F-VLM) or arithmetic mean of the in-vocabulary and CLIP scores.")
    var blendMean: OpenVocabularyDetector.BlendMean = .geometric

    func validate() throws {
        if let regionSize { try requireOption(regionSize, in: 32...4096, "--region-size") }
        try requireOption(encodedRegions, in: 0...1000, "--encoded-regions")
        if let clipScale, !(clipScale.isFinite && clipScale > 0 && clipScale <= 1000) {
            throw ValidationError("--clip-scale must be in (0, 1000], got \(clipScale)")
        }
    }

    func apply(to o: inout OpenVocabularyDetector.Options) {
        o.regionEmbedding = regionEmbedding; o.regionInputSize = regionSize; o.encodedRegions = encodedRegions; o.clipScale = clipScale; o.blendMean = blendMean
    }
}

/// Options shared by detect and eval-detect.
struct DetectorOptions: ParsableArguments {
    @Option(name: .long, help: "Box head checkpoint (train-detector's output).") var detector: String
    @Option(name: .long, help: "Input side in pixels (default: the head's training size).") var size: Int?
    @Option(name: .long, help: "blend (F-VLM), inVocabulary (Detic-style, no CLIP region score) or clipRegion.") var scoring: OpenVocabularyDetector.Scoring = .blend
    @Option(name: .long, help: "Blend weight of the CLIP region score for labels the head was trained on.") var baseWeight: Double = 0.35
    @Option(name: .long, help: "Blend weight of the CLIP region score for other labels.") var novelWeight: Double = 0.65
    @Option(name: .long, help: "fp32, bf16 or int8 backbone.") var precision: Precision = .fp32
    @OptionGroup var region: RegionScoreOptions

    func validate() throws {
        if let size { try requireOption(size, in: 32...4096, "--size") }
        for (w, name) in [(baseWeight, "--base-weight"), (novelWeight, "--novel-weight")] where !(0...1).contains(w) {
            throw ValidationError("\(name) must be in 0...1, got \(w)")
        }
        try requireNonEmptyPaths([(detector, "--detector")])
    }

    func load(_ model: ModelOptions, _ vocabulary: VocabularyOptions) throws -> OpenVocabularyDetector {
        let clip = try CLIPModel(model: model.model, weightsURL: model.weightsURL, seed: model.seed, precision: precision, inferenceOnly: true)
        try requireTokenizerFits(clip.config)
        return try OpenVocabularyDetector(model: clip, head: BoxHead.load(URL(fileURLWithPath: detector)), tokenizer: vocabulary.tokenizer())
    }

    func apply(to o: inout OpenVocabularyDetector.Options) {
        o.imageSize = size; o.scoring = scoring; o.baseWeight = baseWeight; o.novelWeight = novelWeight
        region.apply(to: &o)
    }
}

struct Detect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Open-vocabulary detection: boxes from the trained head, labelled by name (F-VLM's blend with CLIP region scores).",
        discussion: "--json prints Hugging Face's zero-shot-object-detection shape: [{score, label, box: {xmin, ymin, xmax, ymax}}].")

    @OptionGroup var options: ModelOptions
    @OptionGroup var vocabulary: VocabularyOptions
    @OptionGroup var detectorOptions: DetectorOptions
    @Option(name: .long, help: "Comma-separated labels.") var labels: String
    @Option(name: .long, help: "Lowest score reported.") var threshold: Double = 0.1
    @Option(name: .long, help: "Most detections reported.") var topK: Int = 100
    @Option(name: .long, help: "Write the image with the boxes and labels drawn (PNG).") var draw: String?
    @Flag(name: .long, help: "JSON output.") var json = false
    @Option(name: .long, help: "Time the detection of the first image this many more times (batch 1, after one warm-up); median on stderr.")
    var repeats: Int = 0
    @Argument(help: "Image files.") var images: [String]

    func validate() throws {
        _ = try parseLabels(labels)
        guard threshold.isFinite, (0...1).contains(threshold) else { throw ValidationError("--threshold must be in 0...1, got \(threshold)") }
        try requireOption(topK, in: 1...100_000, "--top-k")
        try requireOption(repeats, in: 0...100_000, "--repeats")
        guard !images.isEmpty else { throw ValidationError("give at least one image") }
        if draw != nil && images.count != 1 { throw ValidationError("--draw takes one image") }
        try requireNonEmptyPaths([(draw, "--draw")] + images.map { ($0, "image") })
    }

    func run() throws {
        try runReportingErrors {
            let names = try parseLabels(labels)
            let detector = try detectorOptions.load(options, vocabulary)
            var o = OpenVocabularyDetector.Options()
            o.threshold = threshold; o.topK = topK
            detectorOptions.apply(to: &o)
            let texts = try detector.textEmbeddings(names)
            var all: [[Detection]] = []
            for path in images {
                let image = try ImageDecoder.decode(contentsOf: URL(fileURLWithPath: path))
                let found = try detector.detect(image, labels: names, texts: texts, options: o)
                all.append(found)
                if let draw { try writePNG(Drawing.boxes(found, on: image, labels: names), to: draw) }
            }
            if repeats > 0 {
                // Everything per image: decode, resize, backbone, head, NMS, region scores.
                var times: [Double] = []
                var work = OpenVocabularyDetector.Work()
                for _ in 0..<repeats {
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    let image = try ImageDecoder.decode(contentsOf: URL(fileURLWithPath: images[0]))
                    work = try detector.detectCounting(image, labels: names, texts: texts, options: o).work
                    times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
                }
                let sorted = times.sorted()
                FileHandle.standardError.write(Data(String(format: "detect latency (%@, %d px, batch 1, %d runs, region %@, %d boxes scored, %d re-encoded): median %.1f ms, min %.1f ms; all: %@\n",
                    detectorOptions.precision.rawValue, o.imageSize ?? detector.head.config.imageSize, repeats, o.regionEmbedding.rawValue,
                    work.scored, work.encoded, sorted[sorted.count / 2], sorted[0],
                    times.map { String(format: "%.1f", $0) }.joined(separator: " ")).utf8))
            }
            if json {
                let e = JSONEncoder(); e.outputFormatting = [.prettyPrinted, .sortedKeys]
                let data = images.count == 1 ? try e.encode(all[0]) : try e.encode(all)
                print(String(decoding: data, as: UTF8.self))
            } else {
                for (path, found) in zip(images, all) {
                    print("\(path): \(found.count) detections")
                    for d in found {
                        print(String(format: "  %.3f  %@  [%.1f, %.1f, %.1f, %.1f]", d.score, d.label, d.box.xmin, d.box.ymin, d.box.xmax, d.box.ymax))
                    }
                }
            }
        }
    }
}

struct EvalDetect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval-detect",
        abstract: "COCO mAP@[.5:.95], AP50 and AP75 for base, novel and all categories (pycocotools' COCOeval, bbox).",
        discussion: """
        Either score a COCO results file (--detections) or run a detector over the annotations' images with every category \
        name queried at once (--model … --detector …, or --heatmap-threshold for the training-free heatmap baseline). \
        Categories with "split": "novel" count as novel.
        """)

    @Option(name: .long, help: "COCO instances.json (ground truth).") var annotations: String
    @Option(name: .long, help: "COCO results JSON [{image_id, category_id, bbox, score}] to score.") var detections: String?
    @Option(name: .long, help: "Folder of the images (when running a detector).") var images: String?
    @Option(name: .long, help: "Built-in model name or open_clip JSON config (when running a detector).") var model: String?
    @Option(name: .long, help: "open_clip weights.") var weights: String?
    @Option(name: .long, help: "Box head checkpoint.") var detector: String?
    @Option(name: .long, help: "Training-free baseline: heatmap probability threshold (no --detector).") var heatmapThreshold: Double?
    @Option(name: .long, help: "Input side in pixels.") var size: Int?
    @Option(name: .long, help: "blend, inVocabulary or clipRegion.") var scoring: OpenVocabularyDetector.Scoring = .blend
    @Option(name: .long) var baseWeight: Double = 0.35
    @Option(name: .long) var novelWeight: Double = 0.65
    @Option(name: .long, help: "Write the detections made (COCO results JSON).") var saveDetections: String?
    @OptionGroup var region: RegionScoreOptions
    @OptionGroup var vocabulary: VocabularyOptions
    @Flag(name: .long, help: "JSON output.") var json = false

    func validate() throws {
        try requireNonEmptyPaths([(annotations, "--annotations"), (detections, "--detections"), (images, "--images"), (model, "--model"),
                                  (weights, "--weights"), (detector, "--detector"), (saveDetections, "--save-detections")])
        let running = model != nil
        guard (detections != nil) != running else { throw ValidationError("give either --detections or --model (with --detector or --heatmap-threshold)") }
        if running {
            guard images != nil else { throw ValidationError("--images is needed to run a detector") }
            guard (detector != nil) != (heatmapThreshold != nil) else { throw ValidationError("give one of --detector, --heatmap-threshold") }
        }
        if let size { try requireOption(size, in: 32...4096, "--size") }
    }

    func run() throws {
        try runReportingErrors {
            let gt = try COCODataset.load(URL(fileURLWithPath: annotations))
            var dets: [COCODetection]
            if let detections {
                dets = try COCODetection.load(URL(fileURLWithPath: detections))
            } else if let model, let images {
                let clip = try CLIPModel(model: model, weightsURL: weights.map { URL(fileURLWithPath: $0) }, inferenceOnly: true)
                try requireTokenizerFits(clip.config)
                let tokenizer = try vocabulary.tokenizer()
                let method: DetectionEvaluation.Method
                if let detector {
                    var o = OpenVocabularyDetector.Options()
                    o.threshold = 0.001; o.onePerBox = false; o.imageSize = size; o.scoring = scoring
                    o.baseWeight = baseWeight; o.novelWeight = novelWeight
                    region.apply(to: &o)
                    method = .detector(try OpenVocabularyDetector(model: clip, head: BoxHead.load(URL(fileURLWithPath: detector)), tokenizer: tokenizer), o)
                } else {
                    method = .heatmap(try DenseCLIP(model: clip), tokenizer, threshold: heatmapThreshold ?? 0.5, side: size ?? clip.config.vision.imageSize)
                }
                let progress = Progress(label: "eval-detect", total: gt.images.count)
                dets = try DetectionEvaluation.detections(method, dataset: gt, images: URL(fileURLWithPath: images)) { done, _ in progress.update(done) }
            } else {
                throw ValidationError("nothing to evaluate")
            }
            if let saveDetections {
                let e = JSONEncoder(); e.outputFormatting = [.sortedKeys]
                try writeAtomically(try e.encode(dets), to: URL(fileURLWithPath: saveDetections))
            }
            let evaluation = COCOEvaluation(groundTruth: gt, detections: dets)
            let rows = [("all", evaluation.summary()), ("base", evaluation.summary(categories: gt.baseCategoryIDs)),
                        ("novel", evaluation.summary(categories: gt.novelCategoryIDs))]
            if json {
                let e = JSONEncoder(); e.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try e.encode(Dictionary(uniqueKeysWithValues: rows.map { ($0.0, $0.1) })), as: UTF8.self))
            } else {
                print("set    categories  mAP@[.5:.95]  AP50    AP75")
                for (name, s) in rows {
                    print(name.padding(toLength: 6, withPad: " ", startingAt: 0) + String(format: " %10d  %12.4f  %.4f  %.4f", s.categories, s.ap, s.ap50, s.ap75))
                }
            }
        }
    }
}
