import CLIPData
import CLIPSearch
import Foundation
import GRDB
import XCTest

/// The index on real SQLite files and real image files, with a tiny random model.
final class IndexTests: XCTestCase {
    var photos: PhotoFolder!
    var db: String { photos.parent.appendingPathComponent("index.sqlite").path }
    static let model = Result { try tinyModel(seed: 1) }

    override func setUpWithError() throws { photos = try PhotoFolder() }
    override func tearDown() { photos.cleanUp() }

    func makeFolder() throws {
        try photos.add("china.jpg", as: "a/china.jpg")
        try photos.add("flower.jpg", as: "a/flower.jpg")
        try photos.add("exact_64x100.png", as: "b/exact.png")
        try photos.add("noise_120x90.png", as: "b/c/noise.png")
        try photos.write(Data("not an image".utf8), as: "notes.txt")
    }

    func update(_ index: SearchIndex, prune: Bool = false) throws -> IndexSummary {
        try index.update(roots: [photos.path], model: Self.model.get(), options: UpdateOptions(batchSize: 3, prune: prune))
    }

    func testIncrementalRunsNewUnchangedChangedMovedRemovedRevived() throws {
        try makeFolder()
        let index = try SearchIndex.open(db)
        var s = try update(index)
        XCTAssertEqual([s.new, s.embedded, s.unchanged, s.failed, s.removed], [4, 4, 0, 0, 0])
        // Unchanged: nothing decoded.
        s = try update(index)
        XCTAssertEqual([s.new, s.embedded, s.unchanged, s.changed], [0, 0, 4, 0])
        // Changed content: embedded again; the vector is the new picture's.
        let flower = try photos.add("china_gray_200x150.jpg", as: "a/flower.jpg")
        s = try update(index)
        XCTAssertEqual([s.changed, s.embedded, s.unchanged], [1, 1, 3])
        let gray = try Self.model.get().embed(imageAt: flower)
        let top = try index.search([QueryTerm(.vector(gray))], model: Self.model.get(), options: SearchOptions(top: 1))
        XCTAssertEqual(top.first?.path, flower)
        XCTAssertEqual(top.first?.score ?? 0, 1, accuracy: 1e-5)
        // Moved: the vector is reused through the content hash, the old path is tombstoned.
        try photos.move("b/c/noise.png", "moved-noise.png")
        s = try update(index)
        XCTAssertEqual([s.new, s.moved, s.embedded, s.removed], [1, 1, 0, 1])
        // Copied: reused too; nothing embedded.
        try photos.add("china.jpg", as: "copy-of-china.jpg")
        s = try update(index)
        XCTAssertEqual([s.new, s.moved, s.embedded], [1, 1, 0])
        // Removed, then back with the same size and mtime: revived without decoding.
        let saved = try Data(contentsOf: photos.url.appendingPathComponent("b/exact.png"))
        let attributes = try FileManager.default.attributesOfItem(atPath: photos.url.appendingPathComponent("b/exact.png").path)
        try photos.remove("b/exact.png")
        s = try update(index)
        XCTAssertEqual(s.removed, 1)
        var status = try index.status()
        XCTAssertEqual([status.live, status.removed], [4, 2])
        let results = try index.search(text: "a photo", model: Self.model.get(), options: SearchOptions(top: 10))
        XCTAssertFalse(results.contains { $0.path.hasSuffix("exact.png") }, "a tombstoned file is not found")
        try photos.write(saved, as: "b/exact.png")
        try FileManager.default.setAttributes([.modificationDate: attributes[.modificationDate] as Any],
                                              ofItemAtPath: photos.url.appendingPathComponent("b/exact.png").path)
        s = try update(index)
        XCTAssertEqual([s.revived, s.embedded], [1, 0])
        status = try index.status()
        XCTAssertEqual([status.live, status.removed, status.failed], [5, 1, 0])
        XCTAssertEqual(status.slots.count, 1)
        XCTAssertEqual(status.slots[0].vectors, 5)
        XCTAssertNotNil(status.slots[0].completedAt)
    }

