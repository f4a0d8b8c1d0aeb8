import CLIPData
import CLIPEngine
import CLIPModels
import Foundation

/// What `CLIPModel.embedImageFiles` made of its files: the embeddings of those that decoded (in
/// the given order) and the reasons the others did not.
public struct FileEmbeddings {
    public var loaded: [String] = []
    public var vectors: [[Float]] = []
    public var failures: [(path: String, error: Error)] = []

    /// The vectors as one [loaded.count, dim] tensor; nil when no file decoded.
    public func rows() throws -> Tensor? {
        guard let dim = vectors.first?.count else { return nil }
        return try Tensor(shape: [vectors.count, dim], data: vectors.flatMap { $0 })
    }
}

extension CLIPModel {
    /// Image embeddings of files (JPEG or PNG), in the given order: what `index`, `embed-image`
    /// and `classify` run. Each file is read, decoded (in the mode Pillow opens it in),
    /// preprocessed and embedded whole on one thread, the threads claiming files as they finish:
    /// nothing waits for a batch's decoding, the cores are not shared between decoder and model
    /// threads, and memory holds one image and one forward pass per thread (measured: docs/search.md,
    /// "One thread per file"). One file gets every thread (latency). A file that does not decode
    /// is returned with the reason; an error of the model itself is thrown.
    public func embedImageFiles(_ paths: [String], preprocessor: Preprocessor, normalize: Bool) throws -> FileEmbeddings {
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
                let vector = try self.encodeImage(pixels, normalize: normalize).scalars
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

    /// Throws `InsufficientMemory` when `embedImageFiles` — one image's pixels and one forward
    /// pass per thread of the current budget — needs more memory than is available.
    public func requireFileEmbeddingMemory() throws {
        try config.requireImageEmbeddingMemory(batch: Parallel.budget)
    }
}
