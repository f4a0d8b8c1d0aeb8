import Foundation

/// What a search returns per match, best first.
public struct SearchResult: Equatable, Sendable, Codable {
    /// The file's id in the index (stable while the file keeps its path).
    public var id: Int64
    public var path: String
    /// Cosine similarity of the (unit) query vector and the file's unit embedding.
    public var score: Float
    /// 1 for the best match.
    public var rank: Int

    public init(id: Int64, path: String, score: Float, rank: Int) {
        self.id = id; self.path = path; self.score = score; self.rank = rank
    }
}

/// How many results, and which files may match.
public struct SearchOptions: Equatable, Sendable {
    /// The number of results (top-k).
    public var top: Int
    /// Results scoring below this are left out.
    public var minScore: Float?
    /// Only files whose path lies under this folder (an absolute or relative path; resolved as the
    /// index stores paths).
    public var under: String?
    /// PostgreSQL only: `hnsw.ef_search` for this query (nil: the index's default).
    public var efSearch: Int?

    public init(top: Int = 10, minScore: Float? = nil, under: String? = nil, efSearch: Int? = nil) {
        self.top = top; self.minScore = minScore; self.under = under; self.efSearch = efSearch
    }
}

/// Which model made a set of vectors: everything that changes an embedding. Two slots with the
/// same `digest` hold interchangeable vectors.
public struct ModelIdentity: Equatable, Sendable, Codable {
    /// The config as given (a built-in name, or an absolute path to an open_clip JSON config).
    public var config: String
    /// Absolute path of the safetensors weights, or nil for a randomly initialised model.
    public var weights: String?
    /// The seed of a randomly initialised model (0 and unused with weights).
    public var seed: UInt64
    /// fp32, bf16 or int8.
    public var precision: String
    /// The eval transform, e.g. "resize-shortest-bicubic-crop 224 mean … std …".
    public var preprocessing: String
    /// Embedding dimension.
    public var dimension: Int
    /// Hex digest of the parsed config, the weights' contents (or the seed), the preprocessing,
    /// the precision and the dimension.
    public var digest: String

    public init(config: String, weights: String?, seed: UInt64, precision: String, preprocessing: String, dimension: Int, digest: String) {
        self.config = config; self.weights = weights; self.seed = seed; self.precision = precision
        self.preprocessing = preprocessing; self.dimension = dimension; self.digest = digest
    }
}

/// A set of vectors made by one model.
public struct ModelSlot: Equatable, Sendable {
    public var id: Int64
    public var model: ModelIdentity
    /// Files with a vector in this slot.
    public var vectors: Int
    /// When every live, readable file first had a vector in this slot (nil: still being built;
    /// searches then default to an older complete slot).
    public var completedAt: Date?

    package init(id: Int64, model: ModelIdentity, vectors: Int, completedAt: Date?) {
        self.id = id; self.model = model; self.vectors = vectors; self.completedAt = completedAt
    }
}

/// `swiftclip index --status`.
public struct IndexStatus: Equatable, Sendable {
    public var schemaVersion: Int
    /// Files present at the last run (not tombstoned).
    public var live: Int
    /// Tombstoned files (gone at a run; revived if they come back).
    public var removed: Int
    /// Live files that failed to decode (see `failures`).
    public var failed: Int
    public var slots: [ModelSlot]
    /// Up to `failureLimit` failed files with their reasons.
    public var failures: [(path: String, reason: String)]

    package init(schemaVersion: Int, live: Int, removed: Int, failed: Int, slots: [ModelSlot], failures: [(path: String, reason: String)]) {
        self.schemaVersion = schemaVersion; self.live = live; self.removed = removed; self.failed = failed
        self.slots = slots; self.failures = failures
    }

    public static func == (a: IndexStatus, b: IndexStatus) -> Bool {
        a.schemaVersion == b.schemaVersion && a.live == b.live && a.removed == b.removed && a.failed == b.failed
            && a.slots == b.slots && a.failures.map(\.path) == b.failures.map(\.path) && a.failures.map(\.reason) == b.failures.map(\.reason)
    }
}

/// What one `update` run did, per file.
public struct IndexSummary: Equatable, Sendable, Codable {
    /// Paths not in the index before.
    public var new = 0
    /// Files whose size or mtime changed (embedded again unless their content hash has a vector).
    public var changed = 0
    /// Files with the same size and mtime and a vector (or a recorded failure) already.
    public var unchanged = 0
    /// New paths whose content hash matched a stored vector (moved, renamed or copied): no decode.
    public var moved = 0
    /// Tombstoned files that came back.
    public var revived = 0
    /// Files tombstoned by this run (gone from under a root).
    public var removed = 0
    /// Files that failed to decode in this run.
    public var failed = 0
    /// Files embedded by the model in this run.
    public var embedded = 0
    /// Folders that could not be read, "path: reason" (their files are left as they were).
    public var unreadableFolders: [String] = []
    /// Image files that could not be looked at, or whose names are not UTF-8, "path: reason" (left
    /// as they were).
    public var unreadableFiles: [String] = []
    /// Folders not walked because their names matched the excluded names (`@eaDir`, …).
    public var excludedFolders = 0

    public init() {}

    private enum CodingKeys: String, CodingKey {
        case new, changed, unchanged, moved, revived, removed, failed, embedded, unreadableFolders, unreadableFiles, excludedFolders
    }

    /// Summaries written before `unreadableFiles` and `excludedFolders` existed (stored in the index's `runs`) still read.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        new = try c.decode(Int.self, forKey: .new)
        changed = try c.decode(Int.self, forKey: .changed)
        unchanged = try c.decode(Int.self, forKey: .unchanged)
        moved = try c.decode(Int.self, forKey: .moved)
        revived = try c.decode(Int.self, forKey: .revived)
        removed = try c.decode(Int.self, forKey: .removed)
        failed = try c.decode(Int.self, forKey: .failed)
        embedded = try c.decode(Int.self, forKey: .embedded)
        unreadableFolders = try c.decode([String].self, forKey: .unreadableFolders)
        unreadableFiles = try c.decodeIfPresent([String].self, forKey: .unreadableFiles) ?? []
        excludedFolders = try c.decodeIfPresent(Int.self, forKey: .excludedFolders) ?? 0
    }
}

/// Errors of the search layer, each naming the file, URL or option.
public enum SearchError: Error, CustomStringConvertible, Equatable {
    case badLocation(String, String)
    case badQuery(String, String)
    case notAnIndex(String, String)
    case newerSchema(String, found: Int, supported: Int)
    case readOnly(String)
    case noModel(String)
    case modelMismatch(String)
    case rootMissing(String, String)
    case badOption(String)
    case unsupported(String)
    case store(String)

    public var description: String {
        switch self {
        case .badLocation(let s, let why): return "--db \(s): \(why)"
        case .badQuery(let s, let why): return "query term '\(s)': \(why)"
        case .notAnIndex(let s, let why): return "\(s): not a SwiftCLIP index (\(why))"
        case .newerSchema(let s, let found, let supported):
            return "\(s): index schema version \(found) is newer than this swiftclip supports (\(supported)); use a newer swiftclip"
        case .readOnly(let s): return "\(s): the index is read-only (cannot write here)"
        case .noModel(let s), .modelMismatch(let s), .badOption(let s), .unsupported(let s), .store(let s): return s
        case .rootMissing(let root, let why):
            return "\(root): \(why); nothing was marked removed (if the files are really gone, run again with --prune)"
        }
    }
}