    /// A reader that keeps vectors in memory (the server) sees another connection's commits:
    /// removals and additions, with the same results as a search that streams from the database.
    func testVectorsKeptInMemoryFollowOtherWriters() throws {
        try makeFolder()
        let writer = try SearchIndex.open(db)
        _ = try update(writer)
        let reader = try SearchIndex.open(db, readOnly: true)
        reader.keepsVectorsInMemory = true
        let streaming = try SearchIndex.open(db, readOnly: true)
        let model = try Self.model.get()
        func check(_ expectedCount: Int) throws -> [SearchResult] {
            let kept = try reader.search(text: "a photo", model: model, options: SearchOptions(top: 20))
            let streamed = try streaming.search(text: "a photo", model: model, options: SearchOptions(top: 20))
            XCTAssertEqual(kept.map(\.path), streamed.map(\.path))
            XCTAssertEqual(kept.count, expectedCount)
            for (a, b) in zip(kept, streamed) { XCTAssertEqual(a.score, b.score, accuracy: 1e-6) }
            return kept
        }
        XCTAssertEqual(try check(4).count, 4)
        try photos.remove("b/exact.png")
        _ = try update(writer)
        XCTAssertFalse(try check(3).contains { $0.path.hasSuffix("exact.png") }, "a removal reaches the reader")
        let added = try photos.add("china_gray_200x150.jpg", as: "new/gray.jpg")
        _ = try update(writer)
        XCTAssertTrue(try check(4).contains { $0.path == added }, "an addition reaches the reader")
    }

    func testSearchRanksTopKMinScoreAndUnder() throws {
        try makeFolder()
        let index = try SearchIndex.open(db)
        _ = try update(index)
        let model = try Self.model.get()
        let china = IndexPaths.canonical(photos.url.appendingPathComponent("a/china.jpg").path)
        // An indexed image finds itself first (its stored vector is reused: score 1).
        let byImage = try index.search([QueryTerm(.image(path: china))], model: model, options: SearchOptions(top: 4))
        XCTAssertEqual(byImage.map(\.rank), [1, 2, 3, 4])
        XCTAssertEqual(byImage[0].path, china)
        XCTAssertEqual(byImage[0].score, 1, accuracy: 1e-5)
        XCTAssertEqual(byImage.map(\.score), byImage.map(\.score).sorted(by: >))
        XCTAssertEqual(try index.imagePath(id: byImage[0].id), china)
        // Scores are the cosine similarities of unit vectors: check one by hand.
        let q = try model.embed(imageAt: china), other = try model.embed(imageAt: byImage[1].path)
        XCTAssertEqual(byImage[1].score, zip(q, other).map(*).reduce(0, +), accuracy: 1e-4)
        // top, min-score, under.
        XCTAssertEqual(try index.search(text: "a flower", model: model, options: SearchOptions(top: 2)).count, 2)
        let cut = byImage[1].score
        XCTAssertEqual(try index.search([QueryTerm(.image(path: china))], model: model, options: SearchOptions(top: 10, minScore: cut)).count, 2)
        let under = try index.search(text: "a flower", model: model, options: SearchOptions(top: 10, under: photos.url.appendingPathComponent("b").path))
        XCTAssertEqual(Set(under.map { URL(fileURLWithPath: $0.path).lastPathComponent }), ["exact.png", "noise.png"])
        // Weighted terms: the query is the normalised weighted sum.
        let t = try model.embed(texts: ["snow", "dog"])
        var expected = zip(t[0], t[1]).map { 2 * $0 - $1 }
        let norm = expected.map { $0 * $0 }.reduce(0, +).squareRoot()
        expected = expected.map { $0 / norm }
        let weighted = try index.search(QueryTerm.parse(["+2:snow", "-dog"]), model: model, options: SearchOptions(top: 4))
        let byVector = try index.search([QueryTerm(.vector(expected))], model: model, options: SearchOptions(top: 4))
        XCTAssertEqual(weighted.map(\.path), byVector.map(\.path))
        for (a, b) in zip(weighted, byVector) { XCTAssertEqual(a.score, b.score, accuracy: 1e-5) }
        assertSearchError(try index.search([QueryTerm(.text("cat"), weight: 1), QueryTerm(.text("cat"), weight: -1)], model: model),
                          contains: ["cancel out"])
        assertSearchError(try index.search(text: "x", model: model, options: SearchOptions(top: 0)), contains: ["--top"])
        // The in-memory matrix gives the same answer.
        let slot = try index.defaultSlot()
        let matrix = try index.loadVectors(slot: slot)
        XCTAssertEqual(try index.search(vector: q, in: matrix, options: SearchOptions(top: 4)).map(\.path), byImage.map(\.path))
    }

