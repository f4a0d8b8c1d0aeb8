import CLIPData
import CLIPEngine
import Foundation
import GRDB

/// How `update(roots:model:options:)` runs.
public struct UpdateOptions: Sendable {
    /// Images per transaction. Each image is decoded and embedded whole on one thread
    /// (`IndexModel.embed(files:)`), so memory holds one image and one forward pass per thread
    /// whatever the batch. 32 rather than 8: 300 photos indexed 4–5% faster (the threads wait less
    /// at the end of each batch; Zen 4, 2026-12-07); a killed run loses at most 32 embeddings
    /// (~2 s of work).
    public var batchSize: Int
    /// Tombstone the files of a root that is missing, unreadable or holds no images (otherwise that
    /// is an error: an unmounted disk must not empty the index).
    public var prune: Bool
    /// File name extensions indexed (lower case).
    public var extensions: Set<String>
    /// Folder names (`fnmatch` globs) not walked; what the index holds under them is tombstoned.
    public var excludedFolderNames: [String]

    /// Folders no photo library wants searched, as rclip leaves out `@eaDir`, `node_modules` and
    /// `.git`: Synology's per-photo thumbnails (`@eaDir`) and recycle bin (`#recycle`), desktop
    /// trash on removable disks (`.Trash-1000`, macOS's `.Trashes`), version control, packages.
    public static let defaultExcludedFolderNames = ["@eaDir", "#recycle", ".Trash-*", ".Trashes", ".git", "node_modules"]

    public init(batchSize: Int = 32, prune: Bool = false, extensions: Set<String> = ImageFiles.extensions,
                excludedFolderNames: [String] = UpdateOptions.defaultExcludedFolderNames) {
        self.batchSize = batchSize; self.prune = prune; self.extensions = extensions
        self.excludedFolderNames = excludedFolderNames
    }
}

/// Where a running update is, for a progress bar.
public struct IndexProgress: Sendable {
    public enum Phase: String, Sendable { case scanning, embedding }
    public var phase: Phase
    /// Files looked at (scanning) or embedded/failed (embedding).
    public var done: Int
    /// Files to embed in this run (known once scanning ends).
    public var total: Int?
    /// Seconds since the phase began.
    public var elapsed: Double

    package init(phase: Phase, done: Int, total: Int?, elapsed: Double) {
        self.phase = phase; self.done = done; self.total = total; self.elapsed = elapsed
    }
}

extension SearchIndex {
    /// Brings the index up to date with the image files under `roots` for `model`'s slot: new and
    /// changed files embedded, moved/renamed/copied ones given their stored vector (content hash),
    /// unchanged ones (same size and mtime) skipped without reading, gone ones tombstoned (only
    /// under `roots`), undecodable ones recorded with the reason. Each batch is one transaction,
    /// so a killed run loses at most one batch and the next run continues.
    public func update(roots: [String], model: IndexModel, options: UpdateOptions = UpdateOptions(),
                       progress: ((IndexProgress) -> Void)? = nil) throws -> IndexSummary {
        guard options.batchSize > 0 else { throw SearchError.badOption("--batch-size must be at least 1") }
        guard !roots.isEmpty else { throw SearchError.badOption("give at least one folder to index") }
        if store.readOnly { throw SearchError.readOnly(store.name) }
        let (walkable, gone) = try Self.checkRoots(roots, prune: options.prune)
        if let own = store as? any IndexingStore {
            return try own.update(walkable: walkable, gone: gone, model: model, options: options, progress: progress)
        }
        guard let store = store as? SQLiteStore else { throw SearchError.unsupported("\(location): indexing is not supported here") }
        let slot = try store.slot(for: model.identity)
        let run = try store.write { db -> Int64 in
            try db.execute(sql: "INSERT INTO runs (started_at, roots) VALUES (?, ?)",
                           arguments: [Date().timeIntervalSince1970, (walkable + gone).joined(separator: "\n")])
            return db.lastInsertedRowID
        }
        var summary = IndexSummary()
        let walker = try Self.walk(walkable, options: options, summary: &summary, progress: progress) { batch, summary in
            try reconcile(batch, store: store, slot: slot, run: run, summary: &summary)
        }
        let unreadable = walker.unreadablePaths
        summary.removed = try store.write { db -> Int in
            var removed = 0
            for root in walkable + gone {
                var sql = "UPDATE files SET deleted = 1 WHERE path >= ? AND path < ? AND deleted = 0 AND seen_run != ?"
                let (lo, hi) = PathPrefix.range(root)
                var args: StatementArguments = [lo, hi, run]
                for path in unreadable where PathPrefix.contains(root, path) {
                    let (ulo, uhi) = PathPrefix.range(path)
                    sql += " AND NOT (path = ? OR (path >= ? AND path < ?))"
                    args += [path, ulo, uhi]
                }
                try db.execute(sql: sql, arguments: args)
                removed += db.changesCount
            }
            return removed
        }
        try embedPending(under: walkable, store: store, slot: slot, model: model, options: options, summary: &summary, progress: progress)
        try store.write { db in
            let missing = try Int.fetchOne(db, sql: """
                SELECT count(*) FROM files f WHERE f.deleted = 0 AND f.failure IS NULL
                AND NOT EXISTS (SELECT 1 FROM vectors v WHERE v.model_id = ? AND v.file_id = f.id)
                """, arguments: [slot]) ?? 0
            if missing == 0 {
                try db.execute(sql: "UPDATE models SET completed_at = ? WHERE id = ? AND completed_at IS NULL",
                               arguments: [Date().timeIntervalSince1970, slot])
            }
            let json = String(decoding: try JSONEncoder().encode(summary), as: UTF8.self)
            try db.execute(sql: "UPDATE runs SET finished_at = ?, summary = ? WHERE id = ?", arguments: [Date().timeIntervalSince1970, json, run])
        }
        return summary
    }

