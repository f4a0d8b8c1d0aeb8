import CLIPEngine
import Foundation

/// An image index: files under one or more folders, each with a unit embedding per model slot,
/// searchable by text, image, weighted terms or a vector. Open it with `SearchIndex.open("photos.sqlite")`
/// (or a `postgresql://` URL), fill it with `update(roots:model:)`, query it with
/// `search(_:model:options:)`. Safe to share between threads; several processes may read while one
/// writes (SQLite WAL), or index into one database together (PostgreSQL).
public final class SearchIndex: @unchecked Sendable {
    public let location: IndexLocation
    package let store: any IndexStore
    /// Keep each searched slot's vectors in memory between searches (a server), reloading them when
    /// another process has committed to the index since. Only for a read-only SQLite index (the
    /// only store that can tell); memory: 4 × dimension bytes per vector. Off: every search streams
    /// the vectors from the store in bounded chunks (a one-shot `swiftclip search`).
    public var keepsVectorsInMemory = false
    private let memoryLock = NSLock()
    private var inMemory: [Int64: (token: Int64, matrix: VectorMatrix)] = [:]

    /// Opens (creating when writable and absent) the SQLite index at a file path or `sqlite:PATH`.
    /// A `postgresql://` URL needs the `CLIPSearchPostgres` library: `IndexDatabase.open` there opens both.
    public static func open(_ location: String, readOnly: Bool = false) throws -> SearchIndex {
        try SearchIndex(location: IndexLocation(parsing: location), readOnly: readOnly)
    }

    public convenience init(location: IndexLocation, readOnly: Bool = false) throws {
        switch location {
        case .sqlite(let path): self.init(location: location, store: try SQLiteStore(path: path, readOnly: readOnly))
        case .postgres(let url):
            throw SearchError.unsupported("\(url): PostgreSQL indexes are opened by the CLIPSearchPostgres library "
                                          + "(product SwiftCLIPSearchPostgres: `IndexDatabase.open`); `swiftclip` includes it")
        }
    }

    package init(location: IndexLocation, store: any IndexStore) {
        self.location = location
        self.store = store
    }

    // MARK: what is in it

    public func status(failureLimit: Int = 20) throws -> IndexStatus {
        try store.status(failureLimit: failureLimit)
    }

    public func slots() throws -> [ModelSlot] { try store.slots() }

    /// The slot a search uses when no model is named: the newest complete one, else the newest.
    public func defaultSlot() throws -> ModelSlot {
        let all = try slots()
        if let done = all.last(where: { $0.completedAt != nil }) { return done }
        guard let newest = all.last else {
            throw SearchError.noModel("\(location): the index holds no vectors yet; run `swiftclip index` first")
        }
        return newest
    }

    /// The slot of `model`, or a clear error listing the slots there are.
    public func slot(for model: ModelIdentity) throws -> ModelSlot {
        let all = try slots()
        if let s = all.first(where: { $0.model.digest == model.digest }) { return s }
        let have = all.map { "\($0.model.config)\($0.model.weights.map { " + " + $0 } ?? "") \($0.model.precision) (digest \($0.model.digest.prefix(12)))" }
        throw SearchError.modelMismatch("\(location) has no vectors from this model (\(model.config)\(model.weights.map { " + " + $0 } ?? "") "
                                        + "\(model.precision), digest \(model.digest.prefix(12))); it holds: "
                                        + (have.isEmpty ? "nothing" : have.joined(separator: "; "))
                                        + ". Search with the model that made it, or index with this one first")
    }

    /// The model of the default slot, loaded from the config and weights paths it recorded.
    public func loadModel(vocabulary: URL? = nil) throws -> IndexModel {
        try IndexModel(identity: defaultSlot().model, vocabulary: vocabulary)
    }

    /// The path of a live file by id (e.g. to serve the image of a result), or nil.
    public func imagePath(id: Int64) throws -> String? { try store.path(id: id) }

    // MARK: search

    /// The weighted, normalised sum of the terms' unit embeddings. An image term whose file is in
    /// the index reuses its stored vector.
    public func queryVector(_ terms: [QueryTerm], model: IndexModel) throws -> [Float] {
        let dim = model.identity.dimension
        var sum = [Float](repeating: 0, count: dim)
        func add(_ v: [Float], _ w: Float) throws {
            guard v.count == dim else { throw SearchError.badQuery("vector", "has \(v.count) values, the index's model has \(dim)") }
            let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
            guard norm > 0, norm.isFinite else { throw SearchError.badQuery("vector", "is zero or not finite") }
            for i in 0..<dim { sum[i] += w * v[i] / norm }
        }
        let texts = terms.compactMap { if case .text(let t) = $0.content { return t } else { return nil } }
        var textVectors = try ArraySlice(texts.isEmpty ? [] : model.embed(texts: texts))
        let ownSlot = try? self.slot(for: model.identity)
        for term in terms {
            switch term.content {
            case .text: try add(textVectors.removeFirst(), term.weight)
            case .vector(let v): try add(v, term.weight)
            case .image(let path):
                let stored = try ownSlot.flatMap { try store.vector(path: IndexPaths.canonical(path), slot: $0.id) }
                do { try add(try stored ?? model.embed(imageAt: path), term.weight) } catch let e as SearchError { throw e } catch {
                    throw SearchError.badQuery("image:\(path)", "\(error)")
                }
            }
        }
        let norm = sum.reduce(0) { $0 + $1 * $1 }.squareRoot()
        guard norm > 1e-12, norm.isFinite else { throw SearchError.badQuery(terms.count == 1 ? "query" : "\(terms.count) terms", "the weighted terms cancel out") }
        return sum.map { $0 / norm }
    }

