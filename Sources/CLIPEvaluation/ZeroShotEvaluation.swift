import CLIPData
import CLIPEngine
import CLIPModels
import CLIPNN
import CLIPTokenizer
import Foundation

/// Accuracy of one class: `correct` of its `count` images were classified top-1 correctly.
public struct ClassAccuracy: Codable, Equatable {
    public let name: String
    public let count: Int
    public let correct: Int
    public let top5Correct: Int
    public var top1: Double { count == 0 ? 0 : Double(correct) / Double(count) }
    public var top5: Double { count == 0 ? 0 : Double(top5Correct) / Double(count) }

    enum CodingKeys: String, CodingKey { case name, count, correct, top5Correct = "top5_correct", top1, top5 }
    public init(name: String, count: Int, correct: Int, top5Correct: Int) {
        self.name = name; self.count = count; self.correct = correct; self.top5Correct = top5Correct
    }
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(name: try c.decode(String.self, forKey: .name), count: try c.decode(Int.self, forKey: .count),
                  correct: try c.decode(Int.self, forKey: .correct), top5Correct: try c.decode(Int.self, forKey: .top5Correct))
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name); try c.encode(count, forKey: .count); try c.encode(correct, forKey: .correct)
        try c.encode(top5Correct, forKey: .top5Correct); try c.encode(top1, forKey: .top1); try c.encode(top5, forKey: .top5)
    }
}

/// What a zero-shot evaluation found: open_clip_train.zero_shot's top-1 / top-5 (fractions of N),
/// per-class accuracy, and each image's prediction.
public struct ZeroShotResult: Codable, Equatable {
    public let n: Int
    public let top1: Double
    public let top5: Double
    public let perClass: [ClassAccuracy]
    /// Top-1 class of each image (lowest index among exact ties), in dataset order.
    public let predictions: [Int]
    public let labels: [Int]

    enum CodingKeys: String, CodingKey { case n, top1, top5, perClass = "per_class", predictions, labels }
}

/// Zero-shot classification as open_clip evaluates it (`open_clip_train/zero_shot.py`): the
/// classifier of `open_clip.build_zero_shot_classifier` (see `ZeroShotClassifier`), then
/// `logits = 100 · image_features @ classifier` with L2-normalised image features — a fixed scale
/// of 100, not the model's logit scale (which cannot change the ranking anyway).
///
/// A training loop calls `evaluate(model:tokenizer:dataset:templates:batchSize:)` every N epochs;
/// a run that evaluates several times with one text tower builds the classifier once with
/// `classifier(...)` and passes it to `evaluate(model:classifier:dataset:batchSize:)`.
public enum ZeroShotEvaluation {
    /// open_clip's fixed logit scale in zero-shot evaluation.
    public static let logitScale: Float = 100

    public static func evaluate(model: CLIPModel, tokenizer: CLIPTokenizer, dataset: LabeledImageDataset, templates: [String],
                                batchSize: Int = 64, progress: ((Int, Int) -> Void)? = nil) throws -> ZeroShotResult {
        let c = try ZeroShotClassifier(model: model, tokenizer: tokenizer, classNames: dataset.classNames, templates: templates)
        return try evaluate(model: model, classifier: c, dataset: dataset, batchSize: batchSize, progress: progress)
    }

    /// Classifies every image of `dataset` in batches of `batchSize`; `progress(done, total)` after each.
    public static func evaluate(model: CLIPModel, classifier: ZeroShotClassifier, dataset: LabeledImageDataset,
                                batchSize: Int = 64, progress: ((Int, Int) -> Void)? = nil) throws -> ZeroShotResult {
        guard batchSize > 0 else { throw ZeroShotError.badArgument("batch size must be positive, got \(batchSize)") }
        guard classifier.classNames.count == dataset.classNames.count else {
            throw ZeroShotError.badArgument("classifier has \(classifier.classNames.count) classes, the dataset \(dataset.classNames.count)")
        }
        let preprocessor = Preprocessor(model: model.config)
        let n = dataset.count, classes = classifier.classNames.count, k = min(5, classes)
        var predictions: [Int] = [], labels: [Int] = []
        var correct = [Int](repeating: 0, count: classes), correct5 = correct, counts = correct
        predictions.reserveCapacity(n)
        let loader = preprocessor.batches(count: n, batchSize: batchSize) { try dataset.image(at: $0) }
        for start in stride(from: 0, to: n, by: batchSize) {
            let end = min(n, start + batchSize)
            let images = try loader.next()!
            let logits = try self.logits(imageFeatures: model.encodeImagePerThread(images, normalize: true), classifier: classifier)
            logits.withUnsafeBufferPointer { l in
                for r in 0..<(end - start) {
                    let row = Array(l[(r * classes)..<((r + 1) * classes)])
                    let top = topK(row, k)
                    let label = dataset.label(at: start + r)
                    predictions.append(top[0]); labels.append(label)
                    counts[label] += 1
                    if top[0] == label { correct[label] += 1 }
                    if top.contains(label) { correct5[label] += 1 }
                }
            }
            progress?(end, n)
        }
        let perClass = (0..<classes).map {
            ClassAccuracy(name: classifier.classNames[$0], count: counts[$0], correct: correct[$0], top5Correct: correct5[$0])
        }
        let total = max(n, 1)
        return ZeroShotResult(n: n, top1: Double(correct.reduce(0, +)) / Double(total),
                              top5: Double(correct5.reduce(0, +)) / Double(total), perClass: perClass,
                              predictions: predictions, labels: labels)
    }

