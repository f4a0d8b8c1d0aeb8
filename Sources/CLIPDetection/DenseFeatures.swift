import CLIPEngine
import CLIPModels
import Foundation

/// A box in pixels of the image the model saw: corners (x0, y0) top-left, (x1, y1) bottom-right.
public struct Box: Codable, Equatable, Sendable {
    public var x0: Double, y0: Double, x1: Double, y1: Double
    public init(x0: Double, y0: Double, x1: Double, y1: Double) { self.x0 = x0; self.y0 = y0; self.x1 = x1; self.y1 = y1 }
    public var width: Double { x1 - x0 }
    public var height: Double { y1 - y0 }
    public var area: Double { max(0, width) * max(0, height) }

    public func iou(_ o: Box) -> Double {
        let w = min(x1, o.x1) - max(x0, o.x0), h = min(y1, o.y1) - max(y0, o.y0)
        guard w > 0, h > 0 else { return 0 }
        return w * h / (area + o.area - w * h)
    }

    public func scaled(x sx: Double, y sy: Double) -> Box { Box(x0: x0 * sx, y0: y0 * sy, x1: x1 * sx, y1: y1 * sy) }
}

/// Dense and region CLIP embeddings of a ConvNeXt image tower (FC-CLIP, SED, F-VLM): the tower's
/// head — timm's `head.norm` (and `head.fc`), then open_clip's projection — applied to each
/// location of the last stage map (per-location embeddings, for heatmaps) or to a region of it
/// pooled first (RoI-align, then the mean of the bins; the head's LayerNorm is not linear, so
/// pooling comes before it, as the global pool does for the whole image). Any input size the
/// stem accepts works, not only the config's: the maps are H/32 × W/32.
public struct DenseCLIP {
    public let model: CLIPModel
    let tower: TimmImageTower

    public init(model: CLIPModel) throws {
        guard let tower = model.visual as? TimmImageTower else {
            throw DetectionError.invalidArgument("dense CLIP features need a ConvNeXt (timm) image tower; \(model.config.source) has a ViT")
        }
        self.model = model
        self.tower = tower
    }

    public var embedDim: Int { model.config.embedDim }
    /// Channels of the last stage map.
    public var featureWidth: Int { tower.lastStageWidth }
    public var stageWidths: [Int] { tower.stageWidths }

    /// The last stage map [N, H/32, W/32, C] of preprocessed images [N, 3, H, W].
    public func lastStage(_ images: Tensor) throws -> Tensor {
        try tower.stageOutputs(images, keepingAll: false)[0]
    }

    /// Every stage map (strides 4, 8, 16, 32).
    public func stages(_ images: Tensor) throws -> [Tensor] {
        try tower.stageOutputs(images)
    }

    /// Per-location CLIP embeddings [N, h, w, embed_dim] (not normalised) of a last stage map.
    public func denseEmbeddings(lastStage map: Tensor) throws -> Tensor {
        guard map.rank == 4, map.shape[3] == featureWidth else {
            throw TensorError.shapeMismatch("denseEmbeddings: expected a last stage map [N, h, w, \(featureWidth)], got \(map.shape)")
        }
        let rows = try map.reshaped([map.shape[0] * map.shape[1] * map.shape[2], featureWidth])
        return try tower.embed(lastStageRows: rows).reshaped([map.shape[0], map.shape[1], map.shape[2], embedDim])
    }

    /// Region CLIP embeddings [M, embed_dim] (not normalised): RoI-align of each box (in pixels of
    /// the `inputSize` (width, height) the map was computed from) on image `image` of the map,
    /// the mean of its bins, then the head.
    public func regionEmbeddings(lastStage map: Tensor, boxes: [(image: Int, box: Box)], inputSize: (width: Int, height: Int),
                                 bins: Int = 7, samplingRatio: Int = 2) throws -> Tensor {
        let pooled = try RoIAlign.pooledMeans(map, boxes: boxes, scaleX: Double(map.shape[2]) / Double(inputSize.width),
                                              scaleY: Double(map.shape[1]) / Double(inputSize.height), bins: bins, samplingRatio: samplingRatio)
        return try tower.embed(lastStageRows: pooled)
    }

    /// CLIP embeddings [M, embed_dim] of rows already pooled from the last stage map (the head alone).
    public func embed(pooledRows rows: Tensor) throws -> Tensor {
        try tower.embed(lastStageRows: rows)
    }

