import CLIPEngine
import CLIPModels
import CLIPTokenizer
import Foundation

public enum ZeroShotError: Error, CustomStringConvertible {
    case noClasses
    case badTemplate(String)
    case badArgument(String)

    public var description: String {
        switch self {
        case .noClasses: return "zero-shot classification needs at least one class name"
        case .badTemplate(let t): return "template '\(t)' has no '{}' where the class name goes"
        case .badArgument(let m): return m
        }
    }
}

/// open_clip's zero-shot classifier: for each class, every template filled with the class name is
/// encoded and L2-normalised, the embeddings are averaged and normalised again. Logits are
/// `exp(logit_scale) · cos(image, class)`.
public struct ZeroShotClassifier {
    public let classNames: [String]
    /// [classes, embed_dim], rows unit-norm.
    public let classEmbeddings: Tensor
    public let logitScale: Float

    public init(model: CLIPModel, tokenizer: CLIPTokenizer, classNames: [String], templates: [String]) throws {
        guard !classNames.isEmpty else { throw ZeroShotError.noClasses }
        for t in templates where !t.contains("{}") { throw ZeroShotError.badTemplate(t) }
        let templates = templates.isEmpty ? ["{}"] : templates
        let dim = model.config.embedDim
        var rows = Tensor(uninitializedShape: [classNames.count, dim])
        for (c, name) in classNames.enumerated() {
            let texts = templates.map { $0.replacingOccurrences(of: "{}", with: name) }
            let ids = tokenizer.tokenize(texts, contextLength: model.config.text.contextLength).map { $0.map(Int.init) }
            let embeddings = try model.encodeText(ids, normalize: true)
            var mean = [Float](repeating: 0, count: dim)
            for t in 0..<texts.count { for d in 0..<dim { mean[d] += embeddings[flat: t * dim + d] } }
            let norm = max(mean.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
            rows.withUnsafeMutableBufferPointer { buf in for d in 0..<dim { buf[c * dim + d] = mean[d] / norm } }
        }
        self.classNames = classNames
        self.classEmbeddings = rows
        self.logitScale = Foundation.exp(model.logitScale)
    }

    /// A classifier from precomputed class embeddings [classes, embed_dim] (rows unit-norm).
    public init(classNames: [String], classEmbeddings: Tensor, logitScale: Float) throws {
        guard !classNames.isEmpty else { throw ZeroShotError.noClasses }
        guard classEmbeddings.rank == 2, classEmbeddings.shape[0] == classNames.count else {
            throw TensorError.shapeMismatch("class embeddings \(classEmbeddings.shape) for \(classNames.count) classes")
        }
        self.classNames = classNames
        self.classEmbeddings = classEmbeddings
        self.logitScale = logitScale
    }

    /// `scale · normalize(image_features) @ classEmbeddingsᵀ` -> [N, classes] (one GEMM).
    public func logits(imageFeatures: Tensor, scale: Float) throws -> Tensor {
        let dim = classEmbeddings.shape[1], classes = classNames.count
        guard imageFeatures.rank == 2, imageFeatures.shape[1] == dim else {
            throw TensorError.shapeMismatch("image features \(imageFeatures.shape) for class embeddings of width \(dim)")
        }
        let n = imageFeatures.shape[0]
        let scaled = Ops.mul(Ops.l2Normalize(imageFeatures), scalar: scale)
        let out = Tensor(uninitializedShape: [n, classes])
        sgemm(transB: true, m: n, n: classes, k: dim, a: scaled.storage.pointer, lda: dim,
              b: classEmbeddings.storage.pointer, ldb: dim, c: out.storage.pointer, ldc: classes)
        return out
    }

    /// Softmax over classes of `exp(logit_scale) · cos` for image features [N, embed_dim] -> [N][classes].
    public func probabilities(imageFeatures: Tensor) throws -> [[Float]] {
        let probabilities = Ops.softmax(try logits(imageFeatures: imageFeatures, scale: logitScale))
        let classes = classNames.count
        return (0..<imageFeatures.shape[0]).map { i in (0..<classes).map { probabilities[flat: i * classes + $0] } }
    }
}
