import CLIPData
import CLIPDetection
import CLIPEngine
import CLIPModels
import CLIPServer
import CLIPTokenizer
import Foundation
import XCTest

/// `POST /v1/detect` over a real socket: the same detections as the library call that
/// `swiftclip detect --json` makes, from a raw body, multipart and JSON; 4xx for bad input; 404
/// without `--detector`.
final class DetectEndpointTests: XCTestCase {
    /// A ConvNeXt-V2 atto CLIP at 64 px with the CLIP tokenizer's vocabulary (random weights, seed 7).
    static let convNeXtModel = repoRoot.appendingPathComponent("examples/configs/tiny-convnext-v2-clip.json").path

    func testDetectAnswersAsTheDetectCommandAndRefusesBadInput() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swiftclip-detect-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }

        // A box head on this backbone (random weights: the route, not the detector's quality, is tested).
        var c = tinyConfiguration()
        c.model = Self.convNeXtModel
        let model = try CLIPModel(model: c.model, seed: c.seed, precision: .fp32, inferenceOnly: true)
        let dense = try DenseCLIP(model: model)
        let headURL = directory.appendingPathComponent("det.safetensors")
        try BoxHead(config: BoxHeadConfig(inputWidth: dense.stageWidths[2] + dense.stageWidths[3], hidden: 16, embedDim: model.config.embedDim,
                                          imageSize: 64, vocabulary: ["red circle"]), seed: 3).save(to: headURL)
        c.detector = headURL

        // What `swiftclip detect --json --threshold 0 --top-k 5` computes for this image and these labels.
        let labels = ["red circle", "blue square"]
        let image = try fixture("china.jpg")
        let detector = try OpenVocabularyDetector(model: model, head: BoxHead.load(headURL),
                                                  tokenizer: CLIPTokenizer(vocabularyURL: c.vocabulary ?? CLIPTokenizer.defaultVocabularyURL()))
        var o = OpenVocabularyDetector.Options()
        o.threshold = 0; o.topK = 5
        let expected = try detector.detect(ImageDecoder.decode(image, name: "china.jpg"), labels: labels, texts: detector.textEmbeddings(labels), options: o)
        XCTAssertFalse(expected.isEmpty, "the random head proposes no box: pick another seed")

        let server = try RunningServer(c)
        defer { server.stop() }
        let client = server.client
        func detections(_ r: RawHTTP.Response, _ what: String) -> [Detection] {
            XCTAssertEqual(r.status, 200, "\(what): \(r.text)")
            return (try? JSONDecoder().decode([Detection].self, from: r.body)) ?? []
        }
        let raw = detections(try client.request("POST", "/v1/detect?labels=red%20circle,blue%20square&threshold=0&top_k=5",
                                                body: image, contentType: "image/jpeg"), "raw body")
        let (form, formType) = RawHTTP.multipart([(name: "image", filename: "china.jpg", type: "image/jpeg", data: image),
                                                  (name: "labels", filename: nil, type: nil, data: Data("red circle, blue square".utf8)),
                                                  (name: "threshold", filename: nil, type: nil, data: Data("0".utf8)),
                                                  (name: "top_k", filename: nil, type: nil, data: Data("5".utf8))])
        let multipart = detections(try client.request("POST", "/v1/detect", body: form, contentType: formType), "multipart")
        let json = detections(try client.json("POST", "/v1/detect", ["image": image.base64EncodedString(), "labels": labels,
                                                                     "threshold": 0, "top_k": 5]), "JSON")
        for (got, what) in [(raw, "raw body"), (multipart, "multipart"), (json, "JSON")] {
            XCTAssertEqual(got.count, expected.count, what)
            for (g, e) in zip(got, expected) {
                XCTAssertEqual(g.label, e.label, what)
                XCTAssertEqual(g.score, e.score, accuracy: 1e-6, what)
                for (a, b) in [(g.box.xmin, e.box.xmin), (g.box.ymin, e.box.ymin), (g.box.xmax, e.box.xmax), (g.box.ymax, e.box.ymax)] {
                    XCTAssertEqual(a, b, accuracy: 1e-4, what)
                }
            }
        }
        // The pipeline's keys, nothing else.
        let first = (try JSONSerialization.jsonObject(with: try client.request("POST", "/v1/detect?labels=red%20circle&threshold=0",
                                                                                body: image, contentType: "image/jpeg").body) as? [[String: Any]])?.first
        XCTAssertEqual(Set(first?.keys.map { $0 } ?? []), ["score", "label", "box"])

        // Bad input: 4xx with a code, and the server keeps serving.
        let bad: [(RawHTTP.Response, Int, String)] = [
            (try client.request("POST", "/v1/detect?threshold=0", body: image, contentType: "image/jpeg"), 400, "no labels"),
            (try client.json("POST", "/v1/detect", ["image": image.base64EncodedString(), "labels": [String]()]), 400, "empty labels"),
            (try client.request("POST", "/v1/detect?labels=a&threshold=2", body: image, contentType: "image/jpeg"), 400, "threshold 2"),
            (try client.request("POST", "/v1/detect?labels=a&top_k=1000000000", body: image, contentType: "image/jpeg"), 400, "top_k 10^9"),
            (try client.request("POST", "/v1/detect?labels=a", body: image.prefix(image.count / 3), contentType: "image/jpeg"), 400, "truncated JPEG"),
            (try client.request("POST", "/v1/detect?labels=a", body: Data("labels".utf8), contentType: "text/plain"), 415, "wrong type"),
        ]
        for (r, status, what) in bad {
            XCTAssertEqual(r.status, status, "\(what): \(r.text)")
            XCTAssertNotNil(r.errorCode, what)
        }
        XCTAssertEqual(detections(try client.request("POST", "/v1/detect?labels=red%20circle,blue%20square&threshold=0&top_k=5",
                                                     body: image, contentType: "image/jpeg"), "after bad input").count, expected.count)
    }

    func testWithoutADetectorTheRouteSaysHowToEnableIt() throws {
        let server = try RunningServer(tinyConfiguration())
        defer { server.stop() }
        let r = try server.client.request("POST", "/v1/detect?labels=a", body: try fixture("china.jpg"), contentType: "image/jpeg")
        XCTAssertEqual(r.status, 404, r.text)
        XCTAssertEqual(r.errorCode, "no_detector")
        XCTAssertTrue(r.text.contains("--detector"), r.text)
    }
}
