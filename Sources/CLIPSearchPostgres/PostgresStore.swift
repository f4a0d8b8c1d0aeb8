import CLIPSearch
import Foundation
import Logging
import PostgresNIO

/// The index in a PostgreSQL database with pgvector, through postgres-nio (docs/search.md:
/// "PostgreSQL"). Same tables as SQLite (files, models, runs), but each model slot's vectors live in
/// their own table `vectors_<slot>` with a `vector(dim)` column, so a slot can carry an HNSW index
/// of its dimension.
///
/// postgres-nio is asynchronous; this store is not. Each call sends its queries on one connection
/// and waits for the future on the calling thread, which is never one of NIO's event-loop threads
/// (the rows are decoded and the model runs on the caller's thread; the event loop only moves bytes).
/// A lock serialises the callers of one store: one connection, one transaction at a time.
final class PostgresStore: @unchecked Sendable {
    static let schemaVersion = 1
    /// Below this many vectors a slot is searched exactly even when it has an HNSW index (immich uses
    /// ~128k; an exact scan of 10k 512-d vectors takes milliseconds). URL option `exact_below`.
    static let defaultExactBelow = 10_000

    let url: PostgresURL
    let readOnly: Bool
    /// HNSW build options (URL options `m`, `ef_construction`; pgvector's defaults 16 and 64),
    /// the default `hnsw.ef_search` (URL `ef_search`, default 100: recall@10 ≥ 0.95 on low-rank data,
    /// docs/search.md), and the exact-scan threshold.
    let m: Int, efConstruction: Int, efSearch: Int, exactBelow: Int
    private let connection: PostgresConnection
    private let logger: Logger
    private let lock = NSRecursiveLock()

    var name: String { url.description }

    init(url: PostgresURL, readOnly: Bool) throws {
        self.url = url
        self.readOnly = readOnly
        func option(_ key: String, _ fallback: Int, _ range: ClosedRange<Int>) throws -> Int {
            guard let text = url.options[key] else { return fallback }
            guard let v = Int(text), range.contains(v) else {
                throw SearchError.badLocation(url.description, "option \(key)=\(text) must be a whole number in \(range)")
            }
            return v
        }
        m = try option("m", 16, 2...100)
        efConstruction = try option("ef_construction", 64, 4...1000)
        efSearch = try option("ef_search", 100, 1...1000)
        exactBelow = try option("exact_below", Self.defaultExactBelow, 0...Int(Int32.max))
        let timeout = try option("connect_timeout", 10, 1...3600)
        let known: Set = ["m", "ef_construction", "ef_search", "exact_below", "connect_timeout", "sslmode"]
        if let unknown = url.options.keys.sorted().first(where: { !known.contains($0) }) {
            throw SearchError.badLocation(url.description, "unknown option '\(unknown)' (known: \(known.sorted().joined(separator: ", ")))")
        }
        if let mode = url.options["sslmode"], !["disable", "allow", "prefer"].contains(mode) {
            throw SearchError.unsupported("\(url): sslmode=\(mode) is not supported (this build connects without TLS; use sslmode=disable)")
        }
        var logger = Logger(label: "swiftclip.postgres")
        logger.logLevel = .critical
        self.logger = logger
        var config = PostgresConnection.Configuration(host: url.host, port: url.port, username: url.user, password: url.password,
                                                      database: url.database, tls: .disable)
        config.options.connectTimeout = .seconds(Int64(timeout))
        do {
            connection = try PostgresConnection.connect(on: PostgresConnection.defaultEventLoopGroup.any(), configuration: config,
                                                        id: 1, logger: logger).wait()
        } catch {
            throw SearchError.store("\(url): cannot connect to PostgreSQL (\(Self.reason(error))); check the host, port, user and database")
        }
        do {
            try prepareSchema()
        } catch {
            try? connection.close().wait()
            throw error
        }
    }

    deinit { try? connection.close().wait() }

    // MARK: queries

    /// A value to bind to `$n`.
    enum Bind {
        case int(Int64), text(String), double(Double), null, floats([Float]), ints([Int64]), texts([String])
    }

