import CLIPServer
import Foundation
import XCTest

let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let fixtureImages = repoRoot.appendingPathComponent("Tests/CLIPDataTests/Fixtures")
/// A ViT with one block, 64×64 images and 16-dimensional embeddings: fast enough for many requests.
let tinyModel = repoRoot.appendingPathComponent("Tests/CLIPEvaluationTests/Fixtures/model/config.json").path

func fixture(_ name: String) throws -> Data { try Data(contentsOf: fixtureImages.appendingPathComponent(name)) }

func tinyConfiguration() -> ServerConfiguration {
    var c = ServerConfiguration(model: tinyModel)
    c.port = 0
    c.seed = 7
    c.vocabulary = repoRoot.appendingPathComponent("assets/bpe_simple_vocab_16e6.txt.gz")
    return c
}

/// A real server on a real socket, in this process. Tests are synchronous and use blocking sockets
/// from their own threads, so the server's tasks always have Swift's concurrency threads to run on.
final class RunningServer {
    private let task: Task<Void, Error>
    private let finished = DispatchSemaphore(value: 0)
    let port: Int
    var client: RawHTTP

    init(_ configuration: ServerConfiguration) throws {
        final class Port: @unchecked Sendable { var value: Int?; let ready = DispatchSemaphore(value: 0) }
        let port = Port(), finished = finished
        task = Task.detached {
            defer { port.ready.signal(); finished.signal() }
            try await CLIPServer.run(configuration) { port.value = $0; port.ready.signal() }
        }
        _ = port.ready.wait(timeout: .now() + 120)
        guard let bound = port.value else { throw RawHTTP.Failure(description: "server ended before listening") }
        self.port = bound
        client = RawHTTP(port: bound, token: configuration.token)
        // Ready once the model is loaded and warmed.
        for _ in 0..<1200 {
            if (try? client.request("GET", "/ready"))?.status == 200 { return }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw RawHTTP.Failure(description: "server never became ready")
    }

    func stop() {
        task.cancel()
        _ = finished.wait(timeout: .now() + 60)
    }
}

/// `body(0..<n)` on n threads at once; results in index order.
private final class ThreadResults<T>: @unchecked Sendable { let lock = NSLock(); var values: [Int: Result<T, Error>] = [:] }

func onThreads<T>(_ n: Int, _ body: @escaping @Sendable (Int) throws -> T) throws -> [T] {
    let results = ThreadResults<T>(), group = DispatchGroup()
    for i in 0..<n {
        group.enter()
        Thread { let r = Result { try body(i) }; results.lock.withLock { results.values[i] = r }; group.leave() }.start()
    }
    group.wait()
    return try (0..<n).map { try results.values[$0]!.get() }
}

/// Embedding rows of a response (float encoding).
func embeddingRows(_ r: RawHTTP.Response) -> [[Float]] {
    ((r.json?["data"] as? [[String: Any]]) ?? []).map { (($0["embedding"] as? [Double]) ?? []).map(Float.init) }
}

func assertClose(_ a: [Float], _ b: [Float], tolerance: Float = 1e-4, _ message: String = "", file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, message, file: file, line: line)
    XCTAssertFalse(a.isEmpty, message, file: file, line: line)
    let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
    XCTAssertLessThanOrEqual(worst, tolerance, "\(message): max |a-b| = \(worst)", file: file, line: line)
}
