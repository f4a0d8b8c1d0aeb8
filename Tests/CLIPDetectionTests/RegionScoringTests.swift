import CLIPData
import CLIPDetection
import CLIPEngine
import CLIPModels
import Foundation
import XCTest

/// The detector's region scores: RoI-align on a second map, crops and masked images re-encoded
/// (ViLD-style), the blend's means and the CLIP softmax scale.
final class RegionScoringTests: XCTestCase {
    func pattern(width: Int, height: Int) -> RGBImage {
        RGBImage(width: width, height: height, pixels: (0..<(width * height * 3)).map { UInt8(($0 * 7 + $0 / 3) % 251) })
    }

    /// A random box head (embedding head trained on "red circle") on the atto fixture at 64 px, two
    /// random unit texts and a patterned 80 × 64 image.
    func randomDetector() throws -> (OpenVocabularyDetector, Tensor, RGBImage) {
        var rng = SeededGenerator(seed: 5)
        let texts = Ops.l2Normalize(Tensor.random(shape: [2, 32], using: &rng))
        return (try attoDetector(embedDim: 32, vocabulary: ["red circle"]).detector, texts, pattern(width: 80, height: 64))
    }

    /// A random 64 px box head (hidden 8, seed 3) on the atto fixture.
    func attoDetector(embedDim: Int = 0, vocabulary: [String] = []) throws -> (model: CLIPModel, dense: DenseCLIP, detector: OpenVocabularyDetector) {
        let model = try loadAtto()
        let dense = try DenseCLIP(model: model)
        let head = try BoxHead(config: BoxHeadConfig(inputWidth: dense.stageWidths[2] + dense.stageWidths[3], hidden: 8, embedDim: embedDim,
                                                     imageSize: 64, vocabulary: vocabulary), seed: 3)
        return (model, dense, try OpenVocabularyDetector(model: model, head: head, tokenizer: nil))
    }

    func testCropAndMaskKeepTheBoxPixels() {
        let image = pattern(width: 10, height: 8)
        let box = Box(x0: 2.4, y0: 1, x1: 5.2, y1: 4)   // rounded outwards: x 2..<6, y 1..<4
        let crop = RegionEncoder.cropped(image, box: box)
        XCTAssertEqual([crop.width, crop.height], [4, 3])
        let masked = RegionEncoder.masked(image, box: box)
        for y in 0..<8 {
            for x in 0..<10 {
                let inside = (2..<6).contains(x) && (1..<4).contains(y)
                for c in 0..<3 {
                    let v = image.pixels[(y * 10 + x) * 3 + c]
                    XCTAssertEqual(masked.pixels[(y * 10 + x) * 3 + c], inside ? v : RegionEncoder.maskFill, "(\(x), \(y))")
                    if inside { XCTAssertEqual(crop.pixels[((y - 1) * 4 + x - 2) * 3 + c], v) }
                }
            }
        }
        // A box partly or wholly outside the image is clipped to at least one pixel.
        let edge = RegionEncoder.cropped(image, box: Box(x0: -5, y0: 6.5, x1: 30, y1: 40))
        XCTAssertEqual([edge.width, edge.height], [10, 2])
        let outside = RegionEncoder.cropped(image, box: Box(x0: 20, y0: 20, x1: 25, y1: 25))
        XCTAssertEqual([outside.width, outside.height], [1, 1])
    }

    /// Batched in chunks, each box's embedding is encode_image of its own stretched crop (or masked image).
    func testCropAndMaskEmbeddingsAreEncodeImage() throws {
        let model = try loadAtto()
        let image = pattern(width: 80, height: 64)
        let boxes = [Box(x0: 0, y0: 0, x1: 80, y1: 64), Box(x0: 10, y0: 5, x1: 50, y1: 30), Box(x0: 40, y0: 20, x1: 79, y1: 63)]
        let side = 64
        for mode in [RegionEmbedding.crop, .mask] {
            let got = try RegionEncoder.embeddings(model: model, image: image, boxes: boxes, mode: mode, side: side, chunk: 2)
            XCTAssertEqual(got.shape, [3, model.config.embedDim])
            for (i, box) in boxes.enumerated() {
                let pixels = mode == .crop ? RegionEncoder.cropped(image, box: box) : RegionEncoder.masked(image, box: box)
                let one = try model.encodeImage(Preprocessor(imageSize: side).stretched(pixels).reshaped([1, 3, side, side]))
                let d = model.config.embedDim
                XCTAssertLessThanOrEqual(worstRowError(Array(got.scalars[(i * d)..<((i + 1) * d)]), one.scalars, width: d), 1e-5, "\(mode) box \(i)")
            }
            // The whole image as its own box is the image itself.
            if mode == .mask {
                let whole = try model.encodeImage(Preprocessor(imageSize: side).stretched(image).reshaped([1, 3, side, side]))
                let d = model.config.embedDim
                XCTAssertLessThanOrEqual(worstRowError(Array(got.scalars[0..<d]), whole.scalars, width: d), 1e-5)
            }
        }
        XCTAssertThrowsError(try RegionEncoder.embeddings(model: model, image: image, boxes: boxes, mode: .roiAlign, side: side))
    }