    /// Runs one statement and returns its rows (all in memory: callers page large results).
    @discardableResult
    func query(_ sql: String, _ binds: [Bind] = []) throws -> [PostgresRow] {
        var bindings = PostgresBindings(capacity: binds.count)
        for b in binds {
            switch b {
            case .int(let v): bindings.append(v)
            case .text(let v): bindings.append(v)
            case .double(let v): bindings.append(v)
            case .null: bindings.appendNull()
            case .floats(let v): bindings.append(v)
            case .ints(let v): bindings.append(v)
            case .texts(let v): bindings.append(v)
            }
        }
        lock.lock(); defer { lock.unlock() }
        // A query sent after the server closed the connection never completes in postgres-nio (seen:
        // `pg_ctl stop -m immediate` mid-run left `index` waiting for ever), so the wait ends
        // with whichever comes first, the result or the channel's close.
        let outcome = connection.eventLoop.makePromise(of: PostgresQueryResult.self)
        connection.query(PostgresQuery(unsafeSQL: sql, binds: bindings), logger: logger).cascade(to: outcome)
        connection.closeFuture.whenComplete { _ in outcome.fail(ConnectionClosed()) }
        do {
            return try outcome.futureResult.wait().rows
        } catch {
            throw translate(error)
        }
    }

    /// Runs `body` in one transaction (rolled back if it throws). The lock is held throughout, so
    /// the queries of `body` are the only ones on the connection meanwhile.
    func transaction<T>(_ body: () throws -> T) throws -> T {
        lock.lock(); defer { lock.unlock() }
        try query("BEGIN")
        do {
            let result = try body()
            try query("COMMIT")
            return result
        } catch {
            _ = try? query("ROLLBACK")
            throw error
        }
    }

    func one<T: PostgresDecodable>(_ sql: String, _ binds: [Bind] = [], as type: T.Type = T.self) throws -> T? {
        guard let row = try query(sql, binds).first else { return nil }
        do { return try row.decode(T.self) } catch { throw translate(error) }
    }

    static func reason(_ error: any Error) -> String {
        if let e = error as? PSQLError {
            if let message = e.serverInfo?[.message] { return message }
            if let underlying = e.underlying { return "\(underlying)" }
            return "\(e.code)"
        }
        return "\(error)"
    }

    /// The connection's channel closed before a query's result came.
    private struct ConnectionClosed: Error, CustomStringConvertible {
        var description: String { "the server closed the connection" }
    }

    private func translate(_ error: any Error) -> SearchError {
        if let e = error as? SearchError { return e }
        func lost(_ why: String) -> SearchError {
            .store("\(url): the connection to PostgreSQL was lost (\(why)); what was committed is kept, run again to continue")
        }
        if error is ConnectionClosed { return lost("\(error)") }
        if let e = error as? PSQLError {
            // Class 08 (connection exception) and 57P (shutdown, crash) from the server, or the socket gone.
            let state = e.serverInfo?[.sqlState] ?? ""
            let gone: [PSQLError.Code] = [.serverClosedConnection, .clientClosedConnection, .connectionError, .uncleanShutdown]
            if gone.contains(e.code) || state.hasPrefix("08") || state.hasPrefix("57P") {
                return lost(Self.reason(error))
            }
        }
        return .store("\(url): \(Self.reason(error))")
    }

    // MARK: schema

    /// The slot's vector table.
    static func table(_ slot: Int64) -> String { "vectors_\(slot)" }