    /// `100 · normalize(image_features) @ classifier` → [N, classes].
    public static func logits(imageFeatures: Tensor, classifier: ZeroShotClassifier) throws -> Tensor {
        try classifier.logits(imageFeatures: imageFeatures, scale: logitScale)
    }

    /// Indices of the k largest values, largest first; exact ties go to the lower index.
    static func topK(_ row: [Float], _ k: Int) -> [Int] {
        var best: [Int] = []
        for i in row.indices {
            var j = best.count
            while j > 0 && row[best[j - 1]] < row[i] { j -= 1 }
            if j < k { best.insert(i, at: j); if best.count > k { best.removeLast() } }
        }
        return best
    }

    /// The classifier, built once, or read from `cache` (a float32 .npy [embed_dim, classes], open_clip's
    /// layout) when the cache's sidecar `<cache>.json` records the same model, class names and
    /// templates; otherwise it is built and both files are (re)written. `model` identifies the text
    /// tower (e.g. name + weights path).
    public static func classifier(model: CLIPModel, tokenizer: CLIPTokenizer, classNames: [String], templates: [String],
                                  cache: URL?, modelIdentity: String) throws -> (classifier: ZeroShotClassifier, fromCache: Bool) {
        struct Key: Codable, Equatable { let model: String; let classnames: [String]; let templates: [String] }
        let key = Key(model: modelIdentity, classnames: classNames, templates: templates)
        let scale = Foundation.exp(model.logitScale)
        if let cache {
            let sidecar = URL(fileURLWithPath: cache.path + ".json")
            // An existing cache is rebuilt only when it is a valid cache of another model, names or
            // templates; anything else there (a corrupt cache, someone's other file) is an error.
            var stored: Key? = nil
            if FileManager.default.fileExists(atPath: sidecar.path) {
                let data = try InputFile.read(sidecar.path, maximumBytes: 64 << 20)
                do { stored = try JSONDecoder().decode(Key.self, from: data) } catch {
                    throw ClassifierCacheError(path: sidecar.path, reason: "not a classifier cache sidecar (\(error)); delete it and \(cache.path) to rebuild")
                }
            }
            if FileManager.default.fileExists(atPath: cache.path) {
                let w: Tensor
                do { w = try NPY.read(cache).floatTensor() } catch {
                    throw ClassifierCacheError(path: cache.path, reason: "unreadable classifier cache (\(error)); delete it to rebuild")
                }
                guard stored != nil else {
                    throw ClassifierCacheError(path: cache.path, reason: "exists without its sidecar \(sidecar.lastPathComponent); refusing to overwrite it")
                }
                if stored == key {
                    guard w.rank == 2, w.shape == [model.config.embedDim, classNames.count] else {
                        throw TensorError.shapeMismatch("\(cache.path): classifier of shape \(w.shape), expected [\(model.config.embedDim), \(classNames.count)]")
                    }
                    return (try ZeroShotClassifier(classNames: classNames, classEmbeddings: transpose(w), logitScale: scale), true)
                }
            }
            let c = try ZeroShotClassifier(model: model, tokenizer: tokenizer, classNames: classNames, templates: templates)
            try NPY.write(transpose(c.classEmbeddings), to: cache)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let json = try encoder.encode(key)
            try AtomicFileWriter.write(to: sidecar) { w in try json.withUnsafeBytes { try w.write($0) } }
            return (c, false)
        }
        return (try ZeroShotClassifier(model: model, tokenizer: tokenizer, classNames: classNames, templates: templates), false)
    }

    static func transpose(_ t: Tensor) -> Tensor {
        let (r, c) = (t.shape[0], t.shape[1])
        let out = Tensor(uninitializedShape: [c, r])
        for i in 0..<r { for j in 0..<c { out.storage.pointer[j * r + i] = t[flat: i * c + j] } }
        return out
    }
}

/// A `--classifier-cache` file that is there but cannot be used (never silently overwritten).
public struct ClassifierCacheError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let reason: String
    public var description: String { "\(path): \(reason)" }
}
