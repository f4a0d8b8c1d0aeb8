import CLIPData
import CLIPEngine
import CLIPEvaluation
import CLIPModels
import CLIPNN
import CLIPTokenizer
import Foundation
import XCTest

/// The fixture model (open_clip, random weights; see tools/reference/make_eval_fixtures.py),
/// unpacked once per process.
enum EvalModel {
    static let weights: URL = {
        let gz = try! Data(contentsOf: evalFixtures.appendingPathComponent("model/model.safetensors.gz"))
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("swiftclip-eval-tiny-\(getpid()).safetensors")
        try! Data(try! gunzip([UInt8](gz))).write(to: url)
        return url
    }()
    static let config = evalFixtures.appendingPathComponent("model/config.json")
    static func load() throws -> CLIPModel { try CLIPModel(model: config.path, weightsURL: weights) }
    static let tokenizer = try! CLIPTokenizer(vocabularyURL: repoRoot.appendingPathComponent("assets/bpe_simple_vocab_16e6.txt.gz"))
}

final class ZeroShotParityTests: XCTestCase {
    struct Reference: Decodable { let n: Int; let top1: Double; let top5: Double; let min_top2_margin: Double }

    func testPredictionsMatchOpenCLIPOnTheReferenceFile() throws {
        let model = try EvalModel.load()
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: evalFixtures.appendingPathComponent("zeroshot/result.json")))
        let expected = try NPY.read(evalFixtures.appendingPathComponent("zeroshot/predictions.npy")).intValues()
        let refClassifier = try NPY.read(evalFixtures.appendingPathComponent("zeroshot/classifier.npy")).floatTensor()
        let refLogits = try NPY.read(evalFixtures.appendingPathComponent("zeroshot/logits.npy")).floatTensor()
        XCTAssertGreaterThan(reference.min_top2_margin, 1e-3, "no near-ties in the reference")

        let (classifier, _) = try ZeroShotEvaluation.classifier(model: model, tokenizer: EvalModel.tokenizer, classNames: CIFARClassNames.cifar10,
                                                                templates: CIFARClassNames.templates, cache: nil, modelIdentity: "tiny")
        for d in 0..<16 { for c in 0..<10 {
            XCTAssertEqual(classifier.classEmbeddings[flat: c * 16 + d], refClassifier[flat: d * 10 + c], accuracy: 2e-5)
        } }
        for distribution in ["", "cifar-10-batches-bin"] {
            let data = try CIFARDataset.load(.cifar10, at: evalFixtures.appendingPathComponent(distribution))
            var calls: [Int] = []
            let r = try ZeroShotEvaluation.evaluate(model: model, classifier: classifier, dataset: data, batchSize: 16) { done, _ in calls.append(done) }
            XCTAssertEqual(calls, [16, 32, 48, 50])
            XCTAssertEqual(r.predictions, expected, distribution)
            XCTAssertEqual(r.n, reference.n)
            XCTAssertEqual(r.top1, reference.top1, accuracy: 1e-6)
            XCTAssertEqual(r.top5, reference.top5, accuracy: 1e-6)
            XCTAssertEqual(r.perClass.map(\.count).reduce(0, +), 50)
            XCTAssertEqual(Double(r.perClass.map(\.correct).reduce(0, +)) / 50, r.top1, accuracy: 1e-12)
            XCTAssertEqual(r.labels, data.labels)
        }
        // Logits themselves, for the first 8 images.
        let data = try CIFARDataset.load(.cifar10, at: evalFixtures)
        let images = try Preprocessor(imageSize: 64).batch(count: 8) { try data.image(at: $0) }
        let logits = try ZeroShotEvaluation.logits(imageFeatures: model.encodeImage(images), classifier: classifier)
        for i in 0..<80 { XCTAssertEqual(logits[flat: i], refLogits[flat: i], accuracy: 2e-3) }
    }

    func testClassifierCacheIsReusedOnlyForTheSameInputs() throws {
        let model = try EvalModel.load()
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let cache = dir.appendingPathComponent("classifier.npy")
        let names = ["cat", "dog", "car"], templates = ["a photo of a {}.", "a {}."]
        let a = try ZeroShotEvaluation.classifier(model: model, tokenizer: EvalModel.tokenizer, classNames: names, templates: templates,
                                                  cache: cache, modelIdentity: "m")
        XCTAssertFalse(a.fromCache)
        XCTAssertEqual(try NPY.read(cache).shape, [16, 3])
        let b = try ZeroShotEvaluation.classifier(model: model, tokenizer: EvalModel.tokenizer, classNames: names, templates: templates,
                                                  cache: cache, modelIdentity: "m")
        XCTAssertTrue(b.fromCache)
        for i in 0..<48 { XCTAssertEqual(a.classifier.classEmbeddings[flat: i], b.classifier.classEmbeddings[flat: i]) }
        let c = try ZeroShotEvaluation.classifier(model: model, tokenizer: EvalModel.tokenizer, classNames: names, templates: ["{}"],
                                                  cache: cache, modelIdentity: "m")
        XCTAssertFalse(c.fromCache, "other templates: rebuilt")
    }
}

