import CLIPServer
import Foundation
import XCTest

/// Issue 23's list of bad inputs, all against one running server with a token: each gets its 4xx
/// (JSON error with a code), and a good request afterwards still gets its answer.
final class BadInputTests: XCTestCase {
    func testBadInputsGet4xxAndTheServerKeepsServing() throws {
        var c = tinyConfiguration()
        c.token = "test-token-0123456789"
        c.maxBodyBytes = 4 << 20
        c.bodyTimeout = .milliseconds(1500)
        c.idleTimeout = .seconds(5)
        let server = try RunningServer(c)
        defer { server.stop() }
        let client = server.client
        let jpeg = try fixture("china.jpg")

        func expect(_ r: RawHTTP.Response, _ status: Int, _ code: String, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertEqual(r.status, status, "\(what): \(r.text)", file: file, line: line)
            XCTAssertEqual(r.errorCode, code, "\(what): \(r.text)", file: file, line: line)
            XCTAssertEqual(r.headers["content-type"], "application/json", what, file: file, line: line)
        }

        // Truncated JPEG, and a PNG whose header claims 50,000 × 50,000 (refused before allocating 7.5 GB).
        expect(try client.request("POST", "/v1/embeddings/image", body: jpeg.prefix(jpeg.count / 3), contentType: "image/jpeg"), 400, "invalid_image", "truncated JPEG")
        expect(try client.request("POST", "/v1/embeddings/image", body: Self.pngHeader(width: 50_000, height: 50_000), contentType: "image/png"), 413, "image_too_large", "50000x50000 PNG")
        expect(try client.request("POST", "/v1/embeddings/image", body: Data("GIF89a....".utf8), contentType: "image/jpeg"), 400, "invalid_image", "a GIF sent as JPEG")
        // Wrong content type, invalid JSON, wrong JSON shape.
        expect(try client.request("POST", "/v1/embeddings/image", body: jpeg, contentType: "text/plain"), 415, "unsupported_media_type", "text/plain image")
        expect(try client.request("POST", "/v1/embeddings/text", body: Data(#"{"texts": ["a"]}"#.utf8), contentType: "text/plain"), 415, "unsupported_media_type", "text/plain JSON")
        expect(try client.request("POST", "/v1/embeddings/text", body: Data(#"{"texts": ["a",}"#.utf8), contentType: "application/json"), 400, "invalid_json", "invalid JSON")
        expect(try client.json("POST", "/v1/embeddings/text", ["texts": "not a list"]), 400, "invalid_json", "texts not a list")
        expect(try client.json("POST", "/v1/embeddings/text", ["text": ["a"]]), 400, "invalid_json", "missing key")
        // Empty and 10,000-item text lists; an over-long text.
        expect(try client.json("POST", "/v1/embeddings/text", ["texts": [String]()]), 400, "invalid_request", "empty list")
        expect(try client.json("POST", "/v1/embeddings/text", ["texts": Array(repeating: "a cat", count: 10_000)]), 400, "too_many_items", "10,000 texts")
        expect(try client.json("POST", "/v1/embeddings/text", ["texts": [String(repeating: "x", count: 100_000)]]), 400, "invalid_request", "100k-character text")
        // Classification without labels, with a template lacking {}, with a non-base64 image.
        expect(try client.json("POST", "/v1/classify", ["image": jpeg.base64EncodedString(), "labels": [String]()]), 400, "invalid_request", "no labels")
        expect(try client.json("POST", "/v1/classify", ["image": jpeg.base64EncodedString(), "labels": ["a"], "templates": ["no slot"]]), 400, "invalid_request", "template without {}")
        expect(try client.json("POST", "/v1/classify", ["image": "%%%", "labels": ["a"]]), 400, "invalid_request", "bad base64")
        expect(try client.json("POST", "/v1/classify", ["image": jpeg.base64EncodedString(), "labels": ["cat", "dog", "cat"]]), 400, "invalid_request", "a label twice")
        // Malformed multipart.
        expect(try client.request("POST", "/v1/embeddings/image", body: Data("--b\r\nno end".utf8), contentType: "multipart/form-data; boundary=b"), 400, "invalid_multipart", "truncated multipart")
        expect(try client.request("POST", "/v1/embeddings/image", body: jpeg, contentType: "multipart/form-data"), 400, "invalid_multipart", "multipart without boundary")
        // Bad query options.
        expect(try client.request("POST", "/v1/embeddings/image?encoding=hex", body: jpeg, contentType: "image/jpeg"), 400, "invalid_request", "encoding=hex")

        // Missing and wrong token; /health stays open; unknown route.
        expect(try client.request("POST", "/v1/embeddings/image", body: jpeg, contentType: "image/jpeg", authorize: false), 401, "unauthorized", "no token")
        expect(try client.request("GET", "/ready", headers: ["Authorization": "Bearer test-token-0123456788"]), 401, "unauthorized", "wrong token")
        expect(try client.request("GET", "/metrics", headers: ["Authorization": "Basic dXNlcjpwYXNz"]), 401, "unauthorized", "basic auth")
        XCTAssertEqual(try client.request("GET", "/health", authorize: false).status, 200)
        expect(try client.request("GET", "/v2/nothing"), 404, "not_found", "unknown route")

        // A declared 100 MB body: refused from its Content-Length, connection closed without reading it.
        do {
            let conn = try RawHTTP.Connection(port: server.port)
            conn.send(RawHTTP.head("POST", "/v1/embeddings/image", headers: ["Content-Type": "image/jpeg", "Content-Length": String(100 << 20), "Authorization": "Bearer \(c.token!)"]))
            conn.send(Data(count: 1 << 20))
            expect(try conn.readResponse(), 413, "body_too_large", "100 MB declared")
        }
        // A chunked body (no length declared) over the 4 MB cap: refused while reading, at the cap.
        do {
            let conn = try RawHTTP.Connection(port: server.port)
            conn.send(RawHTTP.head("POST", "/v1/embeddings/image", headers: ["Content-Type": "image/jpeg", "Transfer-Encoding": "chunked", "Authorization": "Bearer \(c.token!)"]))
            let chunk = Data(String(1 << 20, radix: 16).utf8) + Data("\r\n".utf8) + Data(count: 1 << 20) + Data("\r\n".utf8)
            for _ in 0..<6 { conn.send(chunk) }
            expect(try conn.readResponse(), 413, "body_too_large", "6 MB chunked")
        }
        // A body sent one byte every 300 ms: 408 once the body timeout (1.5 s) has passed.
        do {
            let conn = try RawHTTP.Connection(port: server.port)
            conn.send(RawHTTP.head("POST", "/v1/embeddings/text", headers: ["Content-Type": "application/json", "Content-Length": "1000", "Authorization": "Bearer \(c.token!)"]))
            let started = Date()
            let sender = Thread { for _ in 0..<40 { guard conn.send(Data("x".utf8)) else { return }; Thread.sleep(forTimeInterval: 0.3) } }
            sender.start()
            expect(try conn.readResponse(), 408, "body_timeout", "slow body")
            XCTAssertLessThan(Date().timeIntervalSince(started), 11, "answered long before the trickle would have ended")
        }
        // Clients that hang up mid-body and mid-headers.
        for _ in 0..<3 {
            let conn = try RawHTTP.Connection(port: server.port)
            conn.send(RawHTTP.head("POST", "/v1/embeddings/image", headers: ["Content-Type": "image/jpeg", "Content-Length": String(jpeg.count), "Authorization": "Bearer \(c.token!)"]) + jpeg.prefix(100))
        }
        do {
            let conn = try RawHTTP.Connection(port: server.port)
            conn.send(Data("POST /v1/embeddings/text HTTP/1.1\r\nHost: x\r\nContent-Le".utf8))
        }

        // And the server still answers a good request.
        let good = try client.request("POST", "/v1/embeddings/image", body: jpeg, contentType: "image/jpeg")
        XCTAssertEqual(good.status, 200, good.text)
        XCTAssertEqual(embeddingRows(good).first?.count, 16)
        let metrics = try client.request("GET", "/metrics").text
        XCTAssertFalse(metrics.contains("status=\"500\""), "no request ended in a 500:\n\(metrics)")
    }

    /// A PNG whose IHDR (valid CRC) claims `width` × `height` RGB, followed by a small IDAT and IEND.
    static func pngHeader(width: UInt32, height: UInt32) -> Data {
        func chunk(_ type: String, _ payload: Data) -> Data {
            let body = Data(type.utf8) + payload
            var crc: UInt32 = 0xFFFF_FFFF
            for byte in body {
                crc ^= UInt32(byte)
                for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
            }
            return withUnsafeBytes(of: UInt32(payload.count).bigEndian) { Data($0) } + body + withUnsafeBytes(of: (crc ^ 0xFFFF_FFFF).bigEndian) { Data($0) }
        }
        var ihdr = Data()
        for v in [width, height] { ihdr += withUnsafeBytes(of: v.bigEndian) { Data($0) } }
        ihdr += Data([8, 2, 0, 0, 0])
        // zlib stream of a few zero bytes (far fewer than the header's rows).
        let idat = Data([0x78, 0x9C, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01])
        return Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) + chunk("IHDR", ihdr) + chunk("IDAT", idat) + chunk("IEND", Data())
    }
}
