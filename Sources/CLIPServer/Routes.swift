import CLIPEngine
import Foundation
import Hummingbird
import NIOCore

/// The HTTP API (described in `OpenAPIDocument`).
struct Routes: Sendable {
    let state: ServerState
    let configuration: ServerConfiguration
    let metrics: ServerMetrics
    var body: BodyReader { BodyReader(maxBytes: configuration.maxBodyBytes, timeout: configuration.bodyTimeout) }

    func register(on router: Router<ServerContext>) {
        router.get("/") { _, _ in Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-cache"],
                                           body: .init(byteBuffer: ByteBuffer(string: SearchPage.html))) }
        router.get("/health") { _, _ in try jsonResponse(["status": "ok"]) }
        router.get("/ready") { _, _ in
            _ = try state.service()
            return try jsonResponse(["ready": true])
        }
        router.get("/metrics") { _, _ in
            if let s = try? state.service() {
                metrics.setDepth(queue: "image", s.images.depth)
                metrics.setDepth(queue: "text", s.texts.depth)
            }
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: metrics.text())))
        }
        router.get("/openapi.json") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: OpenAPIDocument.json)))
        }
        router.post("/v1/embeddings/image") { request, _ in try await embedImages(request) }
        router.post("/v1/embeddings/text") { request, _ in try await embedTexts(request) }
        router.post("/v1/classify") { request, _ in try await classify(request) }
        router.post("/v1/search") { request, _ in try await search(request) }
        router.post("/v1/detect") { request, _ in try await detect(request) }
        router.get("/v1/images/{id}") { _, context in
            let file = try searchService().image(id: try imageID(context))
            return Response(status: .ok, headers: [.contentType: file.type, .cacheControl: "private, max-age=3600"],
                            body: .init(byteBuffer: ByteBuffer(bytes: file.data)))
        }
        router.get("/v1/images/{id}/thumbnail") { _, context in
            let png = try searchService().thumbnail(id: try imageID(context))
            return Response(status: .ok, headers: [.contentType: "image/png", .cacheControl: "private, max-age=3600"],
                            body: .init(byteBuffer: ByteBuffer(bytes: png)))
        }
    }

    private func searchService() throws -> SearchService {
        guard let s = try state.service().search else {
            throw APIError(.notFound, "no_index", "this server has no index; start it with --db photos.sqlite (made by swiftclip index)")
        }
        return s
    }

    private func imageID(_ context: ServerContext) throws -> Int64 {
        let text = context.parameters.get("id") ?? ""
        guard let id = Int64(text), id > 0 else { throw APIError(.notFound, "not_found", "image id must be a positive integer, got '\(text)'") }
        return id
    }

    struct SearchRequest: Decodable {
        let text: String?
        /// A JPEG or PNG file, base64.
        let image: String?
        let top_k: Int?
        let min_score: Float?
    }

    struct SearchResponse: Encodable {
        struct Item: Encodable { let id: Int64; let path: String; let score: Float; let rank: Int; let image: String; let thumbnail: String }
        let model: String
        let results: [Item]
    }

    /// `{"text": …}` or `{"image": base64}`, `top_k` (default 24, at most --max-top-k), `min_score`.
    private func search(_ request: Request) async throws -> Response {
        let service = try state.service()
        let index = try searchService()
        let r = try request.decodeJSON(SearchRequest.self, from: try await body.read(request))
        let top = r.top_k ?? 24
        guard (1...configuration.maxTopK).contains(top) else {
            throw APIError.badRequest("top_k must be in 1...\(configuration.maxTopK), got \(top)")
        }
        if let m = r.min_score, !m.isFinite { throw APIError.badRequest("min_score must be a finite number") }
        let vector: [Float]
        switch (r.text, r.image) {
        case (let text?, nil):
            try checkTexts([text], name: "text", max: 1)
            vector = l2Normalized(try await service.embedTexts([text], deadline: deadline)[0])
        case (nil, let image?):
            guard let data = Data(base64Encoded: image) else { throw APIError.badRequest("'image' is not valid base64") }
            vector = l2Normalized(try await service.embedImages([(data, "image")], deadline: deadline)[0])
        default:
            throw APIError.badRequest("give exactly one of 'text' and 'image'")
        }
        let hits = try index.search(vector: vector, top: top, minScore: r.min_score)
        return try jsonResponse(SearchResponse(model: configuration.model, results: hits.map {
            .init(id: $0.id, path: $0.path, score: $0.score, rank: $0.rank, image: "/v1/images/\($0.id)", thumbnail: "/v1/images/\($0.id)/thumbnail")
        }))
    }

    var deadline: ContinuousClock.Instant { .now + configuration.requestTimeout }

    struct EmbeddingsResponse: Encodable {
        struct Item: Encodable { let index: Int; let embedding: EncodedEmbedding }
        let model: String
        let dimensions: Int
        let encoding: EmbeddingEncoding
        let normalized: Bool
        let data: [Item]
    }

    private func embeddings(_ rows: [[Float]], encoding: EmbeddingEncoding, normalize: Bool, service: InferenceService) -> EmbeddingsResponse {
        EmbeddingsResponse(model: configuration.model, dimensions: service.model.config.embedDim, encoding: encoding, normalized: normalize,
                           data: rows.enumerated().map { .init(index: $0, embedding: encoding.encode(normalize ? l2Normalized($1) : $1)) })
    }

    /// `?encoding=float|base64&normalize=true|false`.
    private func outputOptions(_ request: Request) throws -> (EmbeddingEncoding, Bool) {
        let q = request.uri.queryParameters
        let encodingText = q["encoding"].map(String.init) ?? "float"
        guard let encoding = EmbeddingEncoding(rawValue: encodingText) else {
            throw APIError.badRequest("encoding must be 'float' or 'base64', got '\(encodingText)'")
        }
        let normalizeText = q["normalize"].map(String.init) ?? "true"
        guard let normalize = ["true": true, "false": false][normalizeText] else {
            throw APIError.badRequest("normalize must be 'true' or 'false', got '\(normalizeText)'")
        }
        return (encoding, normalize)
    }

    private func embedImages(_ request: Request) async throws -> Response {
        let service = try state.service()
        let (encoding, normalize) = try outputOptions(request)
        var images: [(data: Data, name: String)] = []
        if request.isImageBody {
            images = [(try await body.read(request), "body")]
        } else if request.mediaType == "multipart/form-data" {
            let parts = try await multipartParts(request)
            images = parts.enumerated().filter { $1.filename != nil || ($1.contentType ?? "").hasPrefix("image/") }
                .map { ($1.body, "part \($0) (\($1.filename ?? $1.name ?? "unnamed"))") }
            guard !images.isEmpty else { throw APIError.badRequest("the multipart body holds no image parts (parts with a filename or an image/* type)") }
        } else {
            throw APIError(.unsupportedMediaType, "unsupported_media_type",
                           "send the image (image/jpeg, image/png, application/octet-stream) or multipart/form-data, got '\(request.headers[.contentType] ?? "")'")
        }
        guard images.count <= configuration.maxImagesPerRequest else {
            throw APIError.badRequest("\(images.count) images in one request; at most \(configuration.maxImagesPerRequest)", code: "too_many_items")
        }
        let rows = try await service.embedImages(images, deadline: deadline)
        return try jsonResponse(embeddings(rows, encoding: encoding, normalize: normalize, service: service))
    }

    func multipartParts(_ request: Request) async throws -> [MultipartPart] {
        guard let boundary = Multipart.boundary(contentType: request.headers[.contentType] ?? "") else {
            throw APIError.badRequest("multipart/form-data needs a boundary parameter of 1 to 70 characters", code: "invalid_multipart")
        }
        return try Multipart.parse(try await body.read(request), boundary: boundary, maxParts: configuration.maxImagesPerRequest + 16)
    }

    struct TextRequest: Decodable {
        let texts: [String]
        let encoding: EmbeddingEncoding?
        let normalize: Bool?
    }

    func checkTexts(_ texts: [String], name: String, max: Int) throws {
        guard !texts.isEmpty else { throw APIError.badRequest("'\(name)' is empty; give at least one") }
        guard texts.count <= max else { throw APIError.badRequest("'\(name)' holds \(texts.count) items; at most \(max)", code: "too_many_items") }
        if let long = texts.firstIndex(where: { $0.count > configuration.maxTextLength }) {
            throw APIError.badRequest("'\(name)'[\(long)] has \(texts[long].count) characters; at most \(configuration.maxTextLength)")
        }
    }

    private func embedTexts(_ request: Request) async throws -> Response {
        let service = try state.service()
        let r = try request.decodeJSON(TextRequest.self, from: try await body.read(request))
        try checkTexts(r.texts, name: "texts", max: configuration.maxTextsPerRequest)
        let rows = try await service.embedTexts(r.texts, deadline: deadline)
        return try jsonResponse(embeddings(rows, encoding: r.encoding ?? .float, normalize: r.normalize ?? true, service: service))
    }

    struct ClassifyRequest: Decodable {
        /// The image file's bytes, base64.
        let image: String
        let labels: [String]
        let templates: [String]?
    }

    struct ClassifyResponse: Encodable {
        struct Item: Encodable { let label: String; let probability: Float }
        let model: String
        let labels: [Item]
    }

    /// JSON `{"image": base64, "labels": [...], "templates": [...]}`, or multipart with an `image`
    /// file, `labels` (comma-separated, or repeated) and optional `template` fields.
    private func classify(_ request: Request) async throws -> Response {
        let service = try state.service()
        var image = Data(), labels: [String] = [], templates: [String] = []
        let query = request.uri.queryParameters
        switch request.mediaType {
        case _ where request.isImageBody:
            image = try await body.read(request)
            labels = (query["labels"].map(String.init) ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            templates = query["template"].map { [String($0)] } ?? []
        case "application/json":
            let r = try request.decodeJSON(ClassifyRequest.self, from: try await body.read(request))
            guard let decoded = Data(base64Encoded: r.image) else { throw APIError.badRequest("'image' is not valid base64") }
            image = decoded; labels = r.labels; templates = r.templates ?? []
        case "multipart/form-data":
            for part in try await multipartParts(request) {
                switch part.name {
                case "image": image = part.body
                case "labels", "label": labels += (part.text ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                case "template", "templates": templates.append(part.text ?? "")
                default: break
                }
            }
            guard !image.isEmpty else { throw APIError.badRequest("the multipart body has no 'image' part") }
        default:
            throw APIError(.unsupportedMediaType, "unsupported_media_type",
                           "send the image (image/jpeg, image/png, application/octet-stream; ?labels=a,b), multipart/form-data or application/json, got '\(request.headers[.contentType] ?? "")'")
        }
        labels = labels.filter { !$0.isEmpty }
        if let twice = labels.firstRepeated() { throw APIError.badRequest("label '\(twice)' is given twice") }
        if templates.isEmpty { templates = ["a photo of a {}."] }
        try checkTexts(labels, name: "labels", max: configuration.maxLabels)
        try checkTexts(templates, name: "templates", max: configuration.maxTemplates)
        guard labels.count * templates.count <= 10_000 else {
            throw APIError.badRequest("\(labels.count) labels × \(templates.count) templates is over 10000 texts", code: "too_many_items")
        }
        if let t = templates.first(where: { !$0.contains("{}") }) { throw APIError.badRequest("template '\(t)' has no '{}' where the label goes") }
        let result = try await service.classify(image: image, labels: labels, templates: templates, deadline: deadline)
        return try jsonResponse(ClassifyResponse(model: configuration.model, labels: result.map { .init(label: $0.label, probability: $0.probability) }))
    }
}

extension Routes {
    struct DetectRequest: Decodable {
        /// The image file's bytes, base64.
        let image: String
        let labels: [String]
        let threshold: Double?
        let top_k: Int?
    }

    /// Open-vocabulary detection as `swiftclip detect --json` (Hugging Face's zero-shot-object-detection
    /// shape): the image as the raw body (`?labels=a,b&threshold=&top_k=`), as multipart (an `image`
    /// file and `labels`, `threshold`, `top_k` fields) or as JSON `{"image": base64, "labels": [...]}`.
    func detect(_ request: Request) async throws -> Response {
        let service = try state.service()
        guard let detection = service.detection else {
            throw APIError(.notFound, "no_detector", "this server has no detector; start it with --detector det.safetensors (made by swiftclip train-detector)")
        }
        var image = Data(), labels: [String] = [], threshold: String?, topK: String?
        let query = request.uri.queryParameters
        switch request.mediaType {
        case _ where request.isImageBody:
            image = try await body.read(request)
            labels = (query["labels"].map(String.init) ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            threshold = query["threshold"].map(String.init); topK = query["top_k"].map(String.init)
        case "multipart/form-data":
            for part in try await multipartParts(request) {
                switch part.name {
                case "image": image = part.body
                case "labels", "label": labels += (part.text ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                case "threshold": threshold = part.text
                case "top_k": topK = part.text
                default: break
                }
            }
            guard !image.isEmpty else { throw APIError.badRequest("the multipart body has no 'image' part") }
        case "application/json":
            let r = try request.decodeJSON(DetectRequest.self, from: try await body.read(request))
            guard let decoded = Data(base64Encoded: r.image) else { throw APIError.badRequest("'image' is not valid base64") }
            image = decoded; labels = r.labels; threshold = r.threshold.map { "\($0)" }; topK = r.top_k.map(String.init)
        default:
            throw APIError(.unsupportedMediaType, "unsupported_media_type",
                           "send the image (image/jpeg, image/png, application/octet-stream), multipart/form-data or application/json, got '\(request.headers[.contentType] ?? "")'")
        }
        labels = labels.filter { !$0.isEmpty }
        try checkTexts(labels, name: "labels", max: configuration.maxLabels)
        let t = try threshold.map { text in
            guard let v = Double(text), v.isFinite, (0...1).contains(v) else { throw APIError.badRequest("threshold must be a number in 0...1, got '\(text)'") }
            return v
        } ?? 0.1
        let k = try topK.map { text in
            guard let v = Int(text), (1...configuration.maxTopK).contains(v) else {
                throw APIError.badRequest("top_k must be in 1...\(configuration.maxTopK), got '\(text)'")
            }
            return v
        } ?? 100
        return try jsonResponse(try await detection.detect(image, labels: labels, threshold: t, topK: k, deadline: deadline))
    }
}

/// The model once loaded; routes that need it answer 503 until then.
final class ServerState: @unchecked Sendable {
    private let lock = NSLock()
    private var loaded: InferenceService?

    func set(_ service: InferenceService) { lock.withLock { loaded = service } }

    func service() throws -> InferenceService {
        guard let s = lock.withLock({ loaded }) else {
            throw APIError(.serviceUnavailable, "not_ready", "the model is still loading", retryAfter: 1)
        }
        return s
    }
}
