// `import SwiftCLIP`: every layer (engine, nn, models, tokenizer, data, evaluation, export) and a
// small high-level API for Swift programs that want CLIP embeddings and zero-shot classification
// without knowing the layers.
@_exported import CLIPEngine
@_exported import CLIPNN
@_exported import CLIPModels
@_exported import CLIPTokenizer
@_exported import CLIPData
@_exported import CLIPEvaluation
@_exported import CLIPExport
@_exported import CLIPDetection
import Foundation

/// A CLIP model with its tokenizer and open_clip's eval preprocessing:
///
///     let clip = try CLIP(model: "convnext_v2_tiny", weights: URL(fileURLWithPath: "model.safetensors"))
///     // or, half the weight memory and faster on AVX512_BF16 CPUs: CLIP(model: …, weights: …, precision: .bf16)
///     let image = try clip.embedImage(at: URL(fileURLWithPath: "cat.jpg"))
///     let texts = try clip.embedTexts(["a photo of a cat", "a photo of a dog"])
///     print(CLIP.cosineSimilarity(image, texts[0]))
///     print(try clip.classify(imageAt: URL(fileURLWithPath: "cat.jpg"), labels: ["cat", "dog"]))
///
/// Embeddings are L2-normalised (`normalize: false` gives open_clip's raw `encode_*` output).
/// A `CLIP` may be used from several threads at once.
public final class CLIP: @unchecked Sendable {
    public let model: CLIPModel
    public let tokenizer: CLIPTokenizer
    public let preprocessor: Preprocessor

    /// - Parameters:
    ///   - model: a built-in name (`convnext_v2_tiny`, `ViT-B-32`, …) or the path of an open_clip JSON config.
    ///   - weights: open_clip weights (keys as `model.state_dict()`): safetensors or a torch `.bin`/`.pt`/`.pth`, told apart by content (`WeightFiles.open`); nil initialises from `seed`.
    ///   - vocabulary: `bpe_simple_vocab_16e6.txt.gz`; nil looks in `$SWIFTCLIP_VOCAB`, `assets/`, `~/.cache/swiftclip/`.
    ///   - precision: `.bf16` or `.int8` store the GEMM weights in that format and multiply in it
    ///     (half / a quarter of the weight bytes, faster on CPUs with AVX512_BF16 / VNNI; docs/precision.md).
    public init(model: String, weights: URL? = nil, vocabulary: URL? = nil, seed: UInt64 = 0, precision: Precision = .fp32) throws {
        self.model = try CLIPModel(model: model, weightsURL: weights, seed: seed, precision: precision, inferenceOnly: true)
        self.tokenizer = try CLIPTokenizer(vocabularyURL: vocabulary ?? CLIPTokenizer.defaultVocabularyURL())
        self.preprocessor = Preprocessor(model: self.model.config)
    }

    /// The embedding of an image file (JPEG or PNG).
    public func embedImage(at url: URL, normalize: Bool = true) throws -> [Float] {
        try embedImages(at: [url], normalize: normalize)[0]
    }

    /// Embeddings of image files, in order, each decoded and embedded whole on one thread
    /// (`CLIPModel.embedImageFiles`: memory for one image per thread, whatever the count); the
    /// first unreadable file throws, naming it.
    public func embedImages(at urls: [URL], normalize: Bool = true) throws -> [[Float]] {
        let embedded = try model.embedImageFiles(urls.map(\.path), preprocessor: preprocessor, normalize: normalize)
        if let failure = embedded.failures.first { throw failure.error }
        return embedded.vectors
    }

    /// The embedding of an RGB image: `width · height · 3` bytes, row-major, R G B per pixel.
    public func embedImage(rgb pixels: [UInt8], width: Int, height: Int, normalize: Bool = true) throws -> [Float] {
        guard width > 0, height > 0, pixels.count == width * height * 3 else {
            throw TensorError.invalidArgument("RGB image of \(width)×\(height) needs \(max(width, 0) * max(height, 0) * 3) bytes, got \(pixels.count)")
        }
        return try embed(images: [RGBImage(width: width, height: height, pixels: pixels)], normalize: normalize)[0]
    }

    /// Embeddings of decoded images (RGB, or `DecodedImage` in the mode Pillow opened them in), in order.
    public func embed<Image: PreprocessorInput>(images: [Image], normalize: Bool = true) throws -> [[Float]] {
        guard !images.isEmpty else { return [] }
        let batch = try preprocessor.batch(count: images.count) { images[$0] }
        return rows(try model.encodeImagePerThread(batch, normalize: normalize))
    }

    public func embedText(_ text: String, normalize: Bool = true) throws -> [Float] {
        try embedTexts([text], normalize: normalize)[0]
    }

    /// Embeddings of texts, tokenised as `open_clip.tokenize` does (truncated to the context length).
    public func embedTexts(_ texts: [String], normalize: Bool = true) throws -> [[Float]] {
        guard !texts.isEmpty else { return [] }
        let ids = tokenizer.tokenize(texts, contextLength: model.config.text.contextLength).map { $0.map(Int.init) }
        return rows(try model.encodeText(ids, normalize: normalize))
    }

    /// Zero-shot classification as open_clip does it: each label in each template, embeddings
    /// averaged per label; softmax of `exp(logit_scale) · cos`. Labels sorted by probability.
    public func classify(imageAt url: URL, labels: [String], templates: [String] = ["a photo of a {}."]) throws
        -> [(label: String, probability: Float)] {
        let classifier = try ZeroShotClassifier(model: model, tokenizer: tokenizer, classNames: labels, templates: templates)
        let image = try preprocessor.batch(count: 1) { _ in try ImageDecoder.decodeImage(contentsOf: url) }
        let probabilities = try classifier.probabilities(imageFeatures: model.encodeImage(image))[0]
        return zip(labels, probabilities).map { (label: $0, probability: $1) }.sorted { $0.probability > $1.probability }
    }

    /// cos(a, b); 0 when either is the zero vector.
    public static func cosineSimilarity(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count, "cosineSimilarity of vectors of \(a.count) and \(b.count) values")
        var dot = 0.0, na = 0.0, nb = 0.0
        for i in a.indices { dot += Double(a[i]) * Double(b[i]); na += Double(a[i]) * Double(a[i]); nb += Double(b[i]) * Double(b[i]) }
        return na == 0 || nb == 0 ? 0 : Float(dot / (na * nb).squareRoot())
    }

    private func rows(_ t: Tensor) -> [[Float]] {
        let width = t.shape.last ?? 0
        let values = t.scalars
        return (0..<(t.shape.first ?? 0)).map { Array(values[($0 * width)..<(($0 + 1) * width)]) }
    }
}

extension CLIP {
    /// Open-vocabulary detection with a box head trained by `swiftclip train-detector` on this
    /// model's (ConvNeXt) image tower:
    ///
    ///     let detector = try clip.detector(head: URL(fileURLWithPath: "det.safetensors"))
    ///     let found = try detector.detect(try ImageDecoder.decode(contentsOf: url), labels: ["red circle", "blue square"])
    ///     // [Detection(score:, label:, box: (xmin, ymin, xmax, ymax))], best first
    public func detector(head url: URL) throws -> OpenVocabularyDetector {
        try OpenVocabularyDetector(model: model, head: BoxHead.load(url), tokenizer: tokenizer)
    }
}
