import Foundation
import GRDB

/// The index in one SQLite file, through GRDB (docs/search.md has the schema and why).
///
/// WAL journal: readers (a search, `swiftclip serve`) never block the one writer, and each batch is
/// one transaction, so a `kill -9` loses at most the batch in flight. `PRAGMA application_id`
/// marks the file as ours; `PRAGMA user_version` is the schema version.
final class SQLiteStore: @unchecked Sendable {
    static let applicationID: Int32 = 0x5343_4C50 // "SCLP"
    static let schemaVersion = 1

    let path: String
    let readOnly: Bool
    /// A pool (concurrent readers, one writer) when writable; a read-only queue otherwise.
    let reader: any DatabaseReader
    let writer: (any DatabaseWriter)?

    init(path: String, readOnly: Bool) throws {
        self.path = path
        self.readOnly = readOnly
        var config = Configuration()
        config.readonly = readOnly
        config.busyMode = .timeout(30)
        config.foreignKeysEnabled = true
        config.label = "swiftclip-index"
        var isDir: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
        if exists && isDir.boolValue { throw SearchError.notAnIndex(path, "a folder, not a database file") }
        if readOnly && !exists { throw SearchError.notAnIndex(path, "no such file") }
        if !exists {
            let parent = (path as NSString).deletingLastPathComponent
            guard FileManager.default.fileExists(atPath: parent.isEmpty ? "." : parent, isDirectory: &isDir), isDir.boolValue else {
                throw SearchError.notAnIndex(path, "its folder does not exist")
            }
        } else if !readOnly && access(path, W_OK) != 0 {
            throw SearchError.readOnly(path)
        }
        do {
            if readOnly {
                let queue = try DatabaseQueue(path: path, configuration: config)
                reader = queue; writer = nil
                try queue.read { db in try Self.check(db, path: path, creating: false) }
            } else {
                // A pool sets WAL itself; check the header first so a foreign file is not converted.
                try Self.checkHeader(path)
                let pool = try DatabasePool(path: path, configuration: config)
                reader = pool; writer = pool
                try pool.write { db in try Self.check(db, path: path, creating: true) }
            }
        } catch let e as DatabaseError {
            throw Self.translate(e, path: path)
        }
    }

    /// A file that exists but does not start with SQLite's magic is refused before SQLite sees it.
    private static func checkHeader(_ path: String) throws {
        guard let handle = FileHandle(forReadingAtPath: path) else { return }
        defer { try? handle.close() }
        let head = (try? handle.read(upToCount: 16)) ?? Data()
        if head.isEmpty { return } // an empty file becomes a new index
        guard head == Data("SQLite format 3\0".utf8) else { throw SearchError.notAnIndex(path, "not an SQLite database") }
    }

    /// Creates the schema in an empty database, or checks the one there.
    private static func check(_ db: Database, path: String, creating: Bool) throws {
        let app = try Int32.fetchOne(db, sql: "PRAGMA application_id") ?? 0
        let version = try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0
        let tables = try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master") ?? 0
        if app == 0 && version == 0 && tables == 0 {
            guard creating else { throw SearchError.notAnIndex(path, "an empty database") }
            try createSchema(db)
            return
        }
        guard app == applicationID else { throw SearchError.notAnIndex(path, "an SQLite database of another program") }
        guard version <= schemaVersion else { throw SearchError.newerSchema(path, found: version, supported: schemaVersion) }
        guard version == schemaVersion else { throw SearchError.notAnIndex(path, "unknown schema version \(version)") }
    }