    /// The roots split into folders to walk and ones that are gone (allowed only with `prune`): a
    /// root that is missing or unreadable is refused before anything is written.
    static func checkRoots(_ roots: [String], prune: Bool) throws -> (walkable: [String], gone: [String]) {
        var walkable: [String] = [], gone: [String] = []
        for given in roots {
            let root = IndexPaths.canonical(given)
            var isDir: ObjCBool = false
            let why: String?
            if !FileManager.default.fileExists(atPath: root, isDirectory: &isDir) { why = "no such folder" }
            else if !isDir.boolValue {
                throw SearchError.badOption("\(given): a file, not a folder: index takes folders (embed-image embeds single files)")
            }
            else if let d = opendir(root) { closedir(d); why = nil }
            else { why = "cannot read the folder (\(String(cString: strerror(errno))))" }
            if let why {
                guard prune else { throw SearchError.rootMissing(given, why) }
                gone.append(root)
            } else {
                walkable.append(root)
            }
        }
        // A root inside another one (or given twice) is walked as part of it, once.
        let distinct = Array(Set(walkable)).sorted()
        walkable = distinct.filter { root in !distinct.contains { $0 != root && PathPrefix.contains($0, root) } }
        return (walkable, gone)
    }

    /// Walks the roots, handing the found files to `reconcile` 512 at a time; an empty root (what
    /// an unmounted disk looks like) is an error unless `prune`. Returns the walker (what it could not read).
    package static func walk(_ walkable: [String], options: UpdateOptions, summary: inout IndexSummary, progress: ((IndexProgress) -> Void)?,
                     reconcile: ([FolderWalker.Entry], inout IndexSummary) throws -> Void) throws -> FolderWalker {
        var walker = FolderWalker(extensions: options.extensions, excludedNames: options.excludedFolderNames)
        let scanStart = Date()
        var scanned = 0
        var empty: [String] = []
        for root in walkable {
            var pending: [FolderWalker.Entry] = []
            var found = 0
            try walker.walk(root) { entry in
                pending.append(entry)
                found += 1
                if pending.count == 512 {
                    try reconcile(pending, &summary)
                    scanned += pending.count
                    pending.removeAll(keepingCapacity: true)
                    progress?(IndexProgress(phase: .scanning, done: scanned, total: nil, elapsed: Date().timeIntervalSince(scanStart)))
                }
            }
            if !pending.isEmpty { try reconcile(pending, &summary) }
            scanned += pending.count
            if found == 0 { empty.append(root) }
        }
        summary.unreadableFolders = FolderWalker.described(walker.unreadableFolders)
        summary.unreadableFiles = FolderWalker.described(walker.unreadableFiles)
        summary.excludedFolders = walker.excludedFolders
        if let first = empty.first, !options.prune {
            if let unreadable = walker.unreadableFolders.first(where: { $0.path == first }) {
                throw SearchError.rootMissing(first, unreadable.reason)
            }
            throw SearchError.rootMissing(first, "holds no JPEG or PNG files")
        }
        return walker
    }