    /// `embed(files:)` (each file decoded and embedded whole on one thread) gives the vectors of a
    /// batched pass over the same files preprocessed together, in order, with the files that do
    /// not decode returned beside them; a query by file decodes as the index does (alpha, palette).
    func testFileEmbeddingsMatchABatchedPassAndQueriesDecodeAsTheIndexDoes() throws {
        let model = try Self.model.get()
        let names = ["rgba_120x90.png", "china.jpg", "truncated.jpg", "palette4_trns_90x70.png", "flower.jpg", "noise_120x90.png"]
        let paths = try names.map { try photos.add($0, as: $0) }
        let embedded = try model.embed(files: paths)
        XCTAssertEqual(embedded.loaded, paths.filter { !$0.hasSuffix("truncated.jpg") })
        XCTAssertEqual(embedded.failures.map(\.path), paths.filter { $0.hasSuffix("truncated.jpg") })
        let batch = ImageFiles.load(paths, preprocessor: model.preprocessor)
        XCTAssertEqual(batch.loaded, embedded.loaded)
        let batched = try model.model.encodeImage(XCTUnwrap(batch.pixels), normalize: true)
        let d = batched.shape[1]
        for (row, vector) in embedded.vectors.enumerated() {
            let reference = Array(batched.scalars[row * d..<(row + 1) * d])
            for (a, b) in zip(vector, reference) { XCTAssertEqual(a, b, accuracy: 1e-6, embedded.loaded[row]) }
        }
        for (row, path) in embedded.loaded.enumerated() where path.hasSuffix(".png") {
            XCTAssertEqual(try model.embed(imageAt: path), embedded.vectors[row], path)
        }
        XCTAssertThrowsError(try model.embed(imageAt: paths[2])) { XCTAssertTrue("\($0)".contains("truncated.jpg"), "\($0)") }
    }