    /// roiAlign with another region size RoI-aligns the box, rescaled, on that input's own map.
    func testRoIAlignOnASecondMap() throws {
        let (model, dense, detector) = try attoDetector()
        let image = pattern(width: 64, height: 64)
        let boxes = [Box(x0: 4, y0: 8, x1: 40, y1: 60)]
        let stage4 = try dense.lastStage(Preprocessor(imageSize: 64).stretched(image).reshaped([1, 3, 64, 64]))
        var o = OpenVocabularyDetector.Options()
        o.regionEmbedding = .roiAlign
        let same = try detector.regionEmbeddings(image: image, boxes: boxes, side: 64, stage4: stage4, options: o).embeddings
        let direct = try dense.regionEmbeddings(lastStage: stage4, boxes: [(0, boxes[0])], inputSize: (64, 64))
        XCTAssertEqual(same.scalars, direct.scalars)
        o.regionInputSize = 128
        let other = try detector.regionEmbeddings(image: image, boxes: boxes, side: 64, stage4: stage4, options: o).embeddings
        let map128 = try dense.lastStage(Preprocessor(imageSize: 128).stretched(image).reshaped([1, 3, 128, 128]))
        let expected = try dense.regionEmbeddings(lastStage: map128, boxes: [(0, Box(x0: 8, y0: 16, x1: 80, y1: 120))], inputSize: (128, 128))
        XCTAssertLessThanOrEqual(worstRowError(other.scalars, expected.scalars, width: model.config.embedDim), 1e-6)
        XCTAssertGreaterThan(worstRowError(other.scalars, same.scalars, width: model.config.embedDim), 1e-3, "the second map must differ")
    }

    /// crop and mask re-encode only the first `encodedRegions` boxes (best first), in one pass; the
    /// rest are RoI-aligned on the detector's map.
    func testOnlyTheBestBoxesAreReEncoded() throws {
        let (model, dense, detector) = try attoDetector()
        let image = pattern(width: 128, height: 96)
        let boxes = [Box(x0: 0, y0: 0, x1: 64, y1: 64), Box(x0: 4, y0: 8, x1: 40, y1: 60), Box(x0: 20, y0: 2, x1: 50, y1: 30),
                     Box(x0: 30, y0: 30, x1: 63, y1: 63)]
        let stage4 = try dense.lastStage(Preprocessor(imageSize: 64).stretched(image).reshaped([1, 3, 64, 64]))
        let d = model.config.embedDim
        var o = OpenVocabularyDetector.Options()
        o.regionEmbedding = .mask
        o.regionInputSize = 64
        let roi = try dense.regionEmbeddings(lastStage: stage4, boxes: boxes.map { (0, $0) }, inputSize: (64, 64)).scalars
        // Boxes are in the 64 px input's pixels; the image is 2 × 1.5 times larger.
        let inImage = boxes.map { $0.scaled(x: 2, y: 1.5) }
        let encoded = try RegionEncoder.embeddings(model: model, image: image, boxes: inImage, mode: .mask, side: 64).scalars
        for n in [0, 2, 4, 9] {
            o.encodedRegions = n
            let (got, count) = try detector.regionEmbeddings(image: image, boxes: boxes, side: 64, stage4: stage4, options: o)
            XCTAssertEqual(count, min(n, 4))
            XCTAssertEqual(got.shape, [4, d])
            for i in 0..<4 {
                let expected = i < n ? encoded : roi
                XCTAssertLessThanOrEqual(worstRowError(Array(got.scalars[(i * d)..<((i + 1) * d)]), Array(expected[(i * d)..<((i + 1) * d)]), width: d),
                                         1e-5, "n \(n), box \(i)")
            }
        }
        o.encodedRegions = -1
        XCTAssertThrowsError(try detector.regionEmbeddings(image: image, boxes: boxes, side: 64, stage4: stage4, options: o))
        XCTAssertThrowsError(try RegionEncoder.embeddings(model: model, image: image, boxes: [], mode: .mask, side: 64))
    }

