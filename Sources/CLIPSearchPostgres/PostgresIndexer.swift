import CLIPData
import CLIPSearch
import Foundation

/// `update(roots:model:)` on PostgreSQL, where several processes (on one machine or many) may index
/// into one database at once:
/// - the walk upserts rows by path (`ON CONFLICT`), and each run stamps what it saw with the
///   server's clock (`seen_at`), so a run tombstones only files nobody saw since it started;
/// - embedding claims a batch of pending files with `FOR UPDATE SKIP LOCKED` inside a transaction
///   that also stores their vectors: another process skips them, and a process that dies (even by
///   `kill -9`) drops its connection, the server rolls its transaction back and the files are pending
///   again — nothing embedded twice, nothing lost;
/// - the walk never waits for another process's claimed batch: it reads rows without locking them,
///   stamps unchanged rows with `SKIP LOCKED` and inserts new ones with `ON CONFLICT DO NOTHING`. A
///   row it saw but could not stamp (claimed by another process right now) is kept out of its
///   tombstoning instead. (Waiting there put a second process's whole walk behind the first one's
///   claims, one batch at a time: of 300 photos it embedded 2, the first 298.)
extension PostgresStore: IndexingStore {
    package func update(walkable: [String], gone: [String], model: IndexModel, options: UpdateOptions,
                        progress: ((IndexProgress) -> Void)?) throws -> IndexSummary {
        let store = self
        let slot = try store.slot(for: model.identity)
        let table = PostgresStore.table(slot)
        guard let runRow = try store.query("""
            INSERT INTO runs (started_at, roots) VALUES (extract(epoch FROM clock_timestamp()), $1) RETURNING id, started_at
            """, [.text((walkable + gone).joined(separator: "\n"))]).first else { throw SearchError.store("\(store.name): INSERT INTO runs returned nothing") }
        let (run, started) = try runRow.decode((Int64, Double).self)
        var summary = IndexSummary()
        var seenUnstamped: [Int64] = []
        let walker = try SearchIndex.walk(walkable, options: options, summary: &summary, progress: progress) { batch, summary in
            seenUnstamped += try reconcile(batch, slot: slot, summary: &summary)
        }
        let unreadable = walker.unreadablePaths
        summary.removed = try store.transaction { () -> Int in
            var removed = 0
            for root in walkable + gone {
                let (lo, hi) = PathPrefix.range(root)
                var sql = "UPDATE files SET deleted = true WHERE path >= $1 AND path < $2 AND NOT deleted AND seen_at < $3 AND NOT (id = ANY($4))"
                var binds: [PostgresStore.Bind] = [.text(lo), .text(hi), .double(started), .ints(seenUnstamped)]
                for path in unreadable where PathPrefix.contains(root, path) {
                    let (ulo, uhi) = PathPrefix.range(path)
                    let n = binds.count
                    sql += " AND NOT (path = $\(n + 1) OR (path >= $\(n + 2) AND path < $\(n + 3)))"
                    binds += [.text(path), .text(ulo), .text(uhi)]
                }
                removed += try store.query(sql + " RETURNING id", binds).count
            }
            return removed
        }
        try embedPending(under: walkable, table: table, model: model, options: options, summary: &summary, progress: progress)
        let missing = try store.one("""
            SELECT count(*) FROM files f WHERE NOT f.deleted AND f.failure IS NULL AND NOT EXISTS (SELECT 1 FROM \(table) v WHERE v.file_id = f.id)
            """, as: Int64.self) ?? 0
        if missing == 0 {
            try store.query("UPDATE models SET completed_at = extract(epoch FROM clock_timestamp()) WHERE id = $1 AND completed_at IS NULL", [.int(slot)])
            // A complete slot large enough to be searched through an index gets one now.
            let count = try store.one("SELECT count(*) FROM \(table)", as: Int64.self) ?? 0
            if count >= store.exactBelow { try store.buildVectorIndex(slot: slot) }
        }
        let json = String(decoding: try JSONEncoder().encode(summary), as: UTF8.self)
        try store.query("UPDATE runs SET finished_at = extract(epoch FROM clock_timestamp()), summary = $1 WHERE id = $2", [.text(json), .int(run)])
        return summary
    }