    /// Search by terms (texts, images, vectors with weights) with the model that made the slot.
    public func search(_ terms: [QueryTerm], model: IndexModel, options: SearchOptions = SearchOptions()) throws -> [SearchResult] {
        let slot = try self.slot(for: model.identity)
        return try search(vector: queryVector(terms, model: model), slot: slot, options: options)
    }

    /// Search by text.
    public func search(text: String, model: IndexModel, options: SearchOptions = SearchOptions()) throws -> [SearchResult] {
        try search([QueryTerm(.text(text))], model: model, options: options)
    }

    /// Search of a slot by a unit query vector. Exact: one GEMM per chunk of stored vectors, a heap
    /// of the best `options.top`; memory: one chunk (64k vectors) whatever the index's size. On
    /// PostgreSQL a slot with an HNSW index and at least `exact_below` vectors is searched through
    /// the index (approximate; `options.efSearch`) unless `options.under` is set.
    public func search(vector: [Float], slot: ModelSlot, options: SearchOptions = SearchOptions()) throws -> [SearchResult] {
        try Self.check(options)
        guard vector.count == slot.model.dimension else {
            throw SearchError.badQuery("vector", "has \(vector.count) values, the slot's model has \(slot.model.dimension)")
        }
        if let hits = try store.nearest(vector: vector, slot: slot, options: options) { return try results(hits) }
        if keepsVectorsInMemory, options.under == nil, let matrix = try vectorsInMemory(slot: slot) {
            return try results(try matrix.search(vector, top: options.top, minScore: options.minScore))
        }
        var top = TopK(k: options.top, minScore: options.minScore)
        var scratch: [Float] = []
        let chunkRows = max(1024, min(65_536, (64 << 20) / (4 * max(1, vector.count))))
        try store.forEachChunk(slot: slot.id, dimension: slot.model.dimension, under: options.under.map(IndexPaths.canonical),
                               chunkRows: chunkRows) { ids, vectors in
            ExactSearch.score(vectors, ids: ids[...], query: vector, into: &top, scratch: &scratch)
        }
        return try results(top.sorted())
    }

    /// The slot's vectors as last loaded, or loaded again if the index changed since; nil when the
    /// store cannot tell whether it changed.
    private func vectorsInMemory(slot: ModelSlot) throws -> VectorMatrix? {
        memoryLock.lock(); defer { memoryLock.unlock() }
        guard let token = try store.changeToken() else { return nil }
        if let kept = inMemory[slot.id], kept.token == token { return kept.matrix }
        inMemory[slot.id] = nil // let the old copy go before the new one is read
        let matrix = try loadVectors(slot: slot)
        inMemory[slot.id] = (token, matrix)
        return matrix
    }

    /// All of a slot's vectors in memory, for a process that searches many times (`search(vector:in:)`).
    public func loadVectors(slot: ModelSlot) throws -> VectorMatrix {
        var ids: [Int64] = [], values: [Float] = []
        try store.forEachChunk(slot: slot.id, dimension: slot.model.dimension, under: nil, chunkRows: 16_384) { i, v in
            ids += i; values += v
        }
        return try VectorMatrix(ids: ids, dimension: slot.model.dimension, values: values)
    }

    /// Exact search of vectors already in memory; paths are looked up for the results only.
    public func search(vector: [Float], in matrix: VectorMatrix, options: SearchOptions = SearchOptions()) throws -> [SearchResult] {
        try Self.check(options)
        guard vector.count == matrix.dimension else {
            throw SearchError.badQuery("vector", "has \(vector.count) values, the index's model has \(matrix.dimension)")
        }
        if options.under != nil {
            throw SearchError.badOption("--under is not supported on vectors held in memory; search the index instead")
        }
        return try results(try matrix.search(vector, top: options.top, minScore: options.minScore))
    }

    static func check(_ options: SearchOptions) throws {
        guard options.top > 0 else { throw SearchError.badOption("--top must be at least 1, got \(options.top)") }
        if let m = options.minScore, !m.isFinite { throw SearchError.badOption("--min-score must be a finite number") }
    }

    private func results(_ best: [(score: Float, id: Int64)]) throws -> [SearchResult] {
        let paths = try store.paths(ids: best.map(\.id))
        return best.enumerated().compactMap { i, hit in
            paths[hit.id].map { SearchResult(id: hit.id, path: $0, score: hit.score, rank: i + 1) }
        }
    }

    // MARK: changes

    /// Removes a model slot and its vectors.
    public func dropModel(slot: ModelSlot) throws { try store.dropSlot(slot.id) }
}

/// How paths are keyed: absolute, `.`/`..` removed, symbolic links of existing parts resolved, so
/// `./photos` and `/home/me/photos` name the same files.
public enum IndexPaths {
    public static func canonical(_ path: String) -> String {
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        guard let resolved = realpath(absolute, nil) else { return absolute }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
