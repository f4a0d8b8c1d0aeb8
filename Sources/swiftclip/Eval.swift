import ArgumentParser
import CLIPData
import CLIPEvaluation
import CLIPModels
import CLIPNN
import Foundation

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Zero-shot classification (CIFAR-10/100, image folder) or image–text retrieval (CSV), as open_clip evaluates.",
        discussion: """
        Zero-shot: top-1 / top-5 of 100 · image_features @ classifier (open_clip_train's zero_shot), per-class \
        accuracy in --json. Retrieval (--dataset csv): open_clip's image_to_text / text_to_image mean_rank, \
        median_rank, R@1/5/10.

        --data layouts (nothing is downloaded):
          cifar10   DIR/cifar-10-batches-py/{test_batch,batches.meta} or DIR/cifar-10-batches-bin/test_batch.bin
          cifar100  DIR/cifar-100-python/{test,meta} or DIR/cifar-100-binary/test.bin
                    (DIR may also be the distribution folder itself)
          folder    DIR/<class>/<image>.{jpg,jpeg,png}; classes sorted as torchvision's ImageFolder
          csv       a CSV file of image paths (relative to its folder) and captions
        """)

    enum DatasetKind: String, ExpressibleByArgument, CaseIterable { case cifar10, cifar100, folder, csv }

    @OptionGroup var options: ModelOptions
    @OptionGroup var precisionOption: PrecisionOption
    @OptionGroup var vocabulary: VocabularyOptions
    @Option(name: .long, help: "cifar10, cifar100, folder or csv.") var dataset: DatasetKind
    @Option(name: .long, help: "Dataset folder (CSV file for --dataset csv).") var data: String
    @Option(name: .long, help: "Images decoded and embedded together (one forward pass per image per thread).") var batchSize = 64
    @Option(name: .long, help: "Write the results as JSON to this file.") var json: String?
    @Option(name: .long, help: "Prompt templates, one per line ('{}' is the class name). Default: CLIP_benchmark's 18 CIFAR templates.")
    var templates: String?
    @Option(name: .long, help: "Class display names, one per line, in label order (overrides the built-in / folder names).")
    var classnames: String?
    @Option(name: .long, help: "Cache of the classifier's text embeddings (.npy, [embed_dim, classes]); reused when model, names and templates match.")
    var classifierCache: String?
    @Option(name: .long, help: "CSV: image path column.") var csvImgKey = "filepath"
    @Option(name: .long, help: "CSV: caption column.") var csvCaptionKey = "title"
    @Option(name: .long, help: "CSV: field separator (default tab).") var csvSeparator = "\t"

    func validate() throws {
        try requireOption(batchSize, in: OptionLimits.batchSize, "--batch-size")
        try requireNonEmptyPaths([(data, "--data"), (json, "--json"), (templates, "--templates"), (classnames, "--classnames"),
                                  (classifierCache, "--classifier-cache")])
    }

    func run() throws {
        try runReportingErrors {
            let dataURL = URL(fileURLWithPath: data)
            if dataset == .csv {
                let pairs = try CSVPairs(file: dataURL, imageKey: csvImgKey, captionKey: csvCaptionKey,
                                         separator: csvSeparator == "\\t" ? "\t" : csvSeparator)
                let model = try CLIPModel(model: options.model, weightsURL: options.weightsURL, seed: options.seed,
                                      precision: precisionOption.precision, inferenceOnly: true)
                try requireTokenizerFits(model.config)
                let progress = Progress(label: "embedding pairs", total: pairs.count)
                let start = Date()
                let m = try Retrieval.evaluate(model: model, tokenizer: vocabulary.tokenizer(), pairs: pairs, batchSize: batchSize,
                                               progress: { done, _ in progress.update(done) })
                print("retrieval on \(pairs.count) pairs (\(data)), \(String(format: "%.1f", Date().timeIntervalSince(start))) s")
                for (name, r) in [("image→text", m.imageToText), ("text→image", m.textToImage)] {
                    print(String(format: "  %@  R@1 %6.2f%%  R@5 %6.2f%%  R@10 %6.2f%%  mean rank %.2f  median rank %.0f",
                                 name, 100 * r.r1, 100 * r.r5, 100 * r.r10, r.meanRank, r.medianRank))
                }
                var out: [String: Any] = ["dataset": "csv", "data": data, "model": options.model, "n": m.n]
                for (k, v) in m.openCLIPNames { out[k] = v }
                try writeJSON(out)
                return
            }

            var set: LabeledImageDataset = dataset == .folder ? try ImageFolderDataset(root: dataURL)
                : try CIFARDataset.load(dataset == .cifar10 ? .cifar10 : .cifar100, at: dataURL)
            var templateList = CIFARClassNames.templates
            guard set.count > 0 else { throw InputError(description: "--data \(data): the \(dataset.rawValue) dataset holds no images") }
            var matching: ClassNameMatching?
            if let classnames {
                let names = try readListFile(classnames, option: "--classnames")
                let own = set.classNames
                matching = try set.overrideClassNames(names, source: classnames)
                FileHandle.standardError.write(Data((Self.describe(matching, names: names, own: own, file: classnames,
                                                                   dataset: dataset) + "\n").utf8))
            }
            if let templates { templateList = try readListFile(templates, option: "--templates") }

            let model = try CLIPModel(model: options.model, weightsURL: options.weightsURL, seed: options.seed,
                                      precision: precisionOption.precision, inferenceOnly: true)
            try requireTokenizerFits(model.config)
            let identity = "\(options.model)|" + (options.weights.map { URL(fileURLWithPath: $0).standardizedFileURL.path } ?? "seed \(options.seed)")
                + (precisionOption.precision == .fp32 ? "" : "|\(precisionOption.precision)")
            let (classifier, cached) = try ZeroShotEvaluation.classifier(
                model: model, tokenizer: vocabulary.tokenizer(), classNames: set.classNames, templates: templateList,
                cache: classifierCache.map { URL(fileURLWithPath: $0) }, modelIdentity: identity)
            if let classifierCache {
                FileHandle.standardError.write(Data("classifier \(cached ? "read from" : "written to") \(classifierCache)\n".utf8))
            }
            let progress = Progress(label: "classifying images", total: set.count)
            let start = Date()
            let r = try ZeroShotEvaluation.evaluate(model: model, classifier: classifier, dataset: set, batchSize: batchSize,
                                                    progress: { done, _ in progress.update(done) })
            let seconds = Date().timeIntervalSince(start)
            print("zero-shot \(dataset.rawValue) (\(data)): \(r.n) images, \(set.classNames.count) classes, \(templateList.count) templates")
            print(String(format: "  top-1 %.2f%%  top-5 %.2f%%  (%.1f s, %.1f images/s)", 100 * r.top1, 100 * r.top5,
                         seconds, Double(r.n) / max(seconds, 1e-9)))
            let worst = r.perClass.filter { $0.count > 0 }.sorted { $0.top1 < $1.top1 }
            if worst.count > 1, worst.first!.top1 < worst.last!.top1 {
                let show = { (c: ClassAccuracy) in String(format: "%@ %.0f%%", c.name, 100 * c.top1) }
                print("  best classes:  " + worst.suffix(3).reversed().map(show).joined(separator: ", "))
                print("  worst classes: " + worst.prefix(3).map(show).joined(separator: ", "))
            }
            let perClass = r.perClass.map { c -> [String: Any] in
                ["name": c.name, "count": c.count, "correct": c.correct, "top1": c.top1, "top5": c.top5]
            }
            try writeJSON(["dataset": dataset.rawValue, "data": data, "model": options.model, "weights": options.weights ?? NSNull(),
                           "precision": precisionOption.precision.rawValue,
                           "classnames_matching": matching?.rawValue ?? NSNull(),
                           "templates": templateList.count, "n": r.n, "top1": r.top1, "top5": r.top5, "per_class": perClass,
                           "predictions": r.predictions, "labels": r.labels, "seconds": seconds])
        }
    }

    /// One line on how --classnames was paired with the labels.
    static func describe(_ matching: ClassNameMatching?, names: [String], own: [String], file: String,
                         dataset: DatasetKind) -> String {
        let labels = dataset == .folder ? "sorted sub-folders" : "\(dataset.rawValue) labels"
        switch matching {
        case .byName?:
            return "--classnames \(file): the names are the \(labels) in another order; matched by name"
        case .byPosition?:
            let pairs = zip(names, own).prefix(3).map { "'\($0)' -> '\($1)'" }.joined(separator: ", ")
            return "--classnames \(file): matched to the \(labels) by position (line i names label i, torchvision's rule): "
                + pairs + (names.count > 3 ? ", ..." : "")
        case .sameOrder?, nil:
            return "--classnames \(file): the names are the \(labels), in their order"
        }
    }

    func writeJSON(_ object: [String: Any]) throws {
        guard let json else { return }
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        do {
            try AtomicFileWriter.write(to: URL(fileURLWithPath: json)) { w in try data.withUnsafeBytes { try w.write($0) } }
        } catch let e as FileIOFailure {
            throw InputError(description: "--json \(e)")
        }
    }
}
