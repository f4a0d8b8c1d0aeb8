import CLIPSearch
import Foundation
import GRDB
import XCTest

/// `swiftclip index` and `swiftclip search` as a user runs them (the release binary).
final class IndexCLITests: XCTestCase {
    let binary = repoRoot.appendingPathComponent(".build/release/swiftclip")
    var photos: PhotoFolder!
    var db: String { photos.parent.appendingPathComponent("index.sqlite").path }

    override func setUpWithError() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "build the release binary first")
        photos = try PhotoFolder()
    }
    override func tearDown() { photos?.cleanUp() }

    @discardableResult
    func run(_ arguments: [String], status expected: Int32 = 0, unprivileged: Bool = false,
             file: StaticString = #filePath, line: UInt = #line) throws -> (out: String, err: String) {
        let p = Process()
        if unprivileged && geteuid() == 0 {
            // Permissions do not stop root: run as `nobody` so they do.
            p.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            p.arguments = ["--reuid=65534", "--regid=65534", "--clear-groups", binary.path] + arguments
        } else {
            p.executableURL = binary
            p.arguments = arguments
        }
        p.environment = ProcessInfo.processInfo.environment.merging(["SWIFTCLIP_VOCAB": vocabulary.path]) { $1 }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let result = (String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
        XCTAssertEqual(p.terminationReason, .exit, "\(arguments) died by a signal", file: file, line: line)
        XCTAssertEqual(p.terminationStatus, expected, "\(arguments): \(result.1)", file: file, line: line)
        return result
    }

    /// The disk fills up in the middle of a run: a clear error, the database consistent (what the
    /// finished batches wrote), and with space again the next run completes it. The full disk is a
    /// small tmpfs mounted in a private mount namespace (`unshare`, so no root is needed).
    func testFullDiskMidRunKeepsTheIndexConsistent() throws {
        let count = 1500
        for i in 0..<count { try photos.add("noise_120x90.png", as: "p/\(i).png", trailer: "\(i)") } // distinct contents
        let mount = photos.parent.appendingPathComponent("small-disk").path
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        let db = mount + "/index.sqlite"
        let index = "'\(binary.path)' index '\(photos.path)' --db '\(db)' --model '\(tinyModelConfig)' --batch-size 64 --threads 1"
        let script = """
            mount -t tmpfs -o size=256k tmpfs '\(mount)' || exit 90
            \(index) >/dev/null 2>full.err; echo "first=$?"; tr -d '\\r' < full.err | tail -n 1
            '\(binary.path)' index --db '\(db)' --status | head -n 2
            mount -o remount,size=8m '\(mount)' || exit 91
            \(index) --json; echo "second=$?"
            '\(binary.path)' index --db '\(db)' --status | head -n 2
            """
        let r = runTool(["/usr/bin/unshare", "--user", "--map-root-user", "--mount", "/bin/sh", "-c", "cd '\(photos.parent.path)' && " + script],
                        environment: ["SWIFTCLIP_VOCAB": vocabulary.path])
        if r.status == 90 || (r.status != 0 && r.err.contains("unshare")) {
            try XCTSkipIf(ProcessInfo.processInfo.environment["CI"] == nil, "cannot mount a small tmpfs here: \(r.err)")
        }
        XCTAssertEqual(r.status, 0, r.err)
        let lines = r.out.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains("first=1"), r.out)
        XCTAssertTrue(r.out.contains("the disk is full; the index is unchanged since the last finished batch") && r.out.contains(db), r.out)
        XCTAssertTrue(lines.contains("second=0"), r.out)
        // After the failure the database opens and reports what the finished batches wrote; at the end every file has its vector.
        let statuses = lines.filter { $0.hasPrefix("files ") }
        XCTAssertEqual(statuses.count, 2, r.out)
        XCTAssertTrue(lines.contains { $0.hasPrefix("slot 1:") && $0.contains("incomplete") }, "the failed run left its slot incomplete: \(r.out)")
        XCTAssertTrue(statuses.last?.hasPrefix("files \(count),") ?? false, r.out)
        XCTAssertTrue(r.out.contains("\(count) vectors, complete"), r.out)
        guard let json = lines.first(where: { $0.hasPrefix("{") }) else { return XCTFail("no JSON summary: \(r.out)") }
        let summary = try JSONDecoder().decode(IndexSummary.self, from: Data(json.utf8))
        XCTAssertEqual(summary.embedded, count)
        XCTAssertEqual(summary.unchanged + summary.new, count)
    }

    func testIndexThenSearchInTwoCommands() throws {
        try photos.add("china.jpg", as: "china.jpg")
        try photos.add("flower.jpg", as: "x/flower.jpg")
        try photos.add("noise_120x90.png", as: "x/no\nise.png") // a newline in a name: one line per result all the same
        let first = try run(["index", photos.path, "--db", db, "--model", tinyModelConfig, "--seed", "3", "--json"])
        let summary = try JSONDecoder().decode(IndexSummary.self, from: Data(first.out.utf8))
        XCTAssertEqual([summary.new, summary.embedded], [3, 3])
        // search finds the model in the index's record.
        let r = try run(["search", "--db", db, "a red car in the snow", "+2:snow", "-dog", "--top", "2", "--json"])
        let results = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [[String: Any]] ?? []
        XCTAssertEqual(results.count, 2)
        XCTAssertEqual(results.map { $0["rank"] as? Int }, [1, 2])
        XCTAssertNotNil(results.first?["path"] as? String)
        let byImage = try run(["search", "--db", db, "--image", photos.url.appendingPathComponent("china.jpg").path, "--top", "1"])
        XCTAssertTrue(byImage.out.contains("china.jpg"), byImage.out)
        let under = try run(["search", "--db", db, "cat", "--under", photos.url.appendingPathComponent("x").path])
        XCTAssertEqual(under.out.split(separator: "\n").count, 2, under.out)
        XCTAssertTrue(under.out.contains("x/no\\nise.png"), under.out)
        // Status, a re-run that does nothing, the model-change rule and bad input.
        XCTAssertTrue(try run(["index", "--db", db, "--status"]).out.contains("files 3"))
        let again = try run(["index", photos.path, "--db", db, "--json"])
        XCTAssertEqual(try JSONDecoder().decode(IndexSummary.self, from: Data(again.out.utf8)).unchanged, 3)
        // --drop-model with an empty or short digest prefix (a script's unset variable) matched every
        // slot and dropped the only one; now it is refused and nothing is dropped.
        for bad in ["", "a", "abc12"] {
            let refused = try run(["index", "--db", db, "--drop-model", bad], status: 64)
            XCTAssertTrue(refused.err.contains("at least 6 hex digits"), refused.err)
        }
        XCTAssertTrue(try run(["index", "--db", db, "--status"]).out.contains("3 vectors"))
        let other = try run(["search", "--db", db, "cat", "--model", tinyModelConfig, "--seed", "4"], status: 1)
        XCTAssertTrue(other.err.contains("no vectors from this model"), other.err)
        let unmounted = photos.parent.appendingPathComponent("unmounted").path
        try FileManager.default.createDirectory(atPath: unmounted, withIntermediateDirectories: true)
        let refused = try run(["index", unmounted, "--db", db], status: 1)
        XCTAssertTrue(refused.err.contains("--prune"), refused.err)
        let notDB = try run(["search", "--db", photos.url.appendingPathComponent("china.jpg").path, "cat"], status: 1)
        XCTAssertTrue(notDB.err.contains("not an SQLite database"), notDB.err)
        let dups = try run(["search", "--db", db, "--duplicates", "--threshold", "0.5", "--json"])
        XCTAssertNotNil(try JSONSerialization.jsonObject(with: Data(dups.out.utf8)) as? [Any])
    }

    /// An unreadable sub-folder is reported and its files kept; a read-only index refuses to index
    /// and still searches.
    func testUnreadableFolderAndReadOnlyIndex() throws {
        if geteuid() == 0 { try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv"), "root without setpriv") }
        try photos.add("china.jpg", as: "a/china.jpg")
        try photos.add("flower.jpg", as: "b/flower.jpg")
        try photos.add("noise_120x90.png", as: "b/noise.png")
        if geteuid() == 0 {
            for path in [photos.parent.path, photos.path, photos.url.appendingPathComponent("a").path, photos.url.appendingPathComponent("b").path] {
                XCTAssertEqual(chown(path, 65534, 65534), 0)
            }
        }
        try run(["index", photos.path, "--db", db, "--model", tinyModelConfig], unprivileged: true)
        let locked = photos.url.appendingPathComponent("b").path
        XCTAssertEqual(chmod(locked, 0), 0)
        let r = try run(["index", photos.path, "--db", db, "--json"], unprivileged: true)
        XCTAssertEqual(chmod(locked, 0o755), 0)
        XCTAssertTrue(r.err.contains(locked), r.err)
        let summary = try JSONDecoder().decode(IndexSummary.self, from: Data(r.out.utf8))
        XCTAssertEqual([summary.unchanged, summary.removed], [1, 0])
        XCTAssertEqual(summary.unreadableFolders.count, 1)
        // Listed but not searchable (r without x): no entry of it can be looked at, so it is
        // reported as a whole and none of its files taken for gone.
        XCTAssertEqual(chmod(locked, 0o644), 0)
        let listed = try run(["index", photos.path, "--db", db, "--json"], unprivileged: true)
        XCTAssertEqual(chmod(locked, 0o755), 0)
        XCTAssertTrue(listed.err.contains("\(locked): cannot look inside the folder (Permission denied)"), listed.err)
        let listedSummary = try JSONDecoder().decode(IndexSummary.self, from: Data(listed.out.utf8))
        XCTAssertEqual([listedSummary.unchanged, listedSummary.removed, listedSummary.unreadableFolders.count], [1, 0, 1])
        XCTAssertTrue(try run(["index", "--db", db, "--status"]).out.contains("files 3"))
        XCTAssertEqual(chmod(db, 0o444), 0)
        let refused = try run(["index", photos.path, "--db", db], status: 1, unprivileged: true)
        XCTAssertTrue(refused.err.contains("read-only"), refused.err)
        let found = try run(["search", "--db", db, "a photo", "--json"], unprivileged: true)
        XCTAssertEqual((try JSONSerialization.jsonObject(with: Data(found.out.utf8)) as? [Any])?.count, 3)
    }

    /// kill -9 in the middle of a real run: the database is consistent and the next run finishes the job.
    func testKilledRunResumes() throws {
        let fixtures = ["china.jpg", "flower.jpg", "noise_120x90.png", "exact_64x100.png", "flower_640x480_progressive.jpg"]
        let count = 400
        for i in 0..<count { try photos.add(fixtures[i % fixtures.count], as: "d\(i / 100)/img\(i).\(fixtures[i % fixtures.count].hasSuffix("png") ? "png" : "jpg")", trailer: "#\(i)") }
        let p = Process()
        p.executableURL = binary
        p.arguments = ["index", photos.path, "--db", db, "--model", tinyModelConfig, "--batch-size", "4", "--threads", "1"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        // Wait until some batches are committed, then kill it without warning.
        var before = 0
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline && p.isRunning {
            before = (try? DatabaseQueue(path: db, configuration: { var c = Configuration(); c.readonly = true; return c }())
                .read { try Int.fetchOne($0, sql: "SELECT count(*) FROM vectors") ?? 0 }) ?? 0
            if before >= 8 { break }
            usleep(20_000)
        }
        XCTAssertTrue(p.isRunning, "the run ended before it could be killed (\(before) vectors)")
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationReason, .uncaughtSignal)
        let check = try DatabaseQueue(path: db).read { db -> (String, Int) in
            (try String.fetchOne(db, sql: "PRAGMA integrity_check") ?? "", try Int.fetchOne(db, sql: "SELECT count(*) FROM vectors") ?? 0)
        }
        XCTAssertEqual(check.0, "ok")
        let committed = check.1
        XCTAssertLessThan(committed, count, "killed before the end")
        let resumed = try run(["index", photos.path, "--db", db, "--json"])
        let summary = try JSONDecoder().decode(IndexSummary.self, from: Data(resumed.out.utf8))
        XCTAssertEqual(summary.embedded, count - committed, "the second run embeds exactly what the first did not commit")
        let status = try SearchIndex.open(db, readOnly: true).status()
        XCTAssertEqual(status.live, count)
        XCTAssertEqual(status.slots.first?.vectors, count)
        XCTAssertNotNil(status.slots.first?.completedAt)
    }
}
