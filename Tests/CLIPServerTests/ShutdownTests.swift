import Foundation
import XCTest

/// `swiftclip serve` as a real process: SIGTERM lets a request in flight finish, then exits 0.
final class ShutdownTests: XCTestCase {
    func testSIGTERMDrainsTheRequestInFlightAndExitsZero() throws {
        let binary = repoRoot.appendingPathComponent(".build/release/swiftclip")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else { throw XCTSkip("no release binary at \(binary.path)") }
        let p = Process()
        p.executableURL = binary
        p.arguments = ["serve", "--model", tinyModel, "--port", "0", "--vocab", repoRoot.appendingPathComponent("assets/bpe_simple_vocab_16e6.txt.gz").path]
        p.currentDirectoryURL = repoRoot
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        defer { if p.isRunning { p.terminate() } }

        // "swiftclip serve: listening on http://127.0.0.1:PORT …"
        var printed = ""
        while !printed.contains("\n") {
            let d = out.fileHandleForReading.availableData
            guard !d.isEmpty else { break }
            printed += String(decoding: d, as: UTF8.self)
        }
        guard let range = printed.range(of: #"127\.0\.0\.1:(\d+)"#, options: .regularExpression),
              let port = Int(printed[range].split(separator: ":").last ?? "") else {
            return XCTFail("no port in '\(printed)'")
        }
        let client = RawHTTP(port: port)
        var ready = false
        for _ in 0..<600 where !ready {
            ready = (try? client.request("GET", "/ready"))?.status == 200
            if !ready { Thread.sleep(forTimeInterval: 0.1) }
        }
        XCTAssertTrue(ready)

        // Half a request, then SIGTERM, then the other half: it is answered, and the process exits 0.
        let jpeg = try fixture("flower.jpg")
        let conn = try RawHTTP.Connection(port: port)
        conn.send(RawHTTP.head("POST", "/v1/embeddings/image", headers: ["Content-Type": "image/jpeg", "Content-Length": String(jpeg.count)]) + jpeg.prefix(jpeg.count / 2))
        Thread.sleep(forTimeInterval: 0.3)
        kill(p.processIdentifier, SIGTERM)
        Thread.sleep(forTimeInterval: 0.5)
        XCTAssertTrue(p.isRunning, "exited with a request in flight")
        conn.send(jpeg.suffix(from: jpeg.count / 2))
        let r = try conn.readResponse()
        XCTAssertEqual(r.status, 200, r.text)
        XCTAssertEqual(embeddingRows(r).first?.count, 16)

        let deadline = Date().addingTimeInterval(30)
        while p.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
        XCTAssertFalse(p.isRunning, "still running 30 s after SIGTERM")
        XCTAssertEqual(p.terminationReason, .exit)
        XCTAssertEqual(p.terminationStatus, 0)
    }
}