    /// Cosine similarity of each location with each text: [N, h, w, K] from dense embeddings and
    /// text embeddings [K, embed_dim] (both normalised here).
    public static func similarityMaps(dense: Tensor, texts: Tensor) throws -> Tensor {
        guard dense.rank == 4, texts.rank == 2, dense.shape[3] == texts.shape[1] else {
            throw TensorError.shapeMismatch("similarityMaps: dense \(dense.shape) against texts \(texts.shape)")
        }
        let (n, h, w, d, k) = (dense.shape[0], dense.shape[1], dense.shape[2], dense.shape[3], texts.shape[0])
        let a = Ops.l2Normalize(try dense.reshaped([n * h * w, d])), t = Ops.l2Normalize(texts)
        let out = try Ops.linear(a, weight: t, bias: nil)  // a · tᵀ
        return try out.reshaped([n, h, w, k])
    }
}

/// torchvision's `roi_align(aligned=True)` on a channels-last map, each box's bins averaged into
/// one row: bilinear samples at `samplingRatio`² points per bin (0: ceil(box / bins) as torchvision).
public enum RoIAlign {
    public static func pooledMeans(_ map: Tensor, boxes: [(image: Int, box: Box)], scaleX: Double, scaleY: Double,
                                   bins: Int = 7, samplingRatio: Int = 2) throws -> Tensor {
        guard map.rank == 4 else { throw TensorError.shapeMismatch("RoIAlign: expected [N, h, w, C], got \(map.shape)") }
        guard bins >= 1, samplingRatio >= 0 else { throw TensorError.invalidArgument("RoIAlign: bins \(bins), sampling ratio \(samplingRatio)") }
        let (n, h, w, c) = (map.shape[0], map.shape[1], map.shape[2], map.shape[3])
        let out = Tensor(zeros: [boxes.count, c])
        for (r, item) in boxes.enumerated() {
            guard (0..<n).contains(item.image) else { throw TensorError.invalidArgument("RoIAlign: box \(r) names image \(item.image) of \(n)") }
            let b = item.box
            guard [b.x0, b.y0, b.x1, b.y1].allSatisfy(\.isFinite) else { throw TensorError.invalidArgument("RoIAlign: box \(r) is not finite") }
            let x0 = b.x0 * scaleX - 0.5, y0 = b.y0 * scaleY - 0.5
            let roiW = b.x1 * scaleX - 0.5 - x0, roiH = b.y1 * scaleY - 0.5 - y0
            let binW = roiW / Double(bins), binH = roiH / Double(bins)
            let gridW = samplingRatio > 0 ? samplingRatio : max(1, Int((roiW / Double(bins)).rounded(.up)))
            let gridH = samplingRatio > 0 ? samplingRatio : max(1, Int((roiH / Double(bins)).rounded(.up)))
            let weightEach = Float(1.0 / Double(gridW * gridH * bins * bins))
            let dst = out.storage.pointer + r * c
            map.withUnsafeBufferPointer { src in
                let base = src.baseAddress! + item.image * h * w * c
                func add(_ y: Int, _ x: Int, _ weight: Float) {
                    guard weight != 0 else { return }
                    let p = base + (y * w + x) * c
                    for k in 0..<c { dst[k] += weight * p[k] }
                }
                for ph in 0..<bins {
                    for iy in 0..<gridH {
                        let ys = y0 + Double(ph) * binH + (Double(iy) + 0.5) * binH / Double(gridH)
                        for pw in 0..<bins {
                            for ix in 0..<gridW {
                                let xs = x0 + Double(pw) * binW + (Double(ix) + 0.5) * binW / Double(gridW)
                                if ys < -1 || ys > Double(h) || xs < -1 || xs > Double(w) { continue }
                                let yy = max(ys, 0), xx = max(xs, 0)
                                let y: Double, x: Double
                                var yLow = Int(yy), xLow = Int(xx), yHigh: Int, xHigh: Int
                                if yLow >= h - 1 { yLow = h - 1; yHigh = h - 1; y = Double(yLow) } else { yHigh = yLow + 1; y = yy }
                                if xLow >= w - 1 { xLow = w - 1; xHigh = w - 1; x = Double(xLow) } else { xHigh = xLow + 1; x = xx }
                                let ly = y - Double(yLow), lx = x - Double(xLow), hy = 1 - ly, hx = 1 - lx
                                add(yLow, xLow, Float(hy * hx) * weightEach)
                                add(yLow, xHigh, Float(hy * lx) * weightEach)
                                add(yHigh, xLow, Float(ly * hx) * weightEach)
                                add(yHigh, xHigh, Float(ly * lx) * weightEach)
                            }
                        }
                    }
                }
            }
        }
        return out
    }
}