    /// A box scores at most its objectness, so boxes under the threshold are not classified: the
    /// detections above a threshold are those of threshold 0 that reach it, and only the boxes
    /// that can reach it are re-encoded. The in-vocabulary score re-encodes nothing.
    func testBoxesUnderTheThresholdAreNotScored() throws {
        let (detector, texts, image) = try randomDetector()
        let labels = ["red circle", "blue square"]
        var o = OpenVocabularyDetector.Options()
        o.minimumObjectness = 0; o.onePerBox = false; o.proposals = 5; o.regionEmbedding = .mask; o.encodedRegions = 5
        o.threshold = 0
        let (all, allWork) = try detector.detectCounting(image, labels: labels, texts: texts, options: o)
        XCTAssertEqual(allWork, OpenVocabularyDetector.Work(scored: 5, encoded: 5))
        // A threshold between two boxes' objectness: the clipRegion score with a flat CLIP softmax is objectness / 2.
        o.scoring = .clipRegion; o.clipScale = 1e-9; o.onePerBox = true
        let objectness = try detector.detect(image, labels: labels, texts: texts, options: o).map { $0.score * 2 }.sorted(by: >)
        XCTAssertEqual(objectness.count, 5)
        XCTAssertGreaterThan(objectness[2], objectness[3] * (1 + 1e-6), "pick another seed: boxes 3 and 4 tie")
        o.scoring = .blend; o.clipScale = nil; o.onePerBox = false
        o.threshold = (objectness[2] + objectness[3]) / 2
        let (some, someWork) = try detector.detectCounting(image, labels: labels, texts: texts, options: o)
        XCTAssertEqual(someWork, OpenVocabularyDetector.Work(scored: 3, encoded: 3))
        let expected = all.filter { $0.score >= o.threshold }
        XCTAssertEqual(some.count, expected.count)
        for (g, e) in zip(some, expected) {
            XCTAssertEqual(g.label, e.label)
            XCTAssertEqual(g.asBox, e.asBox)
            XCTAssertEqual(g.score, e.score, accuracy: 1e-6)
        }
        o.threshold = 0; o.scoring = .inVocabulary
        let (_, inVocabWork) = try detector.detectCounting(image, labels: labels, texts: texts, options: o)
        XCTAssertEqual(inVocabWork, OpenVocabularyDetector.Work(scored: 5, encoded: 0))
    }

    func testBlendMeans() {
        XCTAssertEqual(OpenVocabularyDetector.BlendMean.geometric(inVocabulary: 0.25, clip: 0.64, weight: 0.5), 0.4, accuracy: 1e-12)
        XCTAssertEqual(OpenVocabularyDetector.BlendMean.arithmetic(inVocabulary: 0.25, clip: 0.65, weight: 0.25), 0.35, accuracy: 1e-12)
        XCTAssertEqual(OpenVocabularyDetector.BlendMean.geometric(inVocabulary: 0.3, clip: 0.9, weight: 0), 0.3, accuracy: 1e-12)
    }

    /// End to end with each region embedding: with a near-zero CLIP scale the CLIP score is uniform,
    /// so a clipRegion score is objectness / K for every label, whatever the embedding.
    func testDetectWithEveryRegionEmbedding() throws {
        let (detector, texts, image) = try randomDetector()
        var o = OpenVocabularyDetector.Options()
        o.threshold = 0; o.minimumObjectness = 0; o.onePerBox = false; o.proposals = 5; o.scoring = .clipRegion
        var perMode: [RegionEmbedding: [Double]] = [:]
        for mode in RegionEmbedding.allCases {
            o.regionEmbedding = mode; o.clipScale = nil
            let found = try detector.detect(image, labels: ["red circle", "blue square"], texts: texts, options: o)
            XCTAssertEqual(found.count, 10, "\(mode): 5 boxes × 2 labels")
            perMode[mode] = found.map(\.score)
            o.clipScale = 1e-9
            let flat = try detector.detect(image, labels: ["red circle", "blue square"], texts: texts, options: o)
            // Per box the two labels tie at objectness / 2.
            let byBox = Dictionary(grouping: flat, by: { "\($0.box)" })
            XCTAssertEqual(byBox.count, 5)
            for (_, pair) in byBox { XCTAssertEqual(pair[0].score, pair[1].score, accuracy: 1e-9) }
        }
        XCTAssertNotEqual(perMode[.crop], perMode[.roiAlign], "crop scores must come from another embedding")
        XCTAssertNotEqual(perMode[.mask], perMode[.crop])
    }
}