    /// One transaction: each walked file compared with its row, as the SQLite path does. The batch's
    /// rows are read in one statement and the unchanged files (the whole batch on a re-run) are
    /// stamped in another, so an unchanged re-run costs two round trips per 512 files. Returns the
    /// ids of files seen unchanged whose rows another process holds (see the type's comment).
    private func reconcile(_ entries: [FolderWalker.Entry], slot: Int64, summary: inout IndexSummary) throws -> [Int64] {
        let store = self
        let seen = "extract(epoch FROM clock_timestamp())"
        let tables = try store.query("SELECT id FROM models").map { try PostgresStore.table($0.decode(Int64.self)) }
        return try store.transaction {
            typealias Stored = (id: Int64, size: Int64, mtime: Int64, hash: String, deleted: Bool)
            func rows(_ paths: [String]) throws -> [String: Stored] {
                var out: [String: Stored] = [:]
                for row in try store.query("SELECT path, id, size, mtime_ns, hash, deleted FROM files WHERE path = ANY($1)", [.texts(paths)]) {
                    let (path, id, size, mtime, hash, deleted) = try row.decode((String, Int64, Int64, Int64, String, Bool).self)
                    out[path] = (id, size, mtime, hash, deleted)
                }
                return out
            }
            func same(_ row: Stored, _ e: FolderWalker.Entry) -> Bool { row.size == Int64(e.size) && row.mtime == Int64(e.mtimeNanoseconds) }
            let stored = try rows(entries.map(\.path))
            var unchanged: [Int64] = []
            for e in entries {
                if let row = stored[e.path], same(row, e) {
                    if row.deleted { summary.revived += 1 } else { summary.unchanged += 1 }
                    unchanged.append(row.id)
                    continue
                }
                let hash: String, failure: String?
                do { hash = try FileHash.partial(path: e.path, size: e.size); failure = nil } catch {
                    hash = ""; failure = "\(error)" // unreadable: recorded as failed, retried when it changes
                }
                let fields: [PostgresStore.Bind] = [.text(e.path), .int(Int64(e.size)), .int(Int64(e.mtimeNanoseconds)), .text(hash),
                                                    failure.map(PostgresStore.Bind.text) ?? .null]
                var id: Int64
                if stored[e.path] == nil, let inserted = try store.one("""
                    INSERT INTO files (path, size, mtime_ns, hash, failure, seen_at) VALUES ($1, $2, $3, $4, $5, \(seen))
                    ON CONFLICT (path) DO NOTHING RETURNING id
                    """, fields, as: Int64.self) {
                    id = inserted
                    if failure == nil { summary.new += 1 }
                } else {
                    // Known, or added by another process since the read above (then as this run saw it:
                    // unchanged, or to be updated).
                    guard let row = try stored[e.path] ?? rows([e.path])[e.path] else {
                        throw SearchError.store("\(store.name): the row of \(e.path) vanished during the walk")
                    }
                    if stored[e.path] == nil, same(row, e) {
                        summary.new += 1
                        unchanged.append(row.id)
                        continue
                    }
                    if failure == nil { if row.deleted { summary.revived += 1 } else { summary.changed += 1 } }
                    // Waits for a claim of this row to end, so the vectors deleted below include any
                    // it stores for the old content.
                    guard let updated = try store.one("""
                        UPDATE files SET size = $2, mtime_ns = $3, hash = $4, failure = $5, seen_at = \(seen), deleted = false
                        WHERE path = $1 RETURNING id
                        """, fields, as: Int64.self) else { throw SearchError.store("\(store.name): UPDATE files returned no id for \(e.path)") }
                    id = updated
                    if failure == nil {
                        if row.hash == hash { continue } // same content: its vectors stay
                        for table in tables { try store.query("DELETE FROM \(table) WHERE file_id = $1", [.int(id)]) }
                    }
                }
                if failure != nil { summary.failed += 1; continue }
                // A copy, move or rename: the same content already has vectors (in every slot).
                for table in tables {
                    try store.query("""
                        INSERT INTO \(table) (file_id, vector)
                        SELECT $1, v.vector FROM files f JOIN \(table) v ON v.file_id = f.id WHERE f.hash = $2 AND f.id <> $1 LIMIT 1
                        ON CONFLICT DO NOTHING
                        """, [.int(id), .text(hash)])
                }
                if try store.one("SELECT count(*) FROM \(PostgresStore.table(slot)) WHERE file_id = $1", [.int(id)], as: Int64.self) == 1 {
                    summary.moved += 1
                }
            }
            guard !unchanged.isEmpty else { return [] }
            // Rows claimed by another process's embedding right now are skipped, not waited for.
            let stamped = Set(try store.query("""
                UPDATE files SET seen_at = \(seen), deleted = false
                WHERE id IN (SELECT id FROM files WHERE id = ANY($1) FOR NO KEY UPDATE SKIP LOCKED) RETURNING id
                """, [.ints(unchanged)]).map { try $0.decode(Int64.self) })
            return unchanged.filter { !stamped.contains($0) }
        }
    }

