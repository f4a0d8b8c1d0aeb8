import CLIPData
import CLIPDetection
import CLIPEngine
import CLIPModels
import CLIPNN
import Foundation
import XCTest

let detectionFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
/// The convnext_v2_atto parity fixture (open_clip weights) the dense reference was computed with.
let attoFixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("CLIPModelsTests/Fixtures/convnext_v2_atto")

func loadAtto() throws -> CLIPModel {
    let config = try CLIPConfig.load(contentsOf: attoFixture.appendingPathComponent("config.json"))
    return try CLIPModel(config: config, weights: SafetensorsWeights(url: attoFixture.appendingPathComponent("model.safetensors")))
}

/// ‖a − b‖ / ‖b‖ of each row (last axis), the worst.
func worstRowError(_ a: [Float], _ b: [Float], width: Int) -> Double {
    var worst = 0.0
    for r in 0..<(b.count / width) {
        var diff = 0.0, norm = 0.0
        for c in 0..<width {
            let (x, y) = (Double(a[r * width + c]), Double(b[r * width + c]))
            diff += (x - y) * (x - y); norm += y * y
        }
        worst = max(worst, (diff / max(norm, 1e-30)).squareRoot())
    }
    return worst
}

/// Dense and region CLIP embeddings against open_clip/timm/torchvision
/// (tools/reference/make_dense_fixtures.py), at an input size other than the config's.
final class DenseFeaturesTests: XCTestCase {
    func testDenseAndRegionEmbeddingsMatchReference() throws {
        let dense = try DenseCLIP(model: loadAtto())
        let dir = detectionFixtures.appendingPathComponent("dense")
        let image = try NPY.read(dir.appendingPathComponent("image.npy")).floatTensor()
        XCTAssertEqual(image.shape, [1, 3, 96, 160])
        let map = try dense.lastStage(image)
        XCTAssertEqual(map.shape, [1, 3, 5, dense.featureWidth])

        let expected = try NPY.read(dir.appendingPathComponent("dense.npy")).floatTensor()
        let got = try dense.denseEmbeddings(lastStage: map)
        XCTAssertEqual(got.shape, expected.shape)
        XCTAssertLessThanOrEqual(worstRowError(got.scalars, expected.scalars, width: 32), 1e-4, "per-location embeddings")

        let b = try NPY.read(dir.appendingPathComponent("boxes.npy")).floatTensor().scalars.map(Double.init)
        let boxes = (0..<(b.count / 4)).map { (image: 0, box: Box(x0: b[4 * $0], y0: b[4 * $0 + 1], x1: b[4 * $0 + 2], y1: b[4 * $0 + 3])) }
        let regions = try dense.regionEmbeddings(lastStage: map, boxes: boxes, inputSize: (160, 96))
        let expectedRegions = try NPY.read(dir.appendingPathComponent("regions.npy")).floatTensor()
        XCTAssertEqual(regions.shape, expectedRegions.shape)
        XCTAssertLessThanOrEqual(worstRowError(regions.scalars, expectedRegions.scalars, width: 32), 1e-4, "region embeddings (RoI-align, pool, head)")
    }

    /// The whole image pooled through the dense path is encode_image (pool first, then the head).
    func testWholeImageRegionIsEncodeImage() throws {
        let model = try loadAtto()
        let dense = try DenseCLIP(model: model)
        var rng = SeededGenerator(seed: 3)
        let images = Tensor.random(shape: [2, 3, 64, 96], using: &rng)
        let map = try dense.lastStage(images)
        let mean = try Ops.meanPool2d(map)
        // A box covering the map exactly, with 1 bin sampled at the cell centres, is the mean.
        let (h, w) = (map.shape[1], map.shape[2])
        XCTAssertEqual([h, w], [2, 3])
        let pooled = try RoIAlign.pooledMeans(map, boxes: [(1, Box(x0: 0, y0: 0, x1: Double(w), y1: Double(h)))], scaleX: 1, scaleY: 1,
                                              bins: 1, samplingRatio: 0)
        // samplingRatio 0 with a 3-wide box: ceil(3) × ceil(2) samples at the cell centres.
        XCTAssertLessThanOrEqual(worstRowError(pooled.scalars, Array(mean.scalars[dense.featureWidth...]), width: dense.featureWidth), 1e-6)
        let viaDense = try dense.embed(pooledRows: mean)
        let direct = try model.encodeImage(images)
        XCTAssertLessThanOrEqual(worstRowError(viaDense.scalars, direct.scalars, width: 32), 1e-5)
    }

    func testSimilarityMapsAreCosines() throws {
        var rng = SeededGenerator(seed: 5)
        let dense = Tensor.random(shape: [1, 2, 3, 8], using: &rng), texts = Tensor.random(shape: [2, 8], using: &rng)
        let maps = try DenseCLIP.similarityMaps(dense: dense, texts: texts)
        XCTAssertEqual(maps.shape, [1, 2, 3, 2])
        let d = dense.scalars, t = texts.scalars
        for loc in 0..<6 {
            for k in 0..<2 {
                let a = Array(d[(loc * 8)..<(loc * 8 + 8)]), b = Array(t[(k * 8)..<(k * 8 + 8)])
                let dot = zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                let na = a.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot(), nb = b.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
                XCTAssertEqual(Double(maps.scalars[loc * 2 + k]), dot / (na * nb), accuracy: 1e-5)
            }
        }
    }

    func testViTHasNoDenseFeatures() throws {
        let config = try CLIPConfig.load(contentsOf: attoFixture.deletingLastPathComponent().appendingPathComponent("vit_tiny_quickgelu/config.json"))
        let model = try CLIPModel(config: config, seed: 1)
        XCTAssertThrowsError(try DenseCLIP(model: model)) { XCTAssertTrue("\($0)".contains("ConvNeXt")) }
    }
}
