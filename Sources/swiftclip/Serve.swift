import ArgumentParser
import CLIPSearch
import CLIPServer
import CLIPSearchPostgres
import Foundation

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "HTTP service: image/text embeddings, zero-shot classification, search page (docs/serving.md).",
        discussion: "Listens on 127.0.0.1 unless --host says otherwise; any other address needs a bearer token (--token, --token-file or $SWIFTCLIP_TOKEN). SIGTERM drains requests in flight and exits 0.")

    @OptionGroup var options: ModelOptions
    @OptionGroup var precisionOption: PrecisionOption
    @OptionGroup var vocabulary: VocabularyOptions
    @Option(name: .long, help: "Index made by `swiftclip index` (SQLite file) for /v1/search and the page; it must hold vectors of this model.") var db: String?
    @Option(name: .long, help: "Box head made by `swiftclip train-detector` (on this model's backbone): enables POST /v1/detect.") var detector: String?
    @Option(name: .long, help: "Address to listen on.") var host = "127.0.0.1"
    @Option(name: .long, help: "Port (0: any free port, printed).") var port = 8080
    @Option(name: .long, help: "Bearer token (prefer --token-file or $SWIFTCLIP_TOKEN: argv is visible to other users).") var token: String?
    @Option(name: .long, help: "File holding the bearer token (first line).") var tokenFile: String?
    @Option(name: .long, help: "Allow this browser origin (CORS); none by default.") var cors: String?
    @Option(name: .long, help: "Largest forward pass (1: no batching across requests).") var maxBatch = 16
    @Option(name: .long, help: "Longest wait for a batch to fill after its first request, ms.") var maxWaitMs = 5
    @Option(name: .long, help: "Items waiting per queue before 503.") var queueSize = 256
    @Option(name: .long, help: "Deadline of a request, ms (504 past it).") var timeoutMs = 30_000
    @Option(name: .long, help: "Largest request body, MB.") var maxBodyMb = 32
    @Option(name: .long, help: "Largest image a request may send, in pixels (width × height), checked from its header before decoding.") var maxImagePixels: Int?
    @Option(name: .long, help: "Time a request body may take to arrive, ms (408 past it).") var bodyTimeoutMs = 10_000
    @Option(name: .long, help: "Close connections idle this long, s.") var idleTimeoutS = 30

    func run() async throws {
        var c = ServerConfiguration(model: options.model)
        c.weights = options.weightsURL
        c.vocabulary = vocabulary.vocab.map { URL(fileURLWithPath: $0) }
        c.seed = options.seed
        c.precision = precisionOption.precision
        c.searchDatabase = db
        c.openIndex = { try IndexDatabase.open($0, readOnly: true) }
        c.detector = detector.map { URL(fileURLWithPath: $0) }
        c.host = host
        c.port = port
        c.token = try resolvedToken()
        c.corsOrigin = cors
        c.maxBatch = maxBatch
        c.maxWait = .milliseconds(maxWaitMs)
        c.queueCapacity = queueSize
        c.requestTimeout = .milliseconds(timeoutMs)
        c.maxBodyBytes = maxBodyMb.multipliedReportingOverflow(by: 1 << 20).overflow ? Int.max : maxBodyMb << 20
        c.bodyTimeout = .milliseconds(bodyTimeoutMs)
        c.maxImagePixels = maxImagePixels
        c.idleTimeout = .seconds(idleTimeoutS)
        do { try c.validate() } catch { throw ValidationError("\(error)") }
        let host = c.host, model = c.model
        do {
            try await CLIPServer.run(c) { port in
                print("swiftclip serve: listening on http://\(host):\(port) (model \(model); /ready once warmed)")
                fflush(stdout)
            }
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }

    /// --token, else --token-file's first line, else $SWIFTCLIP_TOKEN.
    func resolvedToken() throws -> String? {
        if let token { return token }
        if let tokenFile {
            guard let text = try? String(contentsOfFile: tokenFile, encoding: .utf8),
                  let line = text.split(whereSeparator: \.isNewline).first.map(String.init), !line.isEmpty else {
                throw ValidationError("--token-file \(tokenFile): cannot read a token from its first line")
            }
            return line
        }
        if let env = ProcessInfo.processInfo.environment["SWIFTCLIP_TOKEN"], !env.isEmpty { return env }
        return nil
    }
}
