import Foundation
import Hummingbird
import NIOCore
import NIOHTTP1

/// Outermost: every thrown error becomes the JSON error answer; routes, status and latency go to
/// the metrics; a refused body that was left unread closes its connection after the answer.
struct ErrorsAndMetricsMiddleware: RouterMiddleware {
    typealias Context = ServerContext
    let metrics: ServerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as HTTPParserError {
            // A malformed request or a client gone mid-body: Hummingbird answers 400 (if it still
            // can) and closes the connection.
            record(request, context, status: 400, since: start)
            throw error
        } catch {
            let apiError = APIError.from(error)
            if apiError.status == .internalServerError { context.logger.error("\(request.method) \(request.uri.path): \(error)") }
            response = apiError.response
            if apiError.closeConnection {
                // The answer is written right after this returns; then stop reading what is left of the body.
                let channel = context.channel
                channel.eventLoop.scheduleTask(in: .seconds(1)) { channel.close(promise: nil) }
            }
        }
        record(request, context, status: response.status.code, since: start)
        return response
    }

    private func record(_ request: Request, _ context: Context, status: Int, since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        metrics.recordRequest(route: context.endpointPath ?? "unmatched", method: request.method.rawValue, status: status, seconds: seconds)
    }
}

/// Bearer-token authentication, compared in constant time. `/health` and the page itself (which
/// holds no data; its API calls carry the token) stay open.
struct BearerTokenMiddleware: RouterMiddleware {
    typealias Context = ServerContext
    let token: [UInt8]
    static let openPaths: Set<String> = ["/health", "/"]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.method == .get, Self.openPaths.contains(request.uri.path) { return try await next(request, context) }
        let header = request.headers[.authorization] ?? ""
        let prefix = "Bearer "
        guard header.count > prefix.count, header.hasPrefix(prefix) else {
            throw APIError(.unauthorized, "unauthorized", "this server needs 'Authorization: Bearer <token>'")
        }
        guard Self.constantTimeEqual(Array(header.utf8.dropFirst(prefix.utf8.count)), token) else {
            throw APIError(.unauthorized, "unauthorized", "wrong bearer token")
        }
        return try await next(request, context)
    }

    /// Equal in time independent of where the first difference is (length differences included).
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for i in 0..<max(a.count, b.count) {
            difference |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
        }
        return difference == 0
    }
}
