import Foundation
import Hummingbird
import NIOCore

/// The request context: Hummingbird's core context plus the connection, so a route that refused a
/// body it did not read can close the connection instead of draining it.
public struct ServerContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

/// Reading request bodies under the server's limits.
struct BodyReader {
    let maxBytes: Int
    let timeout: Duration

    /// The whole body: over `maxBytes` (declared or while reading) is 413, slower than `timeout` is
    /// 408; both close the connection after the answer, leaving the rest unread.
    func read(_ request: Request) async throws -> Data {
        if let declared = request.headers[.contentLength].flatMap({ Int($0) }), declared > maxBytes {
            throw tooLarge("Content-Length \(declared)")
        }
        let deadline = ContinuousClock.now + timeout
        var data = Data()
        for try await chunk in request.body {
            guard data.count + chunk.readableBytes <= maxBytes else { throw tooLarge("body over \(data.count + chunk.readableBytes) bytes") }
            guard ContinuousClock.now <= deadline else {
                throw APIError(.requestTimeout, "body_timeout", "the request body did not arrive within \(timeout); closing", closeConnection: true)
            }
            data.append(contentsOf: chunk.readableBytesView)
        }
        return data
    }

    private func tooLarge(_ what: String) -> APIError {
        APIError(.contentTooLarge, "body_too_large", "\(what) is over the limit of \(maxBytes) bytes", closeConnection: true)
    }
}

extension Request {
    /// The media type of the body, lower-cased, without parameters.
    var mediaType: String {
        (headers[.contentType] ?? "").split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
    }

    /// A body that is one image file: JPEG or PNG by its type, including the names some clients use
    /// (`image/jpg`, `image/pjpeg`), or bytes sent as `application/octet-stream` or with no type at
    /// all (`requests.post(url, data=f)`). The decoder tells JPEG from PNG by the magic bytes; anything
    /// else is a 400 naming what it is not.
    var isImageBody: Bool { Self.imageBodyTypes.contains(mediaType) }
    static let imageBodyTypes: Set<String> = ["image/jpeg", "image/jpg", "image/pjpeg", "image/png", "application/octet-stream", ""]

    func decodeJSON<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        guard mediaType == "application/json" else {
            throw APIError(.unsupportedMediaType, "unsupported_media_type", "this route takes application/json, got '\(headers[.contentType] ?? "")'")
        }
        do { return try JSONDecoder().decode(T.self, from: data) } catch {
            throw APIError.badRequest("invalid JSON body: \(Self.describe(error))", code: "invalid_json")
        }
    }

    private static func describe(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): return "missing key '\(key.stringValue)'"
        case DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c):
            return "wrong type at '\(c.codingPath.map(\.stringValue).joined(separator: "."))': \(c.debugDescription)"
        case DecodingError.dataCorrupted(let c): return c.debugDescription + (c.underlyingError.map { " (\($0.localizedDescription))" } ?? "")
        default: return "\(error)"
        }
    }
}

/// How embeddings are written in responses.
enum EmbeddingEncoding: String, Codable {
    case float, base64

    /// JSON numbers, or base64 of the little-endian float32 bytes.
    func encode(_ row: [Float]) -> EncodedEmbedding {
        switch self {
        case .float: return .float(row)
        case .base64:
            var bytes = [UInt8](); bytes.reserveCapacity(row.count * 4)
            for v in row { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes += $0 } }
            return .base64(Data(bytes).base64EncodedString())
        }
    }
}

enum EncodedEmbedding: Encodable {
    case float([Float]), base64(String)
    func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .float(let v): try c.encode(v)
        case .base64(let s): try c.encode(s)
        }
    }
}

/// L2-normalised copy (a zero row stays zero).
func l2Normalized(_ row: [Float]) -> [Float] {
    let norm = row.reduce(Double(0)) { $0 + Double($1) * Double($1) }.squareRoot()
    return norm == 0 ? row : row.map { Float(Double($0) / norm) }
}

func jsonResponse<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
    let data = try JSONEncoder().encode(value)
    return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
}
