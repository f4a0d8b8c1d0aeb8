import CLIPData
import CLIPModels
import CLIPServer
import Foundation
import XCTest

/// The endpoints over a real socket, against the tiny model: answers, JSON errors, and batching
/// across concurrent requests giving each request its own rows.
final class ServerAPITests: XCTestCase {
    static let images = ["china.jpg", "flower.jpg", "exact_64x100.png", "china_gray_200x150.jpg", "flower_tall_150x400.jpg"]

    func testEndpointsAndBatchingAcrossRequests() throws {
        var c = tinyConfiguration()
        c.maxBatch = 8
        c.maxWait = .milliseconds(400)
        let server = try RunningServer(c)
        defer { server.stop() }
        let client = server.client

        let health = try client.request("GET", "/health")
        XCTAssertEqual(health.status, 200)
        XCTAssertEqual(health.json?["status"] as? String, "ok")
        XCTAssertEqual(try client.request("GET", "/ready").json?["ready"] as? Bool, true)
        XCTAssertEqual(try client.request("GET", "/").headers["content-type"], "text/html; charset=utf-8")

        // One image per request, one at a time.
        let datas = try Self.images.map(fixture)
        var single: [[Float]] = []
        for (name, data) in zip(Self.images, datas) {
            let r = try client.request("POST", "/v1/embeddings/image", body: data, contentType: name.hasSuffix("png") ? "image/png" : "image/jpeg")
            XCTAssertEqual(r.status, 200, r.text)
            XCTAssertEqual(r.json?["dimensions"] as? Int, 16)
            let rows = embeddingRows(r)
            XCTAssertEqual(rows.count, 1)
            XCTAssertEqual(rows[0].reduce(0) { $0 + $1 * $1 }, 1, accuracy: 1e-4, "normalised by default")
            single.append(rows[0])
        }
        XCTAssertGreaterThan(zip(single[0], single[1]).map { abs($0 - $1) }.max() ?? 0, 1e-3, "different images, different rows")

        // 10 concurrent requests (each image twice): each gets its own row, equal to the single request's.
        let concurrent = try onThreads(10) { i in
            let k = i % datas.count
            return embeddingRows(try client.request("POST", "/v1/embeddings/image", body: datas[k],
                                                    contentType: Self.images[k].hasSuffix("png") ? "image/png" : "image/jpeg"))
        }
        for i in 0..<10 {
            XCTAssertEqual(concurrent[i].count, 1, "request \(i)")
            assertClose(concurrent[i].first ?? [], single[i % datas.count], "concurrent request \(i)")
        }
        let metrics = try client.request("GET", "/metrics").text
        let count = Self.metric(metrics, "swiftclip_batch_size_count{queue=\"image\"}")
        let sum = Self.metric(metrics, "swiftclip_batch_size_sum{queue=\"image\"}")
        XCTAssertEqual(sum, 15, "every request image went through the queue (the warm-up pass does not)")
        XCTAssertGreaterThan(sum / count, 1.0, "concurrent requests shared forward passes:\n\(metrics)")
        XCTAssertTrue(metrics.contains("swiftclip_http_requests_total{route=\"/v1/embeddings/image\",method=\"POST\",status=\"200\"}"), metrics)
        XCTAssertTrue(metrics.contains("swiftclip_queue_depth{queue=\"text\"}"), metrics)

        // Several images in one multipart request: rows in order, equal to the singles; base64 on request.
        let (body, type) = RawHTTP.multipart(zip(Self.images, datas).map { (name: "image", filename: $0, type: nil, data: $1) })
        let multi = try client.request("POST", "/v1/embeddings/image?encoding=base64&normalize=true", body: body, contentType: type)
        XCTAssertEqual(multi.status, 200, multi.text)
        let encoded = (multi.json?["data"] as? [[String: Any]] ?? []).compactMap { $0["embedding"] as? String }
        XCTAssertEqual(encoded.count, datas.count)
        for (k, b64) in encoded.enumerated() {
            let bytes = Data(base64Encoded: b64) ?? Data()
            XCTAssertEqual(bytes.count, 16 * 4)
            let row: [Float] = stride(from: 0, to: bytes.count, by: 4).map { i -> Float in
                var bits: UInt32 = 0
                for b in 0..<4 { bits |= UInt32(bytes[i + b]) << UInt32(8 * b) }
                return Float(bitPattern: bits)
            }
            assertClose(row, single[k], "multipart part \(k)")
        }

        // One image as the body under the names clients give it: image/jpg, application/octet-stream,
        // or no Content-Type (Python requests' `data=f`); bytes that are not JPEG/PNG stay a 400.
        for type in ["image/jpg", "application/octet-stream", nil] as [String?] {
            let r = try client.request("POST", "/v1/embeddings/image", body: datas[0], contentType: type)
            XCTAssertEqual(r.status, 200, "\(type ?? "no type"): \(r.text)")
            assertClose(embeddingRows(r).first ?? [], single[0], type ?? "no type")
        }
        XCTAssertEqual(try client.request("POST", "/v1/embeddings/image", body: Data("GIF89a....".utf8), contentType: "application/octet-stream").errorCode,
                       "invalid_image")

        // Texts: one request with several, and concurrent single-text requests, agree.
        let texts = ["a photo of a cat", "a diagram", "ein Hund", ""]
        let batch = try client.json("POST", "/v1/embeddings/text", ["texts": texts])
        XCTAssertEqual(batch.status, 200, batch.text)
        let batchRows = embeddingRows(batch)
        XCTAssertEqual(batchRows.count, texts.count)
        let each = try onThreads(texts.count) { i in embeddingRows(try client.json("POST", "/v1/embeddings/text", ["texts": [texts[i]]])) }
        for i in texts.indices { assertClose(each[i].first ?? [], batchRows[i], "text \(i)") }
        let raw = embeddingRows(try client.json("POST", "/v1/embeddings/text", ["texts": [texts[0]], "normalize": false]))
        assertClose(l2(raw[0]), batchRows[0], "normalize: false gives the raw row")

        // Classification: sorted probabilities summing to 1, multipart and JSON alike.
        let labels = ["cat", "dog", "flower", "building"]
        let classified = try client.json("POST", "/v1/classify", ["image": datas[1].base64EncodedString(), "labels": labels, "templates": ["a photo of a {}.", "a {}"]])
        XCTAssertEqual(classified.status, 200, classified.text)
        let items = classified.json?["labels"] as? [[String: Any]] ?? []
        let probabilities = items.compactMap { $0["probability"] as? Double }
        XCTAssertEqual(Set(items.compactMap { $0["label"] as? String }), Set(labels))
        XCTAssertEqual(probabilities.reduce(0, +), 1, accuracy: 1e-4)
        XCTAssertEqual(probabilities, probabilities.sorted(by: >))
        let (form, formType) = RawHTTP.multipart([(name: "image", filename: "flower.jpg", type: "image/jpeg", data: datas[1]),
                                                  (name: "labels", filename: nil, type: nil, data: Data(labels.joined(separator: ",").utf8)),
                                                  (name: "template", filename: nil, type: nil, data: Data("a photo of a {}.".utf8)),
                                                  (name: "template", filename: nil, type: nil, data: Data("a {}".utf8))])
        let viaForm = try client.request("POST", "/v1/classify", body: form, contentType: formType)
        XCTAssertEqual(viaForm.status, 200, viaForm.text)
        XCTAssertEqual((viaForm.json?["labels"] as? [[String: Any]])?.compactMap { $0["label"] as? String }, items.compactMap { $0["label"] as? String })
        // The image as the body, labels and one template in the query (as /v1/detect takes them).
        let oneTemplate = try client.json("POST", "/v1/classify", ["image": datas[1].base64EncodedString(), "labels": labels, "templates": ["a {}"]])
        let viaBody = try client.request("POST", "/v1/classify?labels=\(labels.joined(separator: ","))&template=a%20%7B%7D", body: datas[1], contentType: "image/jpeg")
        XCTAssertEqual(viaBody.status, 200, viaBody.text)
        func probabilityByLabel(_ r: RawHTTP.Response) -> [String: Double] {
            Dictionary(uniqueKeysWithValues: (r.json?["labels"] as? [[String: Any]] ?? []).compactMap { item in
                (item["label"] as? String).flatMap { label in (item["probability"] as? Double).map { (label, $0) } }
            })
        }
        XCTAssertEqual(probabilityByLabel(viaBody).count, labels.count, viaBody.text)
        for (label, p) in probabilityByLabel(oneTemplate) { XCTAssertEqual(probabilityByLabel(viaBody)[label] ?? -1, p, accuracy: 1e-6, label) }

        // The same numbers as `swiftclip classify` on the same model and image.
        try assertMatchesCLI(items: items, labels: labels, image: fixtureImages.appendingPathComponent("flower.jpg").path)

        let spec = try client.request("GET", "/openapi.json")
        XCTAssertEqual(spec.json?["openapi"] as? String, "3.1.0")
    }