    private static func createSchema(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE files (
                id INTEGER PRIMARY KEY,
                path TEXT NOT NULL UNIQUE,
                size INTEGER NOT NULL,
                mtime_ns INTEGER NOT NULL,
                hash TEXT NOT NULL,
                deleted INTEGER NOT NULL DEFAULT 0,
                failure TEXT,
                seen_run INTEGER NOT NULL DEFAULT 0
            );
            CREATE INDEX files_by_hash ON files(hash);
            CREATE TABLE models (
                id INTEGER PRIMARY KEY,
                digest TEXT NOT NULL UNIQUE,
                config TEXT NOT NULL,
                weights TEXT,
                seed INTEGER NOT NULL,
                precision TEXT NOT NULL,
                preprocessing TEXT NOT NULL,
                dimension INTEGER NOT NULL,
                created_at REAL NOT NULL,
                completed_at REAL
            );
            CREATE TABLE vectors (
                model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
                file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
                vector BLOB NOT NULL,
                PRIMARY KEY (model_id, file_id)
            ) WITHOUT ROWID;
            CREATE INDEX vectors_by_file ON vectors(file_id);
            CREATE TABLE runs (
                id INTEGER PRIMARY KEY,
                started_at REAL NOT NULL,
                finished_at REAL,
                roots TEXT NOT NULL,
                summary TEXT
            );
            PRAGMA application_id = \(applicationID);
            PRAGMA user_version = \(schemaVersion);
            """)
    }

    static func translate(_ e: DatabaseError, path: String) -> SearchError {
        switch e.resultCode {
        case .SQLITE_NOTADB: return .notAnIndex(path, "not an SQLite database")
        case .SQLITE_READONLY: return .readOnly(path)
        case .SQLITE_CANTOPEN: return .notAnIndex(path, "cannot open it (\(e.message ?? "unknown reason"))")
        case .SQLITE_CORRUPT: return .store("\(path): the database is damaged (\(e.message ?? "corrupt"))")
        case .SQLITE_FULL: return .store("\(path): the disk is full; the index is unchanged since the last finished batch")
        default: return .store("\(path): \(e.message ?? "\(e.resultCode)")")
        }
    }

    /// Runs `body` in a read transaction, mapping SQLite's errors to ones that name the file.
    func read<T>(_ body: (Database) throws -> T) throws -> T {
        do { return try reader.read(body) } catch let e as DatabaseError { throw Self.translate(e, path: path) }
    }

    /// Runs `body` in one write transaction.
    func write<T>(_ body: (Database) throws -> T) throws -> T {
        guard let writer else { throw SearchError.readOnly(path) }
        do { return try writer.write(body) } catch let e as DatabaseError { throw Self.translate(e, path: path) }
    }

    // MARK: model slots

    func slots() throws -> [ModelSlot] {
        try read { db in
            // Counted through `vectors_by_file` (file_id, model_id: no vector in it). Through the
            // primary key SQLite reads every vector's overflow page to step over its row: with
            // 100,000 vectors 117k page reads instead of 3k, 0.2-0.36 s instead of 0.01, and a
            // one-shot `search` looks at the slots several times.
            try Row.fetchAll(db, sql: """
                SELECT m.*, (SELECT count(*) FROM vectors v INDEXED BY vectors_by_file JOIN files f ON f.id = v.file_id
                             WHERE v.model_id = m.id AND f.deleted = 0) AS n
                FROM models m ORDER BY m.id
                """).map(Self.slot)
        }
    }

    static func slot(_ row: Row) -> ModelSlot {
        let seed: Int64 = row["seed"]
        let model = ModelIdentity(config: row["config"], weights: row["weights"], seed: UInt64(bitPattern: seed),
                                  precision: row["precision"], preprocessing: row["preprocessing"],
                                  dimension: row["dimension"], digest: row["digest"])
        let completed: Double? = row["completed_at"]
        return ModelSlot(id: row["id"], model: model, vectors: row["n"] ?? 0,
                         completedAt: completed.map { Date(timeIntervalSince1970: $0) })
    }

    /// The slot for `model`, made if it is new.
    func slot(for model: ModelIdentity) throws -> Int64 {
        try write { db in
            if let id = try Int64.fetchOne(db, sql: "SELECT id FROM models WHERE digest = ?", arguments: [model.digest]) {
                // Paths may move (a weights file copied elsewhere): keep the latest.
                try db.execute(sql: "UPDATE models SET config = ?, weights = ? WHERE id = ?", arguments: [model.config, model.weights, id])
                return id
            }
            try db.execute(sql: """
                INSERT INTO models (digest, config, weights, seed, precision, preprocessing, dimension, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [model.digest, model.config, model.weights, Int64(bitPattern: model.seed), model.precision,
                                 model.preprocessing, model.dimension, Date().timeIntervalSince1970])
            return db.lastInsertedRowID
        }
    }

    func dropSlot(_ id: Int64) throws {
        try write { db in
            try db.execute(sql: "DELETE FROM vectors WHERE model_id = ?", arguments: [id])
            try db.execute(sql: "DELETE FROM models WHERE id = ?", arguments: [id])
        }
    }

    // MARK: reads for search

    /// Calls `body` with consecutive chunks of at most `chunkRows` (ids, row-major float32 vectors)
    /// of the slot's live files, optionally only those under `prefix`.
    func forEachChunk(slot: Int64, dimension: Int, under prefix: String?, chunkRows: Int,
                      _ body: (_ ids: [Int64], _ vectors: UnsafeBufferPointer<Float>) throws -> Void) throws {
        try read { db in
            var sql = "SELECT v.file_id, v.vector FROM vectors v JOIN files f ON f.id = v.file_id WHERE v.model_id = ? AND f.deleted = 0"
            var args: StatementArguments = [slot]
            if let prefix {
                let (lo, hi) = PathPrefix.range(prefix)
                sql += " AND f.path >= ? AND f.path < ?"
                args += [lo, hi]
            }
            let rows = try Row.fetchCursor(db, sql: sql, arguments: args)
            var ids: [Int64] = []
            ids.reserveCapacity(chunkRows)
            var buffer = [Float](repeating: 0, count: chunkRows * dimension)
            func flush() throws {
                guard !ids.isEmpty else { return }
                try buffer.withUnsafeBufferPointer { try body(ids, UnsafeBufferPointer(rebasing: $0[0..<ids.count * dimension])) }
                ids.removeAll(keepingCapacity: true)
            }
            while let row = try rows.next() {
                let id: Int64 = row[0]
                let n = ids.count
                // The blob is read in place (no copy): valid only inside this closure.
                let copied = try row.withUnsafeData(atIndex: 1) { data -> Bool in
                    guard let data, data.count == dimension * 4 else { return false }
                    buffer.withUnsafeMutableBytes { dst in
                        data.withUnsafeBytes { src in dst.baseAddress!.advanced(by: n * dimension * 4).copyMemory(from: src.baseAddress!, byteCount: src.count) }
                    }
                    return true
                }
                guard copied else {
                    throw SearchError.store("\(path): the vector of file id \(id) has the wrong size for dimension \(dimension)")
                }
                ids.append(id)
                if ids.count == chunkRows { try flush() }
            }
            try flush()
        }
    }

    func paths(ids: [Int64]) throws -> [Int64: String] {
        guard !ids.isEmpty else { return [:] }
        return try read { db in
            var out: [Int64: String] = [:]
            for start in stride(from: 0, to: ids.count, by: 500) {
                let part = Array(ids[start..<min(ids.count, start + 500)])
                let marks = Array(repeating: "?", count: part.count).joined(separator: ",")
                for row in try Row.fetchAll(db, sql: "SELECT id, path FROM files WHERE id IN (\(marks))", arguments: StatementArguments(part)) {
                    out[row[0]] = row[1]
                }
            }
            return out
        }
    }

    /// The live file's path, or nil.
    func path(id: Int64) throws -> String? {
        try read { db in try String.fetchOne(db, sql: "SELECT path FROM files WHERE id = ? AND deleted = 0", arguments: [id]) }
    }

    /// The slot's vector of the live file at `path`, if any.
    func vector(path: String, slot: Int64) throws -> [Float]? {
        try read { db in
            guard let data = try Data.fetchOne(db, sql: """
                SELECT v.vector FROM vectors v JOIN files f ON f.id = v.file_id WHERE f.path = ? AND f.deleted = 0 AND v.model_id = ?
                """, arguments: [path, slot]) else { return nil }
            return VectorBlob.decode(data)
        }
    }

    func status(failureLimit: Int) throws -> IndexStatus {
        let slots = try self.slots()
        return try read { db in
            let live = try Int.fetchOne(db, sql: "SELECT count(*) FROM files WHERE deleted = 0") ?? 0
            let removed = try Int.fetchOne(db, sql: "SELECT count(*) FROM files WHERE deleted = 1") ?? 0
            let failed = try Int.fetchOne(db, sql: "SELECT count(*) FROM files WHERE deleted = 0 AND failure IS NOT NULL") ?? 0
            let failures = try Row.fetchAll(db, sql: "SELECT path, failure FROM files WHERE deleted = 0 AND failure IS NOT NULL ORDER BY path LIMIT ?",
                                            arguments: [failureLimit]).map { (path: $0[0] as String, reason: $0[1] as String) }
            return IndexStatus(schemaVersion: Self.schemaVersion, live: live, removed: removed, failed: failed, slots: slots, failures: failures)
        }
    }
}

/// Paths under a folder as a range of the `path` index: [dir + "/", dir + "0"), '0' being the
/// character after '/', so a prefix query is an index range scan and "/a/bc" is not under "/a/b".
package enum PathPrefix {
    package static func range(_ folder: String) -> (String, String) {
        let dir = folder.hasSuffix("/") && folder.count > 1 ? String(folder.dropLast()) : folder
        if dir == "/" { return ("/", "0") }
        return (dir + "/", dir + "0")
    }

    /// `path` is `folder` itself or lies under it (the Swift side of `range`, plus the folder).
    package static func contains(_ folder: String, _ path: String) -> Bool {
        path == folder || folder == "/" || path.hasPrefix(folder + "/")
    }
}

/// A vector as stored: float32, little-endian, `dimension * 4` bytes.
enum VectorBlob {
    static func encode(_ v: UnsafeBufferPointer<Float>) -> Data {
        Data(buffer: v)
    }

    static func decode(_ data: Data) -> [Float] {
        var out = [Float](repeating: 0, count: data.count / 4)
        out.withUnsafeMutableBytes { dst in data.withUnsafeBytes { src in dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[0..<dst.count])) } }
        return out
    }
}
