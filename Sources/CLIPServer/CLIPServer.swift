import Foundation
import Hummingbird
import Logging
import NIOCore

/// `swiftclip serve`: builds the application (routes, middleware, limits) and runs it until SIGTERM
/// or SIGINT, which stop accepting connections and let requests in flight finish.
public enum CLIPServer {
    /// Runs the server. The socket opens at once (`/health` answers); the model loads and is warmed
    /// by one image and one text pass, and only then does `/ready` answer 200. A model that fails to
    /// load stops the server with that error. `onListening` gets the bound port.
    public static func run(_ configuration: ServerConfiguration, onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        try configuration.validate()
        let metrics = ServerMetrics()
        metrics.setReady(false)
        let state = ServerState()
        let router = Router(context: ServerContext.self)
        router.add(middleware: ErrorsAndMetricsMiddleware(metrics: metrics))
        if let origin = configuration.corsOrigin {
            router.add(middleware: CORSMiddleware(allowOrigin: .oneOf(origin), allowHeaders: [.accept, .authorization, .contentType],
                                                  allowMethods: [.get, .post, .options]))
        }
        if let token = configuration.token { router.add(middleware: BearerTokenMiddleware(token: Array(token.utf8))) }
        Routes(state: state, configuration: configuration, metrics: metrics).register(on: router)
        try router.validate()

        var logger = Logger(label: "swiftclip-serve")
        logger.logLevel = .warning
        let idle = configuration.idleTimeout.components
        let app = Application(
            router: router,
            server: .http1(configuration: .init(idleTimeout: .nanoseconds(idle.seconds * 1_000_000_000 + idle.attoseconds / 1_000_000_000))),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "swiftclip"),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? configuration.port) },
            logger: logger)

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.runService() }
            group.addTask {
                let service = try await Task.detached {
                    let s = try InferenceService(configuration: configuration, metrics: metrics)
                    try s.warmUp()
                    return s
                }.value
                state.set(service)
                metrics.setReady(true)
            }
            // The first to finish: the load (keep serving) or the server (shut down) — an error ends both.
            do {
                try await group.next()
                try await group.next()
            } catch {
                group.cancelAll()
                throw error
            }
        }
        if let s = try? state.service() { s.stop() }
    }

    /// The routes the server registers, as "METHOD /path" with `{name}` captures (for the OpenAPI test).
    public static func registeredRoutes(_ configuration: ServerConfiguration) -> [String] {
        let router = Router(context: ServerContext.self)
        Routes(state: ServerState(), configuration: configuration, metrics: ServerMetrics()).register(on: router)
        return router.routes.map { "\($0.method.rawValue) \($0.path)" }
    }
}

extension CLIPServer {
    /// The OpenAPI 3.1 document served at `/openapi.json`.
    public static var openAPIDocument: String { OpenAPIDocument.json }
}