    private func l2(_ v: [Float]) -> [Float] { let n = v.reduce(0) { $0 + $1 * $1 }.squareRoot(); return v.map { $0 / n } }

    static func metric(_ text: String, _ key: String) -> Double {
        for line in text.split(separator: "\n") where line.hasPrefix(key + " ") {
            return Double(line.split(separator: " ").last ?? "") ?? .nan
        }
        return .nan
    }

    /// Runs the release binary's `classify --json` with the server's model and seed.
    private func assertMatchesCLI(items: [[String: Any]], labels: [String], image: String) throws {
        let binary = repoRoot.appendingPathComponent(".build/release/swiftclip")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else { throw XCTSkip("no release binary at \(binary.path)") }
        let p = Process()
        p.executableURL = binary
        p.arguments = ["classify", "--model", tinyModel, "--seed", "7", "--labels", labels.joined(separator: ","),
                       "--template", "a photo of a {}.", "--template", "a {}", "--json", image]
        p.currentDirectoryURL = repoRoot
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        let rows = try JSONSerialization.jsonObject(with: data) as? [[String: Any]]
        let cli = rows?.first?["probabilities"] as? [String: Double] ?? [:]
        for item in items {
            guard let label = item["label"] as? String, let p = item["probability"] as? Double else { continue }
            XCTAssertEqual(p, cli[label] ?? -1, accuracy: 1e-5, "\(label): server \(p), swiftclip classify \(cli[label] ?? -1)")
        }
    }

