import CLIPEngine
import CLIPEvaluation
import CLIPModels
import CLIPNN
import CLIPTokenizer
import Foundation
import XCTest

let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

final class ZeroShotTests: XCTestCase {
    /// A small CLIP with the real vocabulary size, so the real tokenizer's ids fit.
    func smallModel() throws -> CLIPModel {
        let json = #"""
        {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
         "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
        """#
        return try CLIPModel(config: CLIPConfig.parse(json: Data(json.utf8), source: "small"), seed: 5)
    }

    func tokenizer() throws -> CLIPTokenizer {
        try CLIPTokenizer(vocabularyURL: repoRoot.appendingPathComponent("assets/bpe_simple_vocab_16e6.txt.gz"))
    }

    func testClassifierAveragesNormalisedTemplateEmbeddings() throws {
        let model = try smallModel(), tok = try tokenizer()
        let templates = ["a photo of a {}.", "a drawing of a {}."]
        let classifier = try ZeroShotClassifier(model: model, tokenizer: tok, classNames: ["cat", "dog"], templates: templates)
        let ids = tok.tokenize(templates.map { $0.replacingOccurrences(of: "{}", with: "dog") }).map { $0.map(Int.init) }
        let e = try model.encodeText(ids, normalize: true)
        var mean = (0..<16).map { (e[flat: $0] + e[flat: 16 + $0]) / 2 }
        let norm = mean.reduce(0) { $0 + $1 * $1 }.squareRoot()
        mean = mean.map { $0 / norm }
        for d in 0..<16 { XCTAssertEqual(classifier.classEmbeddings[flat: 16 + d], mean[d], accuracy: 1e-6) }
    }

    func testProbabilitiesAreSoftmaxOfScaledCosines() throws {
        let model = try smallModel()
        let classifier = try ZeroShotClassifier(model: model, tokenizer: tokenizer(), classNames: ["cat", "dog", "car"],
                                                templates: ["a photo of a {}."])
        var rng = SeededGenerator(seed: 9)
        let features = Tensor.random(shape: [4, 16], using: &rng)
        let p = try classifier.probabilities(imageFeatures: features)
        XCTAssertEqual(p.count, 4)
        let f = Ops.l2Normalize(features)
        for i in 0..<4 {
            XCTAssertEqual(p[i].reduce(0, +), 1, accuracy: 1e-5)
            let logits = (0..<3).map { c in (0..<16).reduce(Float(0)) { $0 + f[flat: i * 16 + $1] * classifier.classEmbeddings[flat: c * 16 + $1] } * exp(model.logitScale) }
            let z = logits.map { exp(Double($0)) }.reduce(0, +)
            for c in 0..<3 { XCTAssertEqual(Double(p[i][c]), exp(Double(logits[c])) / z, accuracy: 1e-5) }
        }
    }

    func testBadInputsAreErrors() throws {
        let model = try smallModel(), tok = try tokenizer()
        XCTAssertThrowsError(try ZeroShotClassifier(model: model, tokenizer: tok, classNames: [], templates: ["{}"]))
        XCTAssertThrowsError(try ZeroShotClassifier(model: model, tokenizer: tok, classNames: ["cat"], templates: ["no slot"]))
    }
}

/// The CLI end to end, as a user runs it (the release binary built by `make test`).
final class CLITests: XCTestCase {
    let binary = repoRoot.appendingPathComponent(".build/release/swiftclip")
    let images = repoRoot.appendingPathComponent("Tests/CLIPDataTests/Fixtures")

    func run(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        process.currentDirectoryURL = repoRoot
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    /// `bench --passes batched,per-thread` times both ways and labels each row; only the batched
    /// row gets a breakdown (per-thread operations overlap in time).
    func testBenchTimesBatchedAndPerThreadPasses() throws {
        let model = repoRoot.appendingPathComponent("Tests/CLIPEvaluationTests/Fixtures/model/config.json").path
        let r = try run(["bench", "--model", model, "--batch-sizes", "3", "--passes", "batched,per-thread", "--threads", "2",
                         "--warmup", "0", "--repeats", "2", "--breakdown", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let rows = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]])
        XCTAssertEqual(rows.map { $0["passes"] as? String }, ["batched", "per-thread"])
        XCTAssertEqual(rows.map { $0["system"] as? String }, ["swiftclip-fp32", "swiftclip-fp32-per-thread"])
        XCTAssertNotNil(rows[0]["breakdown_ms"])
        XCTAssertNil(rows[1]["breakdown_ms"])
    }

    func testJPEGAndPNGThroughEmbedImageAndClassifyWithABadFileInTheBatch() throws {
        let model = repoRoot.appendingPathComponent("Tests/CLIPModelsTests/Fixtures/vit_tiny_quickgelu/config.json").path
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("swiftclip-cli-\(UUID().uuidString).npy")
        defer { try? FileManager.default.removeItem(at: out) }
        let jpeg = images.appendingPathComponent("china.jpg").path, png = images.appendingPathComponent("exact_64x100.png").path
        let empty = images.appendingPathComponent("empty.jpg").path
        let embed = try run(["embed-image", "--model", model, "--output", out.path, jpeg, empty, png])
        XCTAssertEqual(embed.status, 1, "a failed file makes the exit status 1")
        XCTAssertTrue(embed.stderr.contains("empty.jpg"), embed.stderr)
        let written = try NPY.read(out).shape[0]
        XCTAssertEqual(written, 2, "the two readable images are embedded")

        // A label given twice is refused (the output is keyed by label; it used to crash the JSON writer).
        let twice = try run(["classify", "--model", model, "--labels", "cat, dog,cat", "--json", jpeg])
        XCTAssertEqual(twice.status, 64, twice.stderr)
        XCTAssertTrue(twice.stderr.contains("'cat' is given twice"), twice.stderr)
        let big = try run(["classify", "--model", "convnext_v2_tiny", "--labels", "cat,dog,car", "--json", jpeg, png])
        XCTAssertEqual(big.status, 0, big.stderr)
        let rows = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(big.stdout.utf8)) as? [[String: Any]])
        XCTAssertEqual(rows.count, 2)
        let probabilities = try XCTUnwrap(rows[0]["probabilities"] as? [String: Double])
        XCTAssertEqual(probabilities.values.reduce(0, +), 1, accuracy: 1e-4)
    }

    /// Folders (recursive, sorted, other files ignored), lists (comments, blank lines, standard
    /// input) and .npy arrays in one call; the rows file names each row's input, a corrupt file
    /// leaves no gap in it, and rows equal those of embedding each input alone.
    func testEmbedImageStreamsFoldersAndListsAndNamesEveryRow() throws {
        let model = repoRoot.appendingPathComponent("Tests/CLIPModelsTests/Fixtures/vit_tiny_quickgelu/config.json").path
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("swiftclip-stream-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let photos = folder.appendingPathComponent("photos"), sub = photos.appendingPathComponent("z/deeper")
        try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: true)
        let jpeg = images.appendingPathComponent("china.jpg"), png = images.appendingPathComponent("exact_64x100.png")
        try FileManager.default.copyItem(at: jpeg, to: photos.appendingPathComponent("b.jpg"))
        try FileManager.default.copyItem(at: png, to: sub.appendingPathComponent("c.PNG"))
        try Data("not an image".utf8).write(to: photos.appendingPathComponent("a_corrupt.jpeg"))
        try Data("notes".utf8).write(to: photos.appendingPathComponent("notes.txt"))
        let pixels = folder.appendingPathComponent("pixels.npy").path
        XCTAssertEqual(try run(["preprocess", "--model", model, "--output", pixels, jpeg.path, png.path]).status, 0)
        let list = folder.appendingPathComponent("list.txt")
        try Data("# a comment\n\n\(pixels)\n\(png.path)\n".utf8).write(to: list)

        let out = folder.appendingPathComponent("all.npy").path
        let r = try run(["embed-image", "--model", model, "--batch-size", "2", "--output", out, photos.path, "--input-list", list.path])
        XCTAssertEqual(r.status, 1, "the corrupt file makes the exit status 1")
        XCTAssertTrue(r.stderr.contains("a_corrupt.jpeg"), r.stderr)
        let names = try String(contentsOfFile: folder.appendingPathComponent("all.rows.txt").path, encoding: .utf8)
        XCTAssertEqual(names.split(separator: "\n").map(String.init),
                       [photos.appendingPathComponent("b.jpg").path, sub.appendingPathComponent("c.PNG").path,
                        "\(pixels)[0]", "\(pixels)[1]", png.path])
        let all = try NPY.read(URL(fileURLWithPath: out)).floatTensor()
        XCTAssertEqual(all.shape[0], 5)

        // Each row equals the input embedded alone (JPEG file vs its preprocessed row, PNG likewise).
        let single = folder.appendingPathComponent("one.npy").path
        for (row, input) in [(0, jpeg.path), (1, png.path), (2, jpeg.path), (3, png.path), (4, png.path)] {
            XCTAssertEqual(try run(["embed-image", "--model", model, "--output", single, input]).status, 0)
            let one = try NPY.read(URL(fileURLWithPath: single)).floatTensor().scalars
            let got = Array(all.scalars[(row * one.count)..<((row + 1) * one.count)])
            XCTAssertLessThan(zip(got, one).map { abs($0 - $1) }.max()!, 1e-5, "row \(row)")
        }

        // A list on standard input; an empty folder is an error that says so.
        let process = Process(), input = Pipe(), err = Pipe()
        process.executableURL = binary
        process.arguments = ["embed-image", "--model", model, "--output", single, "--input-list", "-"]
        process.currentDirectoryURL = repoRoot
        process.standardInput = input
        process.standardError = err
        try process.run()
        input.fileHandleForWriting.write(Data("\(png.path)\n".utf8))
        try input.fileHandleForWriting.close()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
        XCTAssertEqual(try String(contentsOfFile: folder.appendingPathComponent("one.rows.txt").path, encoding: .utf8), png.path + "\n")
        let empty = folder.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        let e = try run(["embed-image", "--model", model, "--output", single, empty.path])
        XCTAssertEqual(e.status, 1)
        XCTAssertTrue(e.stderr.contains("hold none"), e.stderr)
    }

    func testUnreadableWeightsAndUnknownModelAreOneLineErrors() throws {
        let r = try run(["info", "--model", "convnext_v3_tiny"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.hasPrefix("error: unknown model 'convnext_v3_tiny'"), r.stderr)
        let w = try run(["info", "--model", "ViT-B-32", "--weights", images.appendingPathComponent("china.jpg").path])
        XCTAssertEqual(w.status, 1)
        XCTAssertTrue(w.stderr.contains("china.jpg"), w.stderr)
    }

    func testTokenizeMatchesOpenCLIPForAKnownCaption() throws {
        let r = try run(["tokenize", "--context-length", "8", "a photo of a cat"])
        XCTAssertEqual(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "49406 320 1125 539 320 2368 49407 0")
    }
}
