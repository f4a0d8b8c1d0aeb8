import CLIPData
import CLIPDetection
import CLIPEvaluation
import Foundation
import Hummingbird

/// An error a client gets as `{"error": {"code", "message"}}` with `status`. Every failure a route
/// can meet maps to one of these (`APIError.from`), so no request ends in a bare 500.
public struct APIError: Error, CustomStringConvertible, Sendable {
    public let status: HTTPResponse.Status
    public let code: String
    public let message: String
    /// Seconds for `Retry-After` (queue full, not ready).
    public var retryAfter: Int?
    /// The request body was not read to its end: answer, then close the connection instead of draining it.
    public var closeConnection = false

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String, retryAfter: Int? = nil, closeConnection: Bool = false) {
        self.status = status
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
        self.closeConnection = closeConnection
    }

    public var description: String { "\(status.code) \(code): \(message)" }

    static func badRequest(_ message: String, code: String = "invalid_request") -> APIError { APIError(.badRequest, code, message) }

    /// Maps any error a handler threw to what the client sees.
    static func from(_ error: Error) -> APIError {
        switch error {
        case let e as APIError: return e
        case let e as ImageError:
            if case .tooLarge = e { return APIError(.contentTooLarge, "image_too_large", e.description) }
            return APIError(.badRequest, "invalid_image", e.description)
        case let e as ZeroShotError: return APIError(.badRequest, "invalid_request", e.description)
        case let e as DetectionError: return APIError(.badRequest, "invalid_request", e.description)
        case let e as HTTPError:
            switch e.status {
            case .notFound: return APIError(.notFound, "not_found", "no such route")
            case .methodNotAllowed: return APIError(.methodNotAllowed, "method_not_allowed", "method not allowed on this route")
            case .contentTooLarge: return APIError(.contentTooLarge, "body_too_large", e.body ?? "request body too large", closeConnection: true)
            default: return APIError(e.status, "http_error", e.body ?? e.status.reasonPhrase)
            }
        case is DecodingError: return APIError(.badRequest, "invalid_json", "request body is not the JSON this route takes: \(error)")
        default: return APIError(.internalServerError, "internal", "internal error: \(error)")
        }
    }

    /// The JSON response.
    var response: Response {
        struct Body: Encodable { struct Inner: Encodable { let code: String; let message: String }; let error: Inner }
        let data = (try? JSONEncoder().encode(Body(error: .init(code: code, message: message)))) ?? Data("{}".utf8)
        var headers: HTTPFields = [.contentType: "application/json"]
        if let retryAfter { headers[.retryAfter] = String(retryAfter) }
        if closeConnection { headers[.connection] = "close" }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