    /// One transaction: each walked file compared with its row (size, mtime, content hash).
    private func reconcile(_ entries: [FolderWalker.Entry], store: SQLiteStore, slot: Int64, run: Int64, summary: inout IndexSummary) throws {
        guard !entries.isEmpty else { return }
        try store.write { db in
            for e in entries {
                let row = try Row.fetchOne(db, sql: "SELECT id, size, mtime_ns, hash, deleted FROM files WHERE path = ?", arguments: [e.path])
                if let row, row["size"] == e.size, row["mtime_ns"] == e.mtimeNanoseconds {
                    let id: Int64 = row["id"]
                    if row["deleted"] == 1 { summary.revived += 1 } else { summary.unchanged += 1 }
                    try db.execute(sql: "UPDATE files SET seen_run = ?, deleted = 0 WHERE id = ?", arguments: [run, id])
                    continue
                }
                let hash: String
                do { hash = try FileHash.partial(path: e.path, size: e.size) } catch {
                    // Unreadable (permissions): record it as failed; retried when it changes.
                    try upsert(db, row: row, entry: e, hash: "", failure: "\(error)", run: run)
                    summary.failed += 1
                    continue
                }
                if let row {
                    if row["deleted"] == 1 { summary.revived += 1 } else { summary.changed += 1 }
                    let id: Int64 = row["id"]
                    if row["hash"] == hash {
                        // Touched, same content: keep its vectors and any recorded failure.
                        try db.execute(sql: "UPDATE files SET size = ?, mtime_ns = ?, seen_run = ?, deleted = 0 WHERE id = ?",
                                       arguments: [e.size, e.mtimeNanoseconds, run, id])
                        continue
                    }
                    try db.execute(sql: "DELETE FROM vectors WHERE file_id = ?", arguments: [id])
                } else {
                    summary.new += 1
                }
                let id = try upsert(db, row: row, entry: e, hash: hash, failure: nil, run: run)
                // A copy, move or rename: the same content already has vectors (in every slot).
                try db.execute(sql: """
                    INSERT OR IGNORE INTO vectors (model_id, file_id, vector)
                    SELECT v.model_id, ?, v.vector FROM files f JOIN vectors v ON v.file_id = f.id
                    WHERE f.hash = ? AND f.id != ? GROUP BY v.model_id
                    """, arguments: [id, hash, id])
                if try Int.fetchOne(db, sql: "SELECT count(*) FROM vectors WHERE model_id = ? AND file_id = ?", arguments: [slot, id]) == 1 {
                    summary.moved += 1
                }
            }
        }
    }

    @discardableResult
    private func upsert(_ db: Database, row: Row?, entry e: FolderWalker.Entry, hash: String, failure: String?, run: Int64) throws -> Int64 {
        if let row {
            let id: Int64 = row["id"]
            try db.execute(sql: "UPDATE files SET size = ?, mtime_ns = ?, hash = ?, deleted = 0, failure = ?, seen_run = ? WHERE id = ?",
                           arguments: [e.size, e.mtimeNanoseconds, hash, failure, run, id])
            return id
        }
        try db.execute(sql: "INSERT INTO files (path, size, mtime_ns, hash, failure, seen_run) VALUES (?, ?, ?, ?, ?, ?)",
                       arguments: [e.path, e.size, e.mtimeNanoseconds, hash, failure, run])
        return db.lastInsertedRowID
    }

    /// Embeds the live, readable files under `roots` that have no vector in the slot, a batch per
    /// transaction.
    private func embedPending(under roots: [String], store: SQLiteStore, slot: Int64, model: IndexModel, options: UpdateOptions,
                              summary: inout IndexSummary, progress: ((IndexProgress) -> Void)?) throws {
        var filter = "(" + roots.map { _ in "(f.path >= ? AND f.path < ?)" }.joined(separator: " OR ") + ")"
        if roots.isEmpty { filter = "0" }
        var pendingArgs = StatementArguments()
        for root in roots { let (lo, hi) = PathPrefix.range(root); pendingArgs += [lo, hi] }
        pendingArgs += [slot]
        let pendingSQL = """
            FROM files f WHERE f.deleted = 0 AND f.failure IS NULL AND \(filter)
            AND NOT EXISTS (SELECT 1 FROM vectors v WHERE v.model_id = ? AND v.file_id = f.id)
            """
        let total = try store.read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) " + pendingSQL, arguments: pendingArgs) ?? 0
        }
        guard total > 0 else { return }
        try model.requireFileEmbeddingMemory()
        let start = Date()
        var done = 0, lastID: Int64 = 0
        while true {
            let rows = try store.read { db in
                try Row.fetchAll(db, sql: "SELECT f.id, f.path " + pendingSQL + " AND f.id > ? ORDER BY f.id LIMIT ?",
                                 arguments: pendingArgs + [lastID, options.batchSize])
            }
            guard let last = rows.last else { break }
            lastID = last["id"]
            let ids: [Int64] = rows.map { $0["id"] }, paths: [String] = rows.map { $0["path"] }
            let images = try model.embed(files: paths)
            let byPath = Dictionary(zip(paths, ids), uniquingKeysWith: { a, _ in a })
            try store.write { db in
                for (path, vector) in zip(images.loaded, images.vectors) {
                    guard let id = byPath[path] else { continue }
                    let blob = vector.withUnsafeBufferPointer(VectorBlob.encode)
                    try db.execute(sql: "INSERT OR REPLACE INTO vectors (model_id, file_id, vector) VALUES (?, ?, ?)", arguments: [slot, id, blob])
                }
                for failure in images.failures {
                    guard let id = byPath[failure.path] else { continue }
                    try db.execute(sql: "UPDATE files SET failure = ? WHERE id = ?", arguments: [ImageFiles.reason(failure), id])
                }
            }
            summary.embedded += images.vectors.count
            summary.failed += images.failures.count
            done += ids.count
            progress?(IndexProgress(phase: .embedding, done: done, total: total, elapsed: Date().timeIntervalSince(start)))
        }
    }
}
