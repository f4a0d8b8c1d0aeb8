import CLIPData
import CLIPEngine
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
        preprocessor = Preprocessor(imageSize: model.config.vision.imageSize)
        self.vocabulary = vocabulary
    }

    /// What the model would record, without building it: the parsed config, the weights' sampled
    /// content hash (or the seed), the eval transform, the precision and the dimension.
    public static func identity(model nameOrPath: String, weights: String?, seed: UInt64, precision: Precision) throws -> ModelIdentity {
        var config = try ModelRegistry.config(named: nameOrPath)
        config.source = ""
        let configName = ModelRegistry.builtIn[nameOrPath] != nil ? nameOrPath : URL(fileURLWithPath: nameOrPath).standardizedFileURL.path
        let weightsPath = weights.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
        let size = config.vision.imageSize
        let mean = Preprocessor.openAIMean, std = Preprocessor.openAIStd
        let preprocessing = "resize-shortest-bicubic-centercrop \(size) mean \(mean.0),\(mean.1),\(mean.2) std \(std.0),\(std.1),\(std.2)"
        var hasher = ContentHasher()
        hasher.update(String(describing: config))
        if let weightsPath { hasher.update("weights " + (try FileHash.weights(path: weightsPath))) } else { hasher.update("seed \(seed)") }
        hasher.update(preprocessing)
        hasher.update(precision.rawValue)
        hasher.update("\(config.embedDim)")
        return ModelIdentity(config: configName, weights: weightsPath, seed: weightsPath == nil ? seed : 0, precision: precision.rawValue,
                             preprocessing: preprocessing, dimension: config.embedDim, digest: hasher.finish())
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

    /// Unit image embeddings of files (JPEG or PNG), in the given order. Each file is read,
    /// decoded, preprocessed and embedded whole on one thread, the threads claiming files as they
    /// finish: nothing waits for a batch's decoding, and the cores are not shared between decoder
    /// and model threads (measured: docs/search.md, "One thread per file"). One file gets every thread
    /// (latency). A file that does not decode is returned with the reason; an error of the model
    /// itself is thrown.
    public func embed(files paths: [String]) throws -> FileEmbeddings {
        final class Slots: @unchecked Sendable {
            let lock = NSLock()
            var results: [Result<[Float], Error>?]
            var modelError: Error?
            init(_ n: Int) { results = Array(repeating: nil, count: n) }
        }
        let slots = Slots(paths.count), size = preprocessor.imageSize
        Parallel.run(paths.count, threads: min(Parallel.budget, paths.count)) { i in
            let pixels: Tensor
            do {
                let image = try ImageDecoder.decodeImage(contentsOf: URL(fileURLWithPath: paths[i]))
                pixels = try preprocessor(image).reshaped([1, 3, size, size])
            } catch {
                slots.lock.withLock { slots.results[i] = .failure(error) }
                return
            }
            do {
                let vector = try model.encodeImage(pixels, normalize: true).scalars
                slots.lock.withLock { slots.results[i] = .success(vector) }
            } catch {
                slots.lock.withLock { if slots.modelError == nil { slots.modelError = error } }
            }
        }
        if let error = slots.modelError { throw error }
        var embedded = FileEmbeddings()
        for (path, result) in zip(paths, slots.results) {
            switch result {
            case .success(let vector)?: embedded.loaded.append(path); embedded.vectors.append(vector)
            case .failure(let error)?: embedded.failures.append((path, error))
            case nil: break
            }
        }
        return embedded
    }

    /// Throws `InsufficientMemory` when `embed(files:)` — one image's pixels and one forward pass
    /// per thread of the current budget — needs more memory than is available.
    public func requireFileEmbeddingMemory() throws {
        try model.config.requireImageEmbeddingMemory(batch: Parallel.budget)
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

/// What `IndexModel.embed(files:)` made of its files: the unit vectors of those that decoded (in
/// the given order) and the reasons the others did not.
public struct FileEmbeddings {
    public var loaded: [String] = []
    public var vectors: [[Float]] = []
    public var failures: [(path: String, error: Error)] = []
}
