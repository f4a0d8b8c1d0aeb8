import XCTest
import Foundation
import SwiftCLIP

/// The `import SwiftCLIP` API as a Swift developer uses it, on a small random model with the real
/// CLIP vocabulary (49,408 tokens) and real image files.
final class HighLevelAPITests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let images = root.appendingPathComponent("Tests/CLIPDataTests/Fixtures")

    static let clip = makeCLIP(.fp32)

    static func makeCLIP(_ precision: Precision) -> CLIP {
        let config = """
        {"embed_dim": 32, "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
         "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}
        """
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("swiftclip-api-\(UUID().uuidString).json")
        try! Data(config.utf8).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        return try! CLIP(model: url.path, vocabulary: root.appendingPathComponent("assets/bpe_simple_vocab_16e6.txt.gz"), seed: 7,
                         precision: precision)
    }

    /// Equal up to float rounding: a batch of 1 and a batch of 2 (or 3) may take different GEMM
    /// blockings (OpenBLAS picks kernels by shape and, unless OPENBLAS_CORETYPE pins it, by CPU).
    func assertClose(_ a: [Float], _ b: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        XCTAssertLessThanOrEqual(zip(a, b).map { abs($0 - $1) }.max() ?? 0, 1e-6, what, file: file, line: line)
    }

    func testImageEmbeddingsFromFilesAndFromRGBBytesAgreeWithTheModel() throws {
        let clip = Self.clip
        let jpeg = Self.images.appendingPathComponent("china.jpg"), png = Self.images.appendingPathComponent("exact_64x100.png")
        let both = try clip.embedImages(at: [jpeg, png])
        XCTAssertEqual(both.count, 2)
        XCTAssertEqual(both[0].count, 32)
        assertClose(try clip.embedImage(at: jpeg), both[0], "one file alone and in a batch")
        XCTAssertEqual(both[0].map { $0 * $0 }.reduce(0, +), 1, accuracy: 1e-5, "normalised by default")

        let decoded = try ImageDecoder.decode(contentsOf: jpeg)
        assertClose(try clip.embedImage(rgb: decoded.pixels, width: decoded.width, height: decoded.height), both[0], "RGB bytes")
        // The layers underneath give the same numbers.
        let raw = try clip.model.encodeImage(clip.preprocessor.batch(count: 1) { _ in decoded }, normalize: true)
        assertClose(raw.scalars, both[0], "the layers underneath")
        XCTAssertNotEqual(try clip.embedImage(at: jpeg, normalize: false), both[0])
    }

    func testTextEmbeddingsSimilarityAndClassification() throws {
        let clip = Self.clip
        let texts = try clip.embedTexts(["a photo of a cat", "a photo of a dog", "a photo of a cat"])
        assertClose(texts[0], texts[2], "the same text twice in a batch")
        XCTAssertNotEqual(texts[0], texts[1])
        assertClose(try clip.embedText("a photo of a dog"), texts[1], "one text alone and in a batch")
        XCTAssertEqual(CLIP.cosineSimilarity(texts[0], texts[2]), 1, accuracy: 1e-6)
        XCTAssertLessThan(CLIP.cosineSimilarity(texts[0], texts[1]), 0.9999)

        let ranked = try clip.classify(imageAt: Self.images.appendingPathComponent("china.jpg"), labels: ["cat", "dog", "car"])
        XCTAssertEqual(Set(ranked.map(\.label)), ["cat", "dog", "car"])
        XCTAssertEqual(ranked.map(\.probability).reduce(0, +), 1, accuracy: 1e-5)
        XCTAssertEqual(ranked.map(\.probability), ranked.map(\.probability).sorted(by: >))
    }

    func testBadInputsAreErrorsNamingTheProblem() {
        let clip = Self.clip
        XCTAssertThrowsError(try clip.embedImage(rgb: [1, 2, 3], width: 2, height: 2)) { error in
            XCTAssertTrue("\(error)".contains("needs 12 bytes"), "\(error)")
        }
        XCTAssertThrowsError(try clip.embedImage(at: Self.images.appendingPathComponent("empty.jpg"))) { error in
            XCTAssertTrue("\(error)".contains("empty.jpg"), "\(error)")
        }
        XCTAssertThrowsError(try CLIP(model: "no_such_model"))
        XCTAssertEqual(try clip.embedTexts([]).count, 0)
    }

    /// `precision:` end to end on the real photos (and their re-encodings) of the fixtures: the worst
    /// image's and text's cosine with the fp32 model of the same weights.
    func testReducedPrecisionEmbeddingsStayCloseToFP32() throws {
        let photos = try FileManager.default.contentsOfDirectory(atPath: Self.images.path)
            .filter { $0.hasSuffix(".jpg") && ($0.hasPrefix("china") || $0.hasPrefix("flower")) }.sorted()
            .map { Self.images.appendingPathComponent($0) }
        XCTAssertGreaterThanOrEqual(photos.count, 4)
        let texts = ["a photo of a flower", "a photo of a temple in china", "a diagram"]
        let fp32Images = try Self.clip.embedImages(at: photos), fp32Texts = try Self.clip.embedTexts(texts)
        for (precision, threshold) in [(Precision.bf16, Float(0.999)), (.int8, 0.99)] {
            let clip = Self.makeCLIP(precision)
            XCTAssertEqual(clip.model.precision, precision)
            let images = try clip.embedImages(at: photos), textRows = try clip.embedTexts(texts)
            let worstImage = zip(images, fp32Images).map { CLIP.cosineSimilarity($0, $1) }.min()!
            let worstText = zip(textRows, fp32Texts).map { CLIP.cosineSimilarity($0, $1) }.min()!
            XCTAssertGreaterThanOrEqual(worstImage, threshold, "\(precision) images")
            XCTAssertGreaterThanOrEqual(worstText, threshold, "\(precision) texts")
            XCTAssertNotEqual(images[0], fp32Images[0], "\(precision) is not fp32")
        }
    }
}