    private func prepareSchema() throws {
        if try checkVersion() {
            try requireVector()
            return
        }
        guard !readOnly else { throw SearchError.notAnIndex(name, "an empty database") }
        try transaction {
            // Two processes creating the schema at once: the second waits here, then finds it made.
            try query("SELECT pg_advisory_xact_lock(534543001)")
            try requireVector()
            if try checkVersion() { return }
            if try one("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename IN ('files', 'models', 'runs')",
                       as: Int64.self) ?? 0 > 0 {
                throw SearchError.notAnIndex(name, "the database has tables named files/models/runs of another program")
            }
            try query("""
                CREATE TABLE IF NOT EXISTS files (
                    id BIGSERIAL PRIMARY KEY,
                    path TEXT NOT NULL UNIQUE,
                    size BIGINT NOT NULL,
                    mtime_ns BIGINT NOT NULL,
                    hash TEXT NOT NULL,
                    deleted BOOLEAN NOT NULL DEFAULT false,
                    failure TEXT,
                    seen_at DOUBLE PRECISION NOT NULL DEFAULT 0
                )
                """)
            try query("CREATE INDEX IF NOT EXISTS files_by_hash ON files(hash)")
            try query("""
                CREATE TABLE IF NOT EXISTS models (
                    id BIGSERIAL PRIMARY KEY,
                    digest TEXT NOT NULL UNIQUE,
                    config TEXT NOT NULL,
                    weights TEXT,
                    seed BIGINT NOT NULL,
                    precision TEXT NOT NULL,
                    preprocessing TEXT NOT NULL,
                    dimension INTEGER NOT NULL,
                    created_at DOUBLE PRECISION NOT NULL,
                    completed_at DOUBLE PRECISION
                )
                """)
            try query("""
                CREATE TABLE IF NOT EXISTS runs (
                    id BIGSERIAL PRIMARY KEY,
                    started_at DOUBLE PRECISION NOT NULL,
                    finished_at DOUBLE PRECISION,
                    roots TEXT NOT NULL,
                    summary TEXT
                )
                """)
            try query("CREATE TABLE IF NOT EXISTS swiftclip_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            try query("INSERT INTO swiftclip_meta VALUES ('schema_version', $1) ON CONFLICT DO NOTHING", [.text("\(Self.schemaVersion)")])
        }
    }

    /// Whether the schema is there (false: an empty database); an unknown or newer version is an error.
    private func checkVersion() throws -> Bool {
        guard try exists("swiftclip_meta"),
              let version = try one("SELECT value FROM swiftclip_meta WHERE key = 'schema_version'", as: String.self) else { return false }
        guard let v = Int(version) else { throw SearchError.notAnIndex(name, "unknown schema version '\(version)'") }
        guard v <= Self.schemaVersion else { throw SearchError.newerSchema(name, found: v, supported: Self.schemaVersion) }
        return true
    }

    /// pgvector must be installed: `CREATE EXTENSION IF NOT EXISTS vector`, or a clear error.
    private func requireVector() throws {
        if try one("SELECT extversion FROM pg_extension WHERE extname = 'vector'", as: String.self) != nil { return }
        let missing = "the server lacks the pgvector extension ('vector'), which the index needs for its vector columns"
        if readOnly { throw SearchError.unsupported("\(name): \(missing)") }
        do {
            try query("CREATE EXTENSION IF NOT EXISTS vector")
        } catch let error as SearchError {
            throw SearchError.unsupported("\(name): \(missing); CREATE EXTENSION vector failed (\(error)). "
                                          + "Install pgvector on the server, or have its owner run CREATE EXTENSION vector in this database")
        }
    }

    // MARK: model slots

    func slots() throws -> [ModelSlot] {
        try query("""
            SELECT id, digest, config, weights, seed, precision, preprocessing, dimension, completed_at FROM models ORDER BY id
            """).map { row in
            let (id, digest, config, weights, seed, precision, preprocessing, dimension, completed) =
                try row.decode((Int64, String, String, String?, Int64, String, String, Int32, Double?).self)
            let live = try one("SELECT count(*) FROM \(Self.table(id)) v JOIN files f ON f.id = v.file_id WHERE NOT f.deleted", as: Int64.self) ?? 0
            let model = ModelIdentity(config: config, weights: weights, seed: UInt64(bitPattern: seed), precision: precision,
                                      preprocessing: preprocessing, dimension: Int(dimension), digest: digest)
            return ModelSlot(id: id, model: model, vectors: Int(live), completedAt: completed.map { Date(timeIntervalSince1970: $0) })
        }
    }

    /// The slot for `model`, with its vector table, made if it is new.
    func slot(for model: ModelIdentity) throws -> Int64 {
        try transaction {
            try query("SELECT pg_advisory_xact_lock(534543002)")
            if let id = try one("SELECT id FROM models WHERE digest = $1", [.text(model.digest)], as: Int64.self) {
                try query("UPDATE models SET config = $1, weights = $2 WHERE id = $3",
                          [.text(model.config), model.weights.map(Bind.text) ?? .null, .int(id)])
                return id
            }
            guard let id = try one("""
                INSERT INTO models (digest, config, weights, seed, precision, preprocessing, dimension, created_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id
                """, [.text(model.digest), .text(model.config), model.weights.map(Bind.text) ?? .null, .int(Int64(bitPattern: model.seed)),
                      .text(model.precision), .text(model.preprocessing), .int(Int64(model.dimension)), .double(Date().timeIntervalSince1970)],
                as: Int64.self) else { throw SearchError.store("\(name): INSERT INTO models returned no id") }
            try query("""
                CREATE TABLE \(Self.table(id)) (file_id BIGINT PRIMARY KEY REFERENCES files(id) ON DELETE CASCADE,
                                                vector vector(\(model.dimension)) NOT NULL)
                """)
            return id
        }
    }

    func dropSlot(_ id: Int64) throws {
        try transaction {
            try query("DROP TABLE IF EXISTS \(Self.table(id))")
            try query("DELETE FROM models WHERE id = $1", [.int(id)])
        }
    }

    /// Builds the slot's HNSW index (inner product on unit vectors) if it has none; returns whether it built one.
    @discardableResult
    func buildVectorIndex(slot: Int64) throws -> Bool {
        try transaction {
            try query("SELECT pg_advisory_xact_lock(534543003)")
            if try hasVectorIndex(slot: slot) { return false }
            try query("SET LOCAL maintenance_work_mem = '1GB'")
            try query("""
                CREATE INDEX \(Self.table(slot))_hnsw ON \(Self.table(slot)) USING hnsw (vector vector_ip_ops)
                WITH (m = \(m), ef_construction = \(efConstruction))
                """)
            return true
        }
    }

    func hasVectorIndex(slot: Int64) throws -> Bool { try exists("\(Self.table(slot))_hnsw") }

    /// Whether a table or index of that name exists.
    func exists(_ relation: String) throws -> Bool {
        try one("SELECT to_regclass($1) IS NOT NULL", [.text(relation)], as: Bool.self) ?? false
    }

    // MARK: reads for search

    /// The `WHERE` clause that keeps files under `prefix` (an index range scan on `files.path`), as
    /// the third and fourth parameters of a query whose first two are its own; empty for no prefix.
    private static func pathFilter(under prefix: String?) -> (sql: String, binds: [Bind]) {
        guard let prefix else { return ("", []) }
        let (lo, hi) = PathPrefix.range(prefix)
        return (" AND f.path >= $3 AND f.path < $4", [.text(lo), .text(hi)])
    }

    func forEachChunk(slot: Int64, dimension: Int, under prefix: String?, chunkRows: Int,
                      _ body: (_ ids: [Int64], _ vectors: UnsafeBufferPointer<Float>) throws -> Void) throws {
        var last: Int64 = 0
        let (filter, binds) = Self.pathFilter(under: prefix)
        var ids: [Int64] = [], buffer: [Float] = []
        while true {
            // Pages by id, so no statement holds the whole slot and the caller scores on its own thread.
            let rows = try query("""
                SELECT v.file_id, v.vector::real[] FROM \(Self.table(slot)) v JOIN files f ON f.id = v.file_id
                WHERE NOT f.deleted AND v.file_id > $1\(filter) ORDER BY v.file_id LIMIT $2
                """, [.int(last), .int(Int64(chunkRows))] + binds)
            if rows.isEmpty { return }
            ids.removeAll(keepingCapacity: true); buffer.removeAll(keepingCapacity: true)
            for row in rows {
                let (id, vector) = try row.decode((Int64, [Float]).self)
                guard vector.count == dimension else {
                    throw SearchError.store("\(name): the vector of file id \(id) has \(vector.count) values, the slot's model has \(dimension)")
                }
                ids.append(id); buffer += vector
            }
            last = ids[ids.count - 1]
            try buffer.withUnsafeBufferPointer { try body(ids, $0) }
            if rows.count < chunkRows { return }
        }
    }

    /// The top `options.top` computed by the server, so no vector leaves it: through the slot's HNSW
    /// index (approximate, `hnsw.ef_search`) when it has one and at least `exactBelow` vectors and no
    /// folder filter applies; otherwise exactly, a sequential scan scoring every live vector with
    /// pgvector's `<#>` (the index is switched off for that transaction).
    func nearest(vector: [Float], slot: ModelSlot, options: SearchOptions) throws -> [(score: Float, id: Int64)]? {
        let approximate = try options.under == nil && slot.vectors >= exactBelow && hasVectorIndex(slot: slot.id)
        let ef = options.efSearch ?? max(efSearch, options.top)
        guard (1...1000).contains(ef) else { throw SearchError.badOption("--ef-search must be in 1...1000 (pgvector's range), got \(ef)") }
        let (filter, pathBinds) = Self.pathFilter(under: options.under.map(IndexPaths.canonical))
        let binds: [Bind] = [.floats(vector), .int(Int64(options.top))] + pathBinds
        let rows = try transaction { () -> [PostgresRow] in
            if approximate {
                try query("SET LOCAL hnsw.ef_search = \(ef)")
                // Tombstoned files are filtered after the index scan; the iterative scan keeps going
                // until `top` live rows are found (pgvector ≥ 0.8).
                try query("SET LOCAL hnsw.iterative_scan = strict_order")
                // The threshold decided for the index: keep the planner from a sequential scan and sort.
                try query("SET LOCAL enable_seqscan = off")
                return try query("""
                    SELECT v.file_id, (v.vector <#> $1::real[]::vector)::real FROM \(Self.table(slot.id)) v
                    WHERE NOT EXISTS (SELECT 1 FROM files f WHERE f.id = v.file_id AND f.deleted)
                    ORDER BY v.vector <#> $1::real[]::vector LIMIT $2
                    """, binds)
            }
            try query("SET LOCAL enable_indexscan = off")
            return try query("""
                SELECT v.file_id, (v.vector <#> $1::real[]::vector)::real AS d FROM \(Self.table(slot.id)) v
                JOIN files f ON f.id = v.file_id WHERE NOT f.deleted\(filter)
                ORDER BY d, v.file_id LIMIT $2
                """, binds)
        }
        return try rows.compactMap { row in
            let (id, distance) = try row.decode((Int64, Float).self)
            let score = -distance // <#> is the negative inner product
            if let m = options.minScore, score < m { return nil }
            return (score, id)
        }
    }

    func paths(ids: [Int64]) throws -> [Int64: String] {
        guard !ids.isEmpty else { return [:] }
        var out: [Int64: String] = [:]
        for row in try query("SELECT id, path FROM files WHERE id = ANY($1)", [.ints(ids)]) {
            let (id, path) = try row.decode((Int64, String).self)
            out[id] = path
        }
        return out
    }

    func path(id: Int64) throws -> String? {
        try one("SELECT path FROM files WHERE id = $1 AND NOT deleted", [.int(id)], as: String.self)
    }

    func vector(path: String, slot: Int64) throws -> [Float]? {
        try one("""
            SELECT v.vector::real[] FROM \(Self.table(slot)) v JOIN files f ON f.id = v.file_id WHERE f.path = $1 AND NOT f.deleted
            """, [.text(path)], as: [Float].self)
    }

    func status(failureLimit: Int) throws -> IndexStatus {
        let slots = try self.slots()
        let live = try one("SELECT count(*) FROM files WHERE NOT deleted", as: Int64.self) ?? 0
        let removed = try one("SELECT count(*) FROM files WHERE deleted", as: Int64.self) ?? 0
        let failed = try one("SELECT count(*) FROM files WHERE NOT deleted AND failure IS NOT NULL", as: Int64.self) ?? 0
        let failures = try query("SELECT path, failure FROM files WHERE NOT deleted AND failure IS NOT NULL ORDER BY path LIMIT $1",
                                 [.int(Int64(failureLimit))]).map { row in
            let (path, reason) = try row.decode((String, String).self)
            return (path: path, reason: reason)
        }
        return IndexStatus(schemaVersion: Self.schemaVersion, live: Int(live), removed: Int(removed), failed: Int(failed),
                           slots: slots, failures: failures)
    }
}

extension PostgresStore: IndexStore {
    /// The server computes every top-k (`nearest`), so nothing is kept in memory.
    func changeToken() throws -> Int64? { nil }
}