    /// An uploaded image is preprocessed as open_clip's `preprocess(Image.open(f))` sees it: resized
    /// in the mode Pillow opens it in (RGBA with premultiplied alpha, a palette with nearest
    /// neighbour), converted to RGB after; not converted first.
    func testUploadsArePreprocessedInTheModePillowOpensThemIn() throws {
        let c = tinyConfiguration()
        let server = try RunningServer(c)
        defer { server.stop() }
        let model = try CLIPModel(model: tinyModel, weightsURL: nil, seed: c.seed, precision: .fp32, inferenceOnly: true)
        let preprocessor = Preprocessor(imageSize: 64)
        for name in ["rgba_120x90.png", "palette4_trns_90x70.png"] {
            let data = try fixture(name)
            let r = try server.client.request("POST", "/v1/embeddings/image", body: data, contentType: "image/png")
            XCTAssertEqual(r.status, 200, r.text)
            let asOpened = try model.encodeImage(preprocessor(ImageDecoder.decodeImage(data, name: name)).reshaped([1, 3, 64, 64]), normalize: true)
            let rgbFirst = try model.encodeImage(preprocessor(ImageDecoder.decode(data, name: name)).reshaped([1, 3, 64, 64]), normalize: true)
            XCTAssertGreaterThan(zip(asOpened.scalars, rgbFirst.scalars).map { abs($0 - $1) }.max() ?? 0, 1e-4, "\(name): the two decodings differ")
            assertClose(embeddingRows(r).first ?? [], asOpened.scalars, tolerance: 1e-5, name)
        }
    }

    /// Every route the server registers is described in /openapi.json, and every described route exists.
    func testOpenAPIDescribesExactlyTheRegisteredRoutes() throws {
        let registered = Set(CLIPServer.registeredRoutes(tinyConfiguration()).map { route -> String in
            // Hummingbird writes captures as ":name" or "{name}"; OpenAPI as "{name}".
            let parts = route.split(separator: " ", maxSplits: 1)
            let path = parts[1].split(separator: "/", omittingEmptySubsequences: false).map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0) }
            return "\(parts[0]) \(path.joined(separator: "/"))"
        })
        let spec = try JSONSerialization.jsonObject(with: Data(CLIPServer.openAPIDocument.utf8)) as? [String: Any]
        let paths = spec?["paths"] as? [String: [String: Any]] ?? [:]
        let described = Set(paths.flatMap { path, methods in methods.keys.map { "\($0.uppercased()) \(path)" } })
        XCTAssertFalse(registered.isEmpty)
        XCTAssertEqual(registered.subtracting(described), [], "registered but not described")
        XCTAssertEqual(described.subtracting(registered), [], "described but not registered")
    }

    func testNonLoopbackNeedsAToken() throws {
        var c = tinyConfiguration()
        c.host = "0.0.0.0"
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("--token"), "\($0)") }
        c.token = "short"
        XCTAssertThrowsError(try c.validate())
        c.token = "a-long-enough-token"
        XCTAssertNoThrow(try c.validate())
        c.host = "127.0.0.1"; c.token = nil
        XCTAssertNoThrow(try c.validate())
    }
}
