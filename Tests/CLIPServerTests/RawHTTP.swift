import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A deliberately plain HTTP/1.1 client over a POSIX socket, so tests can also misbehave: send a
/// body slowly, lie about its length, or hang up half-way.
struct RawHTTP {
    struct Response {
        let status: Int
        let headers: [String: String]
        let body: Data
        var json: [String: Any]? { try? JSONSerialization.jsonObject(with: body) as? [String: Any] }
        var errorCode: String? { (json?["error"] as? [String: Any])?["code"] as? String }
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    struct Failure: Error, CustomStringConvertible { let description: String }

    let port: Int
    var token: String?

    /// An open connection; `send` and `readResponse` may be interleaved as a test needs.
    final class Connection {
        let fd: Int32
        init(port: Int, receiveTimeout: Double = 60) throws {
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw Failure(description: "socket() failed") }
            var tv = timeval(tv_sec: Int(receiveTimeout), tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            guard rc == 0 else { close(fd); throw Failure(description: "connect to port \(port) failed: errno \(errno)") }
        }

        /// Sends all bytes; false when the peer has closed (EPIPE/ECONNRESET).
        @discardableResult
        func send(_ data: Data) -> Bool {
            data.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    let n = Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                    if n <= 0 { return false }
                    offset += n
                }
                return true
            }
        }

        /// Reads one response (Content-Length bodies; the server always sends one).
        func readResponse() throws -> Response {
            var buffer = Data()
            var chunk = [UInt8](repeating: 0, count: 65_536)
            func fill() throws {
                let n = recv(fd, &chunk, chunk.count, 0)
                guard n > 0 else { throw Failure(description: "connection closed or timed out after \(buffer.count) bytes (errno \(errno))") }
                buffer.append(contentsOf: chunk[0..<n])
            }
            let separator = Data("\r\n\r\n".utf8)
            while buffer.range(of: separator) == nil { try fill() }
            let headEnd = buffer.range(of: separator)!
            let head = String(decoding: buffer[..<headEnd.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
            let statusParts = head[0].split(separator: " ")
            guard statusParts.count >= 2, let status = Int(statusParts[1]) else { throw Failure(description: "bad status line '\(head[0])'") }
            var headers: [String: String] = [:]
            for line in head.dropFirst() {
                guard let colon = line.firstIndex(of: ":") else { continue }
                headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
            let length = Int(headers["content-length"] ?? "0") ?? 0
            while buffer.count - headEnd.upperBound < length { try fill() }
            return Response(status: status, headers: headers, body: buffer.subdata(in: headEnd.upperBound..<(headEnd.upperBound + length)))
        }

        deinit { close(fd) }
    }

    static func head(_ method: String, _ path: String, headers: [String: String]) -> Data {
        var text = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for (k, v) in headers.sorted(by: { $0.key < $1.key }) { text += "\(k): \(v)\r\n" }
        return Data((text + "\r\n").utf8)
    }

    /// One request on its own connection.
    func request(_ method: String, _ path: String, body: Data? = nil, contentType: String? = nil,
                 headers extra: [String: String] = [:], authorize: Bool = true) throws -> Response {
        var headers = extra
        if let contentType { headers["Content-Type"] = contentType }
        if let body, headers["Content-Length"] == nil { headers["Content-Length"] = String(body.count) }
        if authorize, let token, headers["Authorization"] == nil { headers["Authorization"] = "Bearer \(token)" }
        let c = try Connection(port: port)
        c.send(Self.head(method, path, headers: headers) + (body ?? Data()))
        return try c.readResponse()
    }

    func json(_ method: String, _ path: String, _ object: Any) throws -> Response {
        try request(method, path, body: try JSONSerialization.data(withJSONObject: object), contentType: "application/json")
    }

    /// A multipart/form-data body of (name, filename, content type, bytes) parts.
    static func multipart(_ parts: [(name: String, filename: String?, type: String?, data: Data)], boundary: String = "swiftclip-test-boundary") -> (Data, String) {
        var body = Data()
        for p in parts {
            var h = "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(p.name)\""
            if let f = p.filename { h += "; filename=\"\(f)\"" }
            h += "\r\n"
            if let t = p.type { h += "Content-Type: \(t)\r\n" }
            body += Data((h + "\r\n").utf8) + p.data + Data("\r\n".utf8)
        }
        body += Data("--\(boundary)--\r\n".utf8)
        return (body, "multipart/form-data; boundary=\(boundary)")
    }
}
