import CLIPData
import CLIPDetection
import CLIPEngine
import CLIPEvaluation
import CLIPModels
import CLIPTokenizer
import Foundation

/// The model, loaded once, behind two batching queues (images, texts). Decoding and preprocessing
/// run on the requests' own threads with a budget of one thread each, beside the forward pass,
/// which has the engine's pool.
final class InferenceService: @unchecked Sendable {
    let model: CLIPModel
    let tokenizer: CLIPTokenizer
    let preprocessor: Preprocessor
    let configuration: ServerConfiguration
    /// Preprocessed images [3, S, S] -> raw image features (open_clip's `encode_image`).
    private(set) var images: BatchQueue<Tensor, [Float]>!
    /// Token ids -> raw text features (open_clip's `encode_text`).
    private(set) var texts: BatchQueue<[Int], [Float]>!
    /// The index behind `/v1/search` (`--db`), if any.
    let search: SearchService?
    /// The open-vocabulary detector behind `/v1/detect` (`--detector`, on this model's backbone), if any.
    let detection: DetectionService?
    private let classifierLock = NSLock()
    private var classifiers: [String: ZeroShotClassifier] = [:]
    private var classifierOrder: [String] = []

    init(configuration c: ServerConfiguration, metrics: ServerMetrics) throws {
        configuration = c
        model = try CLIPModel(model: c.model, weightsURL: c.weights, seed: c.seed, precision: c.precision, inferenceOnly: true)
        guard model.config.text.vocabSize >= CLIPTokenizer.vocabularySize else {
            throw ServerConfigurationError(message: "\(model.config.source): text_cfg.vocab_size \(model.config.text.vocabSize) is smaller than the CLIP tokenizer's \(CLIPTokenizer.vocabularySize) tokens")
        }
        tokenizer = try CLIPTokenizer(vocabularyURL: c.vocabulary ?? CLIPTokenizer.defaultVocabularyURL())
        preprocessor = Preprocessor(model: model.config)
        search = try c.searchDatabase.map { try SearchService(database: $0, configuration: c) }
        let model = self.model, maxBatch = c.maxBatch, tokenizer = self.tokenizer
        detection = try c.detector.map { try DetectionService(model: model, tokenizer: tokenizer, head: $0, configuration: c, metrics: metrics) }
        images = BatchQueue(name: "image", maxBatch: c.maxBatch, maxWait: c.maxWait, capacity: c.queueCapacity,
                            onPass: { metrics.recordPass(queue: "image", batchSize: $0, depth: $1, seconds: $2) }) { items in
            // One pass of exactly the queued images (at most maxBatch): the engine's buffer cache
            // reuses a cached buffer up to 1.5× a request's size, so a pass of a new size takes the
            // buffers of a neighbouring one instead of faulting in fresh memory, and no pass computes
            // padding rows (the power-of-two padding this replaced computed up to 2× the images).
            // Two or more images: one pass per image per thread (`onePassPerThread`).
            try stride(from: 0, to: items.count, by: maxBatch).flatMap { start in
                Self.rows(try model.encodeImagePerThread(Self.stack(Array(items[start..<min(items.count, start + maxBatch)]))))
            }
        }
        texts = BatchQueue(name: "text", maxBatch: c.maxBatch, maxWait: c.maxWait, capacity: c.queueCapacity,
                           onPass: { metrics.recordPass(queue: "text", batchSize: $0, depth: $1, seconds: $2) }) { items in
            var rows: [[Float]] = []
            for part in Self.passes(items.count, maxBatch: maxBatch) { rows += Self.rows(try model.encodeText(Array(items[part]))) }
            return rows
        }
    }

    /// One image and one text pass, so the first request pays no first-touch costs.
    func warmUp() throws {
        let size = model.config.vision.imageSize
        _ = try model.encodeImage(Tensor(zeros: [1, 3, size, size]))
        _ = try model.encodeText(tokenizer.tokenize(["a photo"], contextLength: model.config.text.contextLength).map { $0.map(Int.init) })
    }

