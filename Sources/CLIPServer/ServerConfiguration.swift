import CLIPData
import CLIPEngine
import CLIPSearch
import Foundation

/// Everything `swiftclip serve` can be told. Defaults are the safe ones: loopback only, no CORS,
/// bounded bodies, queues and waits.
public struct ServerConfiguration: Sendable {
    // Model
    public var model: String
    public var weights: URL?
    public var vocabulary: URL?
    public var seed: UInt64 = 0
    public var precision: Precision = .fp32
    /// The search index (`--db`: a SQLite file or a PostgreSQL URL); nil: `/v1/search` and `/v1/images/…` answer 404 `no_index`.
    public var searchDatabase: String?
    /// How `searchDatabase` is opened (read-only). The default knows SQLite; `swiftclip serve` passes
    /// `IndexDatabase.open` from CLIPSearchPostgres for PostgreSQL URLs, which this library does not link.
    public var openIndex: @Sendable (String) throws -> SearchIndex = { try SearchIndex.open($0, readOnly: true) }
    /// A box head made by `swiftclip train-detector` (`--detector`); nil: `/v1/detect` answers 404 `no_detector`.
    public var detector: URL?

    // Network and safety
    public var host = "127.0.0.1"
    /// 0 picks a free port (printed on start).
    public var port = 8080
    /// Bearer token; required when `host` is not a loopback address.
    public var token: String?
    /// `Access-Control-Allow-Origin` for this origin only; nil: no CORS headers at all.
    public var corsOrigin: String?
    public var maxBodyBytes = 32 << 20
    /// Largest image (width × height) a request may send, checked from its header before decoding;
    /// nil: the decoders' own limits (30,000 px a side, 200 Mpx).
    public var maxImagePixels: Int?
    /// A request body must arrive within this time (a client trickling bytes is answered 408).
    public var bodyTimeout: Duration = .seconds(10)
    /// A connection with nothing read or written for this long is closed.
    public var idleTimeout: Duration = .seconds(30)

    // Batching
    public var maxBatch = 16
    public var maxWait: Duration = .milliseconds(5)
    /// Items (images or texts) waiting for a pass, per queue; more is 503 with Retry-After.
    public var queueCapacity = 256
    /// From a request's arrival to its rows; past it while queued: 504.
    public var requestTimeout: Duration = .seconds(30)

    // Per-request limits
    public var maxImagesPerRequest = 32
    public var maxTextsPerRequest = 256
    public var maxTextLength = 2_000
    public var maxLabels = 1_000
    public var maxTemplates = 100
    public var maxTopK = 1_000

    public init(model: String) { self.model = model }

    /// Refuses (413 `image_too_large`) an image whose header states more pixels than `maxImagePixels`,
    /// before anything is decoded or allocated for it.
    func checkImagePixels(_ data: Data, name: String) throws {
        guard let cap = maxImagePixels, let (w, h) = ImageDecoder.headerDimensions(data), w * h > cap else { return }
        throw APIError(.contentTooLarge, "image_too_large", "\(name): header claims \(w)x\(h) = \(w * h) pixels, over this server's limit of \(cap) (--max-image-pixels)")
    }

    /// Whether `host` only accepts connections from this machine.
    public static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// The rules the options must keep; each failure names its option.
    public func validate() throws {
        func require(_ ok: Bool, _ message: String) throws { if !ok { throw ServerConfigurationError(message: message) } }
        try require(!Self.isLoopback(host) ? !(token ?? "").isEmpty : true,
                    "--host \(host) listens beyond this machine: give a bearer token with --token, --token-file or SWIFTCLIP_TOKEN")
        if let token { try require(token.count >= 8 && !token.contains(where: \.isWhitespace),
                                   "the token must be at least 8 characters without spaces") }
        try require((0...65_535).contains(port), "--port must be in 0...65535, got \(port)")
        try require((1...1024).contains(maxBatch), "--max-batch must be in 1...1024, got \(maxBatch)")
        try require(maxWait >= .zero && maxWait <= .seconds(10), "--max-wait-ms must be in 0...10000")
        try require((1...1_000_000).contains(queueCapacity), "--queue-size must be in 1...1000000, got \(queueCapacity)")
        try require(requestTimeout > .zero, "--timeout-ms must be positive")
        try require(maxBodyBytes >= 1024 && maxBodyBytes <= 1 << 30, "--max-body-mb must be in 1...1024")
        try require(bodyTimeout > .zero && idleTimeout > .zero, "--body-timeout-ms and --idle-timeout-s must be positive")
        try require(maxImagesPerRequest >= 1, "--max-images must be at least 1")
        if let maxImagePixels { try require(maxImagePixels >= 1, "--max-image-pixels must be at least 1, got \(maxImagePixels)") }
        if let corsOrigin { try require(corsOrigin.hasPrefix("http://") || corsOrigin.hasPrefix("https://"),
                                        "--cors must be an origin such as https://example.org, got '\(corsOrigin)'") }
    }
}

public struct ServerConfigurationError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
