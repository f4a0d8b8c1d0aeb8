import Foundation

/// What `SearchIndex` needs from where the index lives, for reading and searching: SQLite
/// (`SQLiteStore`) or PostgreSQL with pgvector (`PostgresStore`). Indexing has one path per store
/// (`Indexer.swift`, `PostgresIndexer.swift`): their concurrency rules differ.
package protocol IndexStore: AnyObject, Sendable {
    var readOnly: Bool { get }
    /// The location as error messages name it (no password).
    var name: String { get }
    func slots() throws -> [ModelSlot]
    func dropSlot(_ id: Int64) throws
    /// Consecutive chunks of at most `chunkRows` (ids, row-major float32 vectors) of the slot's live
    /// files, optionally only those under `prefix`.
    func forEachChunk(slot: Int64, dimension: Int, under prefix: String?, chunkRows: Int,
                      _ body: (_ ids: [Int64], _ vectors: UnsafeBufferPointer<Float>) throws -> Void) throws
    func paths(ids: [Int64]) throws -> [Int64: String]
    func path(id: Int64) throws -> String?
    func vector(path: String, slot: Int64) throws -> [Float]?
    func status(failureLimit: Int) throws -> IndexStatus
    /// The top-k as the store computes it (PostgreSQL: on the server, exact or through its vector
    /// index), or nil when `SearchIndex` scores the chunks itself (SQLite).
    func nearest(vector: [Float], slot: ModelSlot, options: SearchOptions) throws -> [(score: Float, id: Int64)]?
    /// A value that changes whenever another connection commits to the index, or nil when the store
    /// cannot tell (then `SearchIndex` does not keep vectors in memory).
    func changeToken() throws -> Int64?
}

/// A store with its own indexing path: PostgreSQL, where several processes index into one database
/// at once. `SearchIndex.update` hands it the checked roots; SQLite's path is `Indexer.swift`.
package protocol IndexingStore: IndexStore {
    func update(walkable: [String], gone: [String], model: IndexModel, options: UpdateOptions,
                progress: ((IndexProgress) -> Void)?) throws -> IndexSummary
}

extension SQLiteStore: IndexStore {
    var name: String { path }
    /// `PRAGMA data_version` changes when another connection commits. It is per connection, so only
    /// a read-only store (one connection, a queue) can compare it between calls.
    func changeToken() throws -> Int64? {
        guard readOnly else { return nil }
        return try reader.read { db in try Int64.fetchOne(db, sql: "PRAGMA data_version") }
    }
    func nearest(vector: [Float], slot: ModelSlot, options: SearchOptions) throws -> [(score: Float, id: Int64)]? { nil }
}