    /// Decodes (JPEG or PNG; dimensions checked from the header first, against --max-image-pixels
    /// and the decoders' limits) and preprocesses one image
    /// on the calling thread.
    func preprocess(_ data: Data, name: String) throws -> Tensor {
        try configuration.checkImagePixels(data, name: name)
        return try Parallel.withThreads(1) { preprocessor(try ImageDecoder.decodeImage(data, name: name)) }
    }

    /// Raw image features, one row per image, each request's rows from the shared passes.
    func embedImages(_ datas: [(data: Data, name: String)], deadline: ContinuousClock.Instant) async throws -> [[Float]] {
        let pixels = try datas.map { try preprocess($0.data, name: $0.name) }
        return try await images.submit(pixels, deadline: deadline)
    }

    /// Raw text features, tokenised as `open_clip.tokenize` does.
    func embedTexts(_ strings: [String], deadline: ContinuousClock.Instant) async throws -> [[Float]] {
        let ids = tokenizer.tokenize(strings, contextLength: model.config.text.contextLength).map { $0.map(Int.init) }
        return try await texts.submit(ids, deadline: deadline)
    }

    /// Zero-shot classification as `swiftclip classify` does it (`ZeroShotClassifier` over the raw
    /// image features): labels sorted by probability. Classifiers are kept for the last 32 label sets.
    func classify(image: Data, labels: [String], templates: [String], deadline: ContinuousClock.Instant) async throws
        -> [(label: String, probability: Float)] {
        let classifier = try classifier(labels: labels, templates: templates)
        let features = try await embedImages([(image, "image")], deadline: deadline)[0]
        let probabilities = try classifier.probabilities(imageFeatures: Tensor(shape: [1, features.count], data: features))[0]
        return zip(labels, probabilities).map { (label: $0, probability: $1) }.sorted { $0.probability > $1.probability }
    }

    private func classifier(labels: [String], templates: [String]) throws -> ZeroShotClassifier {
        let key = labels.joined(separator: "\u{1}") + "\u{2}" + templates.joined(separator: "\u{1}")
        if let cached = classifierLock.withLock({ classifiers[key] }) { return cached }
        let built = try Parallel.withThreads(1) {
            try ZeroShotClassifier(model: model, tokenizer: tokenizer, classNames: labels, templates: templates)
        }
        classifierLock.withLock {
            if classifiers[key] == nil { classifierOrder.append(key) }
            classifiers[key] = built
            if classifierOrder.count > 32 { classifiers[classifierOrder.removeFirst()] = nil }
        }
        return built
    }

    func stop() { images.stop(); texts.stop(); detection?.queue.stop() }

    /// The forward passes for `count` texts: power-of-two sizes up to `maxBatch` (14 = 8 + 4 + 2), so
    /// that the text tower's small buffers (under 1 MB up to batch 8, which the engine reuses by
    /// exact size only) come back for the same few sizes.
    static func passes(_ count: Int, maxBatch: Int) -> [Range<Int>] {
        var out: [Range<Int>] = [], start = 0
        var size = 1
        while size * 2 <= maxBatch { size *= 2 }
        while start < count {
            while size > count - start { size /= 2 }
            out.append(start..<(start + size))
            start += size
        }
        return out
    }

    /// [N, 3, S, S]: the N tensors [3, S, S] one after another.
    static func stack(_ parts: [Tensor]) -> Tensor {
        let sample = parts[0].count
        let out = Tensor(uninitializedShape: [parts.count] + parts[0].shape)
        for (i, p) in parts.enumerated() {
            p.withUnsafeBufferPointer { src in (out.storage.pointer + i * sample).update(from: src.baseAddress!, count: sample) }
        }
        return out
    }

    static func rows(_ t: Tensor) -> [[Float]] {
        let width = t.shape.last ?? 0
        return t.withUnsafeBufferPointer { values in
            (0..<(t.shape.first ?? 0)).map { Array(values[($0 * width)..<(($0 + 1) * width)]) }
        }
    }
}
