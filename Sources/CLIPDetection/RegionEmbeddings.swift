import CLIPData
import CLIPEngine
import CLIPModels
import Foundation

/// How the detector computes a proposal's CLIP embedding, the embedding its region score compares
/// with the label texts.
public enum RegionEmbedding: String, Codable, Sendable, CaseIterable {
    /// F-VLM: RoI-align the box on the frozen last stage map, pool, then CLIP's head (one backbone
    /// pass for every box; the map is the detector input's unless `regionInputSize` is set).
    case roiAlign
    /// ViLD's image embeddings: cut the box out of the image, stretch it to CLIP's input size and
    /// encode it (one CLIP image per box, the best `encodedRegions` boxes batched in one pass).
    case crop
    /// The default. The whole image at CLIP's input size with every pixel outside the box painted
    /// mid-grey, then encoded: the object keeps its size and place in the frame, as in CLIP's
    /// training images, and its neighbours are hidden (one CLIP image per box, as `crop`).
    case mask
}

/// Region embeddings that re-encode image pixels (`crop`, `mask`), for boxes in the image's pixels.
public enum RegionEncoder {
    /// The grey outside a `mask` box (the middle of 0...255; CLIP's mean colour is about 124, 116, 104).
    public static let maskFill: UInt8 = 128

    /// The box's pixel rectangle: rounded outwards, clipped to the image, at least 1 × 1.
    static func pixelRect(_ box: Box, width: Int, height: Int) -> (x0: Int, y0: Int, x1: Int, y1: Int) {
        let x0 = min(max(0, Int(box.x0.rounded(.down))), width - 1), y0 = min(max(0, Int(box.y0.rounded(.down))), height - 1)
        let x1 = max(x0 + 1, min(width, Int(box.x1.rounded(.up)))), y1 = max(y0 + 1, min(height, Int(box.y1.rounded(.up))))
        return (x0, y0, x1, y1)
    }

    /// The pixels inside `box`, as an image of the box's size.
    public static func cropped(_ image: RGBImage, box: Box) -> RGBImage {
        let r = pixelRect(box, width: image.width, height: image.height)
        let (w, h) = (r.x1 - r.x0, r.y1 - r.y0)
        var pixels = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h {
            let src = ((r.y0 + y) * image.width + r.x0) * 3
            pixels.replaceSubrange((y * w * 3)..<((y + 1) * w * 3), with: image.pixels[src..<(src + w * 3)])
        }
        return RGBImage(width: w, height: h, pixels: pixels)
    }

    /// The image with every pixel outside `box` set to `fill`.
    public static func masked(_ image: RGBImage, box: Box, fill: UInt8 = maskFill) -> RGBImage {
        let r = pixelRect(box, width: image.width, height: image.height)
        var out = RGBImage(width: image.width, height: image.height, pixels: [UInt8](repeating: fill, count: image.pixels.count))
        let rowBytes = (r.x1 - r.x0) * 3
        for y in r.y0..<r.y1 {
            let start = (y * image.width + r.x0) * 3
            out.pixels.replaceSubrange(start..<(start + rowBytes), with: image.pixels[start..<(start + rowBytes)])
        }
        return out
    }

    /// CLIP embeddings [M, embed_dim] (not normalised) of the boxes (in `image`'s pixels), each box's
    /// crop or masked image stretched to `side` × `side` and encoded, up to `chunk` images per pass
    /// (one pass when M ≤ chunk); the images of a pass are prepared on `Parallel.budget` threads
    /// into one input buffer.
    public static func embeddings(model: CLIPModel, image: RGBImage, boxes: [Box], mode: RegionEmbedding,
                                  side: Int, chunk: Int = 32) throws -> Tensor {
        guard mode != .roiAlign else { throw DetectionError.invalidArgument("RegionEncoder encodes crops or masked images, not RoI-aligned maps") }
        guard !boxes.isEmpty else { throw DetectionError.invalidArgument("RegionEncoder: no boxes to encode") }
        guard chunk >= 1 else { throw DetectionError.invalidArgument("RegionEncoder: chunk \(chunk) must be at least 1") }
        let preprocessor = Preprocessor(imageSize: side)
        let sample = 3 * side * side, dim = model.config.embedDim
        let out = Tensor(uninitializedShape: [boxes.count, dim])
        var input = Tensor(uninitializedShape: [min(chunk, boxes.count), 3, side, side])
        var start = 0
        while start < boxes.count {
            let count = min(chunk, boxes.count - start)
            if count != input.shape[0] { input = Tensor(uninitializedShape: [count, 3, side, side]) }
            let pixels = input.storage.pointer
            Parallel.run(count, threads: Parallel.budget) { i in
                let box = boxes[start + i]
                let t = preprocessor.stretched(mode == .crop ? cropped(image, box: box) : masked(image, box: box))
                (pixels + i * sample).update(from: t.storage.pointer, count: sample)
            }
            let rows = try model.encodeImagePerThread(input)
            (out.storage.pointer + start * dim).update(from: rows.storage.pointer, count: count * dim)
            start += count
        }
        return out
    }
}
