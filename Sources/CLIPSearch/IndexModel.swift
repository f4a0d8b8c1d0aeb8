import CLIPData
import CLIPEngine
import CLIPEvaluation
import CLIPModels
import CLIPNN
import CLIPTokenizer
import Foundation

/// The model that fills (or queries) one slot of an index: a `CLIPModel`, its eval transform and
/// tokenizer, and the `ModelIdentity` that says which vectors it may be compared with.
public final class IndexModel: @unchecked Sendable {
    public let identity: ModelIdentity
    public let model: CLIPModel
    public let preprocessor: Preprocessor
    private let vocabulary: URL?
    private var tokenizer: CLIPTokenizer?
    private let lock = NSLock()

    /// Loads a built-in name or JSON config, with safetensors weights or random ones from `seed`.
    public convenience init(model nameOrPath: String, weights: String?, seed: UInt64 = 0, precision: Precision = .fp32,
                            vocabulary: URL? = nil) throws {
        let identity = try Self.identity(model: nameOrPath, weights: weights, seed: seed, precision: precision)
        try self.init(identity: identity, vocabulary: vocabulary)
    }

    /// Loads the model an index recorded, checking that its files still give the recorded digest.
    public init(identity: ModelIdentity, vocabulary: URL? = nil) throws {
        guard let precision = Precision(rawValue: identity.precision) else {
            throw SearchError.noModel("the index records precision '\(identity.precision)', which this swiftclip does not know")
        }
        let now = try Self.identity(model: identity.config, weights: identity.weights, seed: identity.seed, precision: precision)
        guard now.digest == identity.digest else {
            throw SearchError.modelMismatch("the model files \(identity.config)\(identity.weights.map { " + \($0)" } ?? "") changed since "
                                            + "the index was made (digest \(now.digest.prefix(12)) != \(identity.digest.prefix(12))); "
                                            + "give --model/--weights of the model that made it, or index again")
        }
        self.identity = identity
        model = try CLIPModel(model: identity.config, weightsURL: identity.weights.map { URL(fileURLWithPath: $0) }, seed: identity.seed,
                              precision: precision, inferenceOnly: true)
        preprocessor = Preprocessor(model: model.config)
        self.vocabulary = vocabulary
    }

    /// What the model would record, without building it: the parsed config, the weights' sampled
    /// content hash (or the seed), the eval transform, the precision and the dimension.
    public static func identity(model nameOrPath: String, weights: String?, seed: UInt64, precision: Precision) throws -> ModelIdentity {
        var config = try ModelRegistry.config(named: nameOrPath)
        config.source = ""
        let configName = ModelRegistry.builtIn[nameOrPath] != nil ? nameOrPath : URL(fileURLWithPath: nameOrPath).standardizedFileURL.path
        let weightsPath = weights.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
        let preprocessing = describe(Preprocessor(model: config))
        var hasher = ContentHasher()
        hasher.update(String(describing: config))
        if let weightsPath { hasher.update("weights " + (try FileHash.weights(path: weightsPath))) } else { hasher.update("seed \(seed)") }
        hasher.update(preprocessing)
        hasher.update(precision.rawValue)
        hasher.update("\(config.embedDim)")
        return ModelIdentity(config: configName, weights: weightsPath, seed: weightsPath == nil ? seed : 0, precision: precision.rawValue,
                             preprocessing: preprocessing, dimension: config.embedDim, digest: hasher.finish())
    }

    /// The eval transform as the index records it (and hashes into the model's digest). A model
    /// with open_clip's default `preprocess_cfg` gets the text indexes have always recorded.
    static func describe(_ p: Preprocessor) -> String {
        let fit: String
        switch p.resizeMode {
        case .shortest: fit = "resize-shortest-\(p.interpolation.rawValue)-centercrop"
        case .longest: fit = "resize-longest-\(p.interpolation.rawValue)-pad\(p.fillColor)"
        case .squash: fit = "resize-squash-\(p.interpolation.rawValue)"
        }
        return "\(fit) \(p.imageSize) mean \(p.mean.0),\(p.mean.1),\(p.mean.2) std \(p.std.0),\(p.std.1),\(p.std.2)"
    }

    /// Unit text embeddings, one per text.
    public func embed(texts: [String]) throws -> [[Float]] {
        guard model.config.text.vocabSize >= CLIPTokenizer.vocabularySize else {
            throw SearchError.noModel("\(identity.config): text_cfg.vocab_size \(model.config.text.vocabSize) is smaller than the CLIP tokenizer's")
        }
        let tok: CLIPTokenizer = try lock.withLock {
            if let tokenizer { return tokenizer }
            let t = try CLIPTokenizer(vocabularyURL: vocabulary ?? CLIPTokenizer.defaultVocabularyURL())
            tokenizer = t
            return t
        }
        let rows = tok.tokenize(texts, contextLength: model.config.text.contextLength).map { $0.map(Int.init) }
        return try unitRows(model.encodeText(rows, normalize: true))
    }

    /// Unit image embeddings of files (JPEG or PNG), in the given order, each file decoded and
    /// embedded whole on one thread (`CLIPModel.embedImageFiles`).
    public func embed(files paths: [String]) throws -> FileEmbeddings {
        try model.embedImageFiles(paths, preprocessor: preprocessor, normalize: true)
    }

    /// Throws `InsufficientMemory` when `embed(files:)` needs more memory than is available.
    public func requireFileEmbeddingMemory() throws {
        try model.requireFileEmbeddingMemory()
    }

    /// Unit image embedding of one file (JPEG or PNG).
    /// Decoded as `embed(files:)` decodes (in the mode Pillow opens it in), so that a query by an
    /// indexed file finds that file's own vector.
    public func embed(imageAt path: String) throws -> [Float] {
        let embedded = try embed(files: [path])
        if let failure = embedded.failures.first { throw failure.error }
        return embedded.vectors[0]
    }

    private func unitRows(_ t: Tensor) -> [[Float]] {
        let n = t.shape[0], d = t.shape[1]
        let all = t.scalars
        return (0..<n).map { Array(all[$0 * d..<($0 + 1) * d]) }
    }
}