final class RetrievalTests: XCTestCase {
    func testMetricsMatchOpenCLIPOnTheReferenceCSV() throws {
        let model = try EvalModel.load()
        let pairs = try CSVPairs(file: evalFixtures.appendingPathComponent("retrieval/data.csv"))
        let m = try Retrieval.evaluate(model: model, tokenizer: EvalModel.tokenizer, pairs: pairs, batchSize: 5)
        let expected = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: evalFixtures.appendingPathComponent("retrieval/metrics.json"))) as? [String: Double])
        XCTAssertEqual(Set(m.openCLIPNames.keys), Set(expected.keys))
        for (k, v) in expected { XCTAssertEqual(m.openCLIPNames[k]!, v, accuracy: 1e-9, k) }
    }

    func testChunkedRanksEqualBruteForce() throws {
        var rng = SeededGenerator(seed: 3)
        let n = 37, d = 8
        let img = Ops.l2Normalize(Tensor.random(shape: [n, d], using: &rng)), txt = Ops.l2Normalize(Tensor.random(shape: [n, d], using: &rng))
        let whole = try Retrieval.metrics(imageFeatures: img, textFeatures: txt, logitScale: 14.3, chunkRows: 1000)
        let chunked = try Retrieval.metrics(imageFeatures: img, textFeatures: txt, logitScale: 14.3, chunkRows: 5)
        XCTAssertEqual(whole, chunked)
        // Brute force in Float64, open_clip's definitions.
        func dot(_ a: Tensor, _ i: Int, _ b: Tensor, _ j: Int) -> Double { (0..<d).reduce(0) { $0 + Double(a[flat: i * d + $1]) * Double(b[flat: j * d + $1]) } }
        let ranks = (0..<n).map { i in (0..<n).filter { dot(img, i, txt, $0) > dot(img, i, txt, i) }.count }
        let mean = Double(ranks.reduce(0, +)) / Double(n) + 1
        XCTAssertEqual(whole.imageToText.meanRank, mean, accuracy: 1e-9)
        XCTAssertEqual(whole.imageToText.medianRank, Double(ranks.sorted()[n / 2]) + 1)
        XCTAssertEqual(whole.imageToText.r5, Double(ranks.filter { $0 < 5 }.count) / Double(n), accuracy: 1e-12)
        // Median of an even count: floor of the mean of the middle two, + 1.
        XCTAssertEqual(RankMetrics(ranks: [0, 1, 2, 5]).medianRank, 2)
        XCTAssertEqual(RankMetrics(ranks: [0, 2, 3, 5]).medianRank, 3)
    }
}

extension CLITests {
    func testEvalCIFAR10AndCSVWithJSON() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let json = dir.appendingPathComponent("out.json")
        let base = ["eval", "--model", EvalModel.config.path, "--weights", EvalModel.weights.path]
        let r = try run(base + ["--dataset", "cifar10", "--data", evalFixtures.path, "--json", json.path,
                                "--classifier-cache", dir.appendingPathComponent("c.npy").path])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("top-1 12.00%"), r.stdout)
        let out = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [String: Any])
        XCTAssertEqual(out["predictions"] as? [Int], try NPY.read(evalFixtures.appendingPathComponent("zeroshot/predictions.npy")).intValues())
        XCTAssertEqual((out["per_class"] as? [[String: Any]])?.count, 10)
        let again = try run(base + ["--dataset", "cifar10", "--data", evalFixtures.path, "--classifier-cache", dir.appendingPathComponent("c.npy").path])
        XCTAssertTrue(again.stderr.contains("classifier read from"), again.stderr)

        let csv = try run(base + ["--dataset", "csv", "--data", evalFixtures.appendingPathComponent("retrieval/data.csv").path])
        XCTAssertEqual(csv.status, 0, csv.stderr)
        XCTAssertTrue(csv.stdout.contains("image→text"), csv.stdout)

        let missing = try run(base + ["--dataset", "cifar100", "--data", dir.path])
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.stderr.contains("cifar-100-python"), missing.stderr)
    }
}