    /// Claims batches of pending files (no vector in the slot) with `FOR UPDATE SKIP LOCKED`, embeds
    /// them and stores their vectors in the claiming transaction, until none is left.
    private func embedPending(under roots: [String], table: String, model: IndexModel, options: UpdateOptions,
                              summary: inout IndexSummary, progress: ((IndexProgress) -> Void)?) throws {
        let store = self
        guard !roots.isEmpty else { return }
        var binds: [PostgresStore.Bind] = []
        var ranges: [String] = []
        for root in roots {
            let (lo, hi) = PathPrefix.range(root)
            ranges.append("(f.path >= $\(binds.count + 1) AND f.path < $\(binds.count + 2))")
            binds += [.text(lo), .text(hi)]
        }
        let pending = """
            FROM files f WHERE NOT f.deleted AND f.failure IS NULL AND (\(ranges.joined(separator: " OR ")))
            AND NOT EXISTS (SELECT 1 FROM \(table) v WHERE v.file_id = f.id)
            """
        let total = Int(try store.one("SELECT count(*) " + pending, binds, as: Int64.self) ?? 0)
        guard total > 0 else { return }
        try model.requireFileEmbeddingMemory()
        let start = Date()
        var done = 0
        while true {
            let finished = try store.transaction { () -> Bool in
                let claimed = try store.query("SELECT f.id, f.path " + pending + " ORDER BY f.id LIMIT \(options.batchSize) FOR UPDATE OF f SKIP LOCKED", binds)
                    .map { try $0.decode((Int64, String).self) }
                if claimed.isEmpty { return true }
                // The claim's snapshot may predate another process's commit of these very files: look again.
                let ids = claimed.map(\.0)
                let stored = Set(try store.query("SELECT file_id FROM \(table) WHERE file_id = ANY($1)", [.ints(ids)]).map { try $0.decode(Int64.self) })
                let todo = claimed.filter { !stored.contains($0.0) }
                let images = try model.embed(files: todo.map(\.1))
                let byPath = Dictionary(todo.map { ($0.1, $0.0) }, uniquingKeysWith: { a, _ in a })
                for (path, vector) in zip(images.loaded, images.vectors) {
                    guard let id = byPath[path] else { continue }
                    try store.query("INSERT INTO \(table) (file_id, vector) VALUES ($1, $2::real[]::vector) ON CONFLICT DO NOTHING", [.int(id), .floats(vector)])
                }
                for failure in images.failures {
                    guard let id = byPath[failure.path] else { continue }
                    try store.query("UPDATE files SET failure = $1 WHERE id = $2", [.text(ImageFiles.reason(failure)), .int(id)])
                }
                summary.embedded += images.vectors.count
                summary.failed += images.failures.count
                done += claimed.count
                return false
            }
            if finished { break }
            progress?(IndexProgress(phase: .embedding, done: done, total: total, elapsed: Date().timeIntervalSince(start)))
        }
    }

}

extension SearchIndex {
    /// Builds the HNSW index of a PostgreSQL slot now (normally built when a slot large enough is
    /// complete). Returns false if it had one, or the index is not PostgreSQL.
    @discardableResult
    public func buildVectorIndex(slot: ModelSlot) throws -> Bool {
        guard let pg = store as? PostgresStore else { return false }
        return try pg.buildVectorIndex(slot: slot.id)
    }
}

extension SearchIndex {
    /// For `swiftclip bench-search --db postgresql://…` only: stores `vectors` (row-major, unit
    /// length) as files `/bench/<row>` in a slot of a placeholder model, and returns the slot and the
    /// file id of each row. Not for photos: nothing is walked or embedded.
    @_spi(Benchmark)
    public func loadBenchmarkVectors(_ vectors: [Float], dimension: Int) throws -> (slot: ModelSlot, ids: [Int64]) {
        guard let pg = store as? PostgresStore else { throw SearchError.unsupported("\(location): benchmark loading needs a PostgreSQL index") }
        guard dimension > 0, vectors.count % dimension == 0 else { throw SearchError.badOption("vectors do not fill rows of \(dimension)") }
        let n = vectors.count / dimension
        let identity = ModelIdentity(config: "benchmark", weights: nil, seed: 0, precision: "fp32", preprocessing: "none",
                                     dimension: dimension, digest: "benchmark-\(n)x\(dimension)")
        let slotID = try pg.slot(for: identity)
        let table = PostgresStore.table(slotID)
        try pg.query("""
            INSERT INTO files (path, size, mtime_ns, hash) SELECT '/bench/' || g, 0, 0, '' FROM generate_series(0, $1::bigint - 1) g
            ON CONFLICT DO NOTHING
            """, [.int(Int64(n))])
        let ids = try pg.query("SELECT id FROM files WHERE path >= '/bench/' AND path < '/bench0' ORDER BY substring(path FROM 8)::bigint LIMIT $1",
                               [.int(Int64(n))]).map { try $0.decode(Int64.self) }
        guard ids.count == n else { throw SearchError.store("\(pg.name): expected \(n) benchmark files, found \(ids.count)") }
        if try pg.one("SELECT count(*) FROM \(table)", as: Int64.self) != Int64(n) {
            let rowsPerStatement = 200
            for start in stride(from: 0, to: n, by: rowsPerStatement) {
                let end = min(n, start + rowsPerStatement)
                var binds: [PostgresStore.Bind] = []
                var values: [String] = []
                for row in start..<end {
                    values.append("($\(binds.count + 1), $\(binds.count + 2)::real[]::vector)")
                    binds += [.int(ids[row]), .floats(Array(vectors[row * dimension..<(row + 1) * dimension]))]
                }
                try pg.query("INSERT INTO \(table) (file_id, vector) VALUES \(values.joined(separator: ", ")) ON CONFLICT DO NOTHING", binds)
            }
            try pg.query("UPDATE models SET completed_at = extract(epoch FROM clock_timestamp()) WHERE id = $1", [.int(slotID)])
        }
        guard let slot = try pg.slots().first(where: { $0.id == slotID }) else { throw SearchError.store("\(pg.name): the benchmark slot vanished") }
        return (slot, ids)
    }
}
