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
        let model = try loadAtto()
        let dense = try DenseCLIP(model: model)
        let head = try BoxHead(config: BoxHeadConfig(inputWidth: dense.stageWidths[2] + dense.stageWidths[3], hidden: 8, embedDim: 0,
                                                     imageSize: 64, vocabulary: []), seed: 3)
        let detector = try OpenVocabularyDetector(model: model, head: head, tokenizer: nil)
        let image = pattern(width: 64, height: 64)
        let boxes = [Box(x0: 4, y0: 8, x1: 40, y1: 60)]
        let stage4 = try dense.lastStage(Preprocessor(imageSize: 64).stretched(image).reshaped([1, 3, 64, 64]))
        var o = OpenVocabularyDetector.Options()
        let same = try detector.regionEmbeddings(image: image, boxes: boxes, side: 64, stage4: stage4, options: o)
        let direct = try dense.regionEmbeddings(lastStage: stage4, boxes: [(0, boxes[0])], inputSize: (64, 64))
        XCTAssertEqual(same.scalars, direct.scalars)
        o.regionInputSize = 128
        let other = try detector.regionEmbeddings(image: image, boxes: boxes, side: 64, stage4: stage4, options: o)
        let map128 = try dense.lastStage(Preprocessor(imageSize: 128).stretched(image).reshaped([1, 3, 128, 128]))
        let expected = try dense.regionEmbeddings(lastStage: map128, boxes: [(0, Box(x0: 8, y0: 16, x1: 80, y1: 120))], inputSize: (128, 128))
        XCTAssertLessThanOrEqual(worstRowError(other.scalars, expected.scalars, width: model.config.embedDim), 1e-6)
        XCTAssertGreaterThan(worstRowError(other.scalars, same.scalars, width: model.config.embedDim), 1e-3, "the second map must differ")
    }

    func testBlendMeans() {
        XCTAssertEqual(OpenVocabularyDetector.BlendMean.geometric(inVocabulary: 0.25, clip: 0.64, weight: 0.5), 0.4, accuracy: 1e-12)
        XCTAssertEqual(OpenVocabularyDetector.BlendMean.arithmetic(inVocabulary: 0.25, clip: 0.65, weight: 0.25), 0.35, accuracy: 1e-12)
        XCTAssertEqual(OpenVocabularyDetector.BlendMean.geometric(inVocabulary: 0.3, clip: 0.9, weight: 0), 0.3, accuracy: 1e-12)
    }

    /// End to end with each region embedding: with a near-zero CLIP scale the CLIP score is uniform,
    /// so a clipRegion score is objectness / K for every label, whatever the embedding.
    func testDetectWithEveryRegionEmbedding() throws {
        let model = try loadAtto()
        let dense = try DenseCLIP(model: model)
        let head = try BoxHead(config: BoxHeadConfig(inputWidth: dense.stageWidths[2] + dense.stageWidths[3], hidden: 8, embedDim: 32,
                                                     imageSize: 64, vocabulary: ["red circle"]), seed: 3)
        var rng = SeededGenerator(seed: 5)
        let texts = Ops.l2Normalize(Tensor.random(shape: [2, 32], using: &rng))
        let detector = try OpenVocabularyDetector(model: model, head: head, tokenizer: nil)
        let image = pattern(width: 80, height: 64)
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
