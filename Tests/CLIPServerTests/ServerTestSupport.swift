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

/// A real server on a real socket, in this process.
final class RunningServer {
    let task: Task<Void, Error>
    let port: Int
    var client: RawHTTP

    init(_ configuration: ServerConfiguration) async throws {
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        task = Task { defer { continuation.finish() }; try await CLIPServer.run(configuration) { continuation.yield($0) } }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else {
            _ = try await task.value
            throw RawHTTP.Failure(description: "server ended before listening")
        }
        self.port = port
        client = RawHTTP(port: port, token: configuration.token)
        // Ready once the model is loaded and warmed.
        for _ in 0..<600 {
            if (try? client.request("GET", "/ready"))?.status == 200 { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw RawHTTP.Failure(description: "server never became ready")
    }

    func stop() async {
        task.cancel()
        _ = try? await task.value
    }
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