    /// The index embeds with the model's own eval transform (`preprocess_cfg`, as open_clip's
    /// `preprocess` and `embed-image` do) and records it; a default config records the text indexes
    /// made before always recorded, so their model digests still match.
    func testTheIndexUsesAndRecordsTheModelsPreprocessConfig() throws {
        let defaults = try Self.model.get()
        XCTAssertEqual(defaults.identity.preprocessing,
                       "resize-shortest-bicubic-centercrop 64 mean 0.48145467,0.4578275,0.40821072 std 0.26862955,0.2613026,0.2757771")
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tinyModelConfig))) as! [String: Any]
        config["preprocess_cfg"] = ["mean": 0.5, "std": [0.25, 0.5, 1.0], "resize_mode": "squash", "interpolation": "bilinear"]
        let path = photos.parent.appendingPathComponent("squash-config.json")
        try JSONSerialization.data(withJSONObject: config).write(to: path)
        let squash = try IndexModel(model: path.path, weights: nil, seed: 1, vocabulary: vocabulary)
        XCTAssertEqual(squash.identity.preprocessing, "resize-squash-bilinear 64 mean 0.5,0.5,0.5 std 0.25,0.5,1.0")
        XCTAssertNotEqual(squash.identity.digest, defaults.identity.digest)
        let file = try photos.add("rgba_120x90.png", as: "rgba_120x90.png")
        let image = try ImageDecoder.decodeImage(contentsOf: URL(fileURLWithPath: file))
        let transform = Preprocessor(imageSize: 64, mean: (0.5, 0.5, 0.5), std: (0.25, 0.5, 1.0), interpolation: .bilinear, resizeMode: .squash)
        let expected = try squash.model.encodeImage(transform(image).reshaped([1, 3, 64, 64]), normalize: true).scalars
        XCTAssertEqual(try squash.embed(imageAt: file), expected)
    }

    func testDecodeFailuresAreRecordedAndRetriedOnlyWhenChanged() throws {
        try makeFolder()
        try photos.add("truncated.jpg", as: "bad/truncated.jpg")
        try photos.add("empty.jpg", as: "bad/zero.jpg")
        try photos.write(Data("this is not a JPEG at all".utf8), as: "bad/corrupt.jpg")
        let index = try SearchIndex.open(db)
        var s = try update(index)
        let status = try index.status()
        XCTAssertEqual(s.failed, status.failed)
        XCTAssertGreaterThanOrEqual(s.failed, 2, "zero-byte and corrupt files fail (a truncated JPEG may decode partly)")
        XCTAssertTrue(status.failures.contains { $0.path.hasSuffix("bad/corrupt.jpg") && !$0.reason.isEmpty }, "\(status.failures)")
        XCTAssertTrue(status.failures.contains { $0.path.hasSuffix("bad/zero.jpg") }, "\(status.failures)")
        s = try update(index)
        XCTAssertEqual([s.failed, s.embedded], [0, 0], "a failed file is not retried while unchanged")
        // Fixed: the same name now holds a good image.
        try photos.add("flower.jpg", as: "bad/corrupt.jpg", trailer: "fixed")
        s = try update(index)
        XCTAssertEqual([s.changed, s.embedded, s.failed], [1, 1, 0])
        XCTAssertFalse(try index.status().failures.contains { $0.path.hasSuffix("bad/corrupt.jpg") })
    }

    func testAnEmptyOrMissingRootRemovesNothingUnlessPruned() throws {
        try makeFolder()
        let index = try SearchIndex.open(db)
        _ = try update(index)
        // A file given as a root is refused, --prune or not.
        let file = photos.url.appendingPathComponent("a/china.jpg").path
        assertSearchError(try index.update(roots: [file], model: Self.model.get(), options: UpdateOptions(batchSize: 3, prune: true)),
                          contains: [file, "a file, not a folder"])
        XCTAssertEqual(try index.status().live, 4)
        // "Unmounted": the folder is there but empty.
        let hidden = photos.parent.appendingPathComponent("hidden")
        try FileManager.default.moveItem(at: photos.url, to: hidden)
        try FileManager.default.createDirectory(at: photos.url, withIntermediateDirectories: true)
        assertSearchError(try update(index), contains: [photos.path, "holds no JPEG or PNG", "nothing was marked removed", "--prune"])
        XCTAssertEqual(try index.status().live, 4)
        try FileManager.default.removeItem(at: photos.url)
        assertSearchError(try update(index), contains: ["no such folder", "--prune"])
        XCTAssertEqual(try index.status().live, 4)
        // Deletions apply only under the roots given: indexing another folder leaves these alone.
        let other = try PhotoFolder("other")
        defer { other.cleanUp() }
        try other.add("flower.jpg", as: "f.jpg")
        _ = try index.update(roots: [other.path], model: Self.model.get())
        XCTAssertEqual(try index.status().live, 5)
        // Really gone: --prune tombstones them.
        let s = try update(index, prune: true)
        XCTAssertEqual(s.removed, 4)
        XCTAssertEqual(try index.status().live, 1)
    }

    func testSymlinkLoopsAndFolderLinksAreNotFollowed() throws {
        try makeFolder()
        try FileManager.default.createSymbolicLink(atPath: photos.url.appendingPathComponent("a/loop").path, withDestinationPath: photos.path)
        try FileManager.default.createSymbolicLink(atPath: photos.url.appendingPathComponent("link.jpg").path,
                                                   withDestinationPath: photos.url.appendingPathComponent("a/china.jpg").path)
        try FileManager.default.createSymbolicLink(atPath: photos.url.appendingPathComponent("dangling.jpg").path, withDestinationPath: "/nonexistent/x.jpg")
        let index = try SearchIndex.open(db)
        let s = try update(index)
        XCTAssertEqual(s.new, 5, "4 files and one file link; the folder loop and the dangling link are skipped")
    }

    /// Synology's per-photo thumbnails (`@eaDir`), trash and `.git` are left out by default, as
    /// rclip leaves out `@eaDir`; `--exclude` globs add to them and tombstone what was indexed under
    /// a newly excluded folder; a root inside another root is walked once.
    func testExcludedFoldersAndNestedRoots() throws {
        try makeFolder()
        try photos.add("china.jpg", as: "a/@eaDir/china.jpg/SYNOPHOTO_THUMB_XL.jpg", trailer: "thumb")
        try photos.add("flower.jpg", as: "b/.Trash-1000/files/old.jpg", trailer: "trash")
        try photos.add("flower.jpg", as: ".git/x.jpg", trailer: "git")
        let index = try SearchIndex.open(db)
        var s = try update(index)
        XCTAssertEqual([s.new, s.excludedFolders], [4, 3])
        s = try index.update(roots: [photos.path], model: Self.model.get(),
                             options: UpdateOptions(batchSize: 3, excludedFolderNames: []))
        XCTAssertEqual([s.new, s.unchanged, s.excludedFolders], [3, 4, 0], "nothing left out: the thumbnail, the trash, .git")
        s = try index.update(roots: [photos.path], model: Self.model.get(),
                             options: UpdateOptions(batchSize: 3, excludedFolderNames: UpdateOptions.defaultExcludedFolderNames + ["c*"]))
        XCTAssertEqual([s.unchanged, s.removed, s.excludedFolders], [3, 4, 4], "b/c/noise.png and the three left out again are tombstoned")
        XCTAssertEqual(try index.status().live, 3)
        s = try index.update(roots: [photos.path, photos.path + "/a", photos.path + "/"], model: Self.model.get(), options: UpdateOptions(batchSize: 3))
        XCTAssertEqual([s.new, s.unchanged, s.revived, s.removed], [0, 3, 1, 0], "every file looked at once (b/c/noise.png revived)")
    }

    /// Names that are not UTF-8 (a Latin-1 folder and file copied from an old disk) and a loop of
    /// file links: reported with the reason, never skipped in silence, and nothing removed for them.
    func testUndecodableNamesAndLinkLoopsAreReported() throws {
        try makeFolder()
        let index = try SearchIndex.open(db)
        _ = try update(index)
        let jpeg = try Data(contentsOf: imageFixtures.appendingPathComponent("china.jpg"))
        let root = Array(photos.path.utf8)
        let folder = root + Array("/caf".utf8) + [0xE9], inFolder = folder + Array("/x.jpg".utf8)
        let file = root + Array("/a/photo".utf8) + [0xFF] + Array(".jpg".utf8)
        func c(_ bytes: [UInt8]) -> [CChar] { bytes.map { CChar(bitPattern: $0) } + [0] }
        func write(_ bytes: [UInt8]) throws {
            let fd = open(c(bytes), O_CREAT | O_WRONLY | O_TRUNC, 0o644)
            XCTAssertGreaterThanOrEqual(fd, 0)
            _ = jpeg.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
            close(fd)
        }
        XCTAssertEqual(mkdir(c(folder), 0o755), 0)
        try write(inFolder)
        try write(file)
        defer { unlink(c(inFolder)); rmdir(c(folder)); unlink(c(file)) }
        let a = photos.url.appendingPathComponent("a")
        try FileManager.default.createSymbolicLink(atPath: a.appendingPathComponent("loop1.jpg").path, withDestinationPath: "loop2.jpg")
        try FileManager.default.createSymbolicLink(atPath: a.appendingPathComponent("loop2.jpg").path, withDestinationPath: "loop1.jpg")
        let s = try update(index)
        XCTAssertEqual(s.unreadableFolders, [photos.path + "/caf\u{FFFD}: the name is not valid UTF-8; rename it (SwiftCLIP keeps paths as UTF-8 text)"])
        XCTAssertEqual(s.unreadableFiles.count, 3, "\(s.unreadableFiles)")
        XCTAssertTrue(s.unreadableFiles.contains { $0.hasPrefix(photos.path + "/a/photo\u{FFFD}.jpg: the name is not valid UTF-8") }, "\(s.unreadableFiles)")
        XCTAssertTrue(s.unreadableFiles.contains { $0.hasSuffix("loop1.jpg: Too many levels of symbolic links") }, "\(s.unreadableFiles)")
        XCTAssertEqual([s.unchanged, s.new, s.removed], [4, 0, 0])
    }

    func testUnreadableSubfolderIsReportedAndItsFilesKept() throws {
        try XCTSkipIf(geteuid() == 0, "running as root: permissions do not stop reading a folder")
        try makeFolder()
        let index = try SearchIndex.open(db)
        _ = try update(index)
        let locked = photos.url.appendingPathComponent("b")
        try FileManager.default.setAttributes([.posixPermissions: 0], ofItemAtPath: locked.path)
        defer { _ = try? FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: locked.path) }
        let s = try update(index)
        XCTAssertEqual(s.unreadableFolders.count, 1)
        XCTAssertEqual(s.removed, 0)
        XCTAssertEqual(try index.status().live, 4)
    }

    func testModelSlots() throws {
        try makeFolder()
        let index = try SearchIndex.open(db)
        _ = try update(index)
        let other = try tinyModel(seed: 2)
        // Searching with another model is a clear error.
        assertSearchError(try index.search(text: "a dog", model: other), contains: ["no vectors from this model", "digest"])
        // Indexing with it makes a second slot; the first stays the default until the second is complete.
        XCTAssertEqual(try index.defaultSlot().model.digest, try Self.model.get().identity.digest)
        let s = try index.update(roots: [photos.path], model: other)
        XCTAssertEqual([s.unchanged, s.embedded], [4, 4])
        let slots = try index.slots()
        XCTAssertEqual(slots.count, 2)
        XCTAssertEqual(try index.defaultSlot().model.digest, other.identity.digest)
        XCTAssertEqual(try index.search(text: "a dog", model: other).count, 4)
        XCTAssertEqual(try index.search(text: "a dog", model: Self.model.get()).count, 4)
        // A loaded model from the record matches; precision is part of the identity.
        XCTAssertEqual(try index.loadModel(vocabulary: vocabulary).identity, other.identity)
        XCTAssertNotEqual(try IndexModel.identity(model: tinyModelConfig, weights: nil, seed: 2, precision: .bf16).digest, other.identity.digest)
        try index.dropModel(slot: slots[1])
        XCTAssertEqual(try index.slots().count, 1)
        assertSearchError(try index.search(text: "a dog", model: other), contains: ["no vectors from this model"])
    }

    func testDuplicates() throws {
        try photos.add("china.jpg", as: "one.jpg")
        try photos.add("china.jpg", as: "two.jpg", trailer: "x")
        try photos.add("noise_120x90.png", as: "three.png")
        let index = try SearchIndex.open(db)
        _ = try update(index)
        let groups = try index.duplicates(slot: index.defaultSlot(), threshold: 0.9999)
        XCTAssertEqual(groups.count, 1)
        XCTAssertEqual(Set(groups[0].map { URL(fileURLWithPath: $0.path).lastPathComponent }), ["one.jpg", "two.jpg"])
    }

    func testBadDatabases() throws {
        try makeFolder()
        let notSQLite = photos.parent.appendingPathComponent("notes.sqlite").path
        try Data("hello, this is text".utf8).write(to: URL(fileURLWithPath: notSQLite))
        assertSearchError(try SearchIndex.open(notSQLite), contains: [notSQLite, "not an SQLite database"])
        assertSearchError(try SearchIndex.open(notSQLite, readOnly: true), contains: [notSQLite, "not"])
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: notSQLite)), Data("hello, this is text".utf8), "left as it was")
        // Another program's SQLite database.
        let foreign = photos.parent.appendingPathComponent("foreign.sqlite").path
        try DatabaseQueue(path: foreign).write { try $0.execute(sql: "CREATE TABLE t(x)") }
        assertSearchError(try SearchIndex.open(foreign), contains: ["another program"])
        // A newer schema.
        do { _ = try SearchIndex.open(db) }
        try DatabaseQueue(path: db).write { try $0.execute(sql: "PRAGMA user_version = 99") }
        assertSearchError(try SearchIndex.open(db), contains: ["schema version 99", "newer"])
        // Missing for reading; a folder that does not exist for writing.
        assertSearchError(try SearchIndex.open(photos.parent.appendingPathComponent("none.sqlite").path, readOnly: true), contains: ["no such file"])
        assertSearchError(try SearchIndex.open("/nonexistent/dir/x.sqlite"), contains: ["folder does not exist"])
        assertSearchError(try SearchIndex.open(photos.path, readOnly: true), contains: [photos.path, "a folder"])
        assertSearchError(try SearchIndex.open("postgresql://u@127.0.0.1:1/x"), contains: ["PostgreSQL"])
        // Opened read-only (as `search` does): searching works, indexing is refused.
        try DatabaseQueue(path: db).write { try $0.execute(sql: "PRAGMA user_version = 1") }
        let reader = try SearchIndex.open(db, readOnly: true)
        XCTAssertEqual(try reader.status().live, 0)
        assertSearchError(try reader.update(roots: [photos.path], model: Self.model.get()), contains: ["read-only"])
    }

    /// A stored vector of the wrong size (a damaged or hand-edited row) is an error that names the
    /// database and the file id, not a crash or a wrong answer.
    func testAVectorOfTheWrongSizeIsNamed() throws {
        try makeFolder()
        let index = try SearchIndex.open(db)
        _ = try update(index)
        let id = try DatabaseQueue(path: db).write { db -> Int64 in
            let id = try XCTUnwrap(Int64.fetchOne(db, sql: "SELECT file_id FROM vectors ORDER BY file_id LIMIT 1"))
            try db.execute(sql: "UPDATE vectors SET vector = x'0000803F' WHERE file_id = ?", arguments: [id])
            return id
        }
        assertSearchError(try SearchIndex.open(db).search(text: "a flower", model: Self.model.get()),
                          contains: [db, "file id \(id)", "wrong size"])
    }

    func testReadOnlyDatabaseSearchesButDoesNotIndex() throws {
        try XCTSkipIf(geteuid() == 0, "running as root: file permissions do not stop writing")
        try makeFolder()
        do { _ = try update(SearchIndex.open(db)) }
        try FileManager.default.setAttributes([.posixPermissions: 0o444], ofItemAtPath: db)
        assertSearchError(try SearchIndex.open(db), contains: ["read-only"])
        let reader = try SearchIndex.open(db, readOnly: true)
        XCTAssertEqual(try reader.search(text: "a cat", model: Self.model.get()).count, 4)
    }
}
