import CLIPEngine
import Foundation

/// open_clip's training transform (`image_transform(S, is_train=True)` without timm's extras):
/// torchvision `RandomResizedCrop(S, scale, ratio, BICUBIC)` on the RGB image, then `ToTensor` and
/// `Normalize` as in `Preprocessor`. The crop is drawn as torchvision's `get_params` draws it (ten
/// tries of a uniform area fraction in `scale` and a log-uniform aspect in `ratio`, rounding half
/// to even as Python does, then the central fallback); the pixels are cropped and resized by
/// Pillow's bicubic exactly as `F.resized_crop` does on a PIL image. The random numbers come from
/// a `SeededGenerator` the caller seeds (per sample and epoch, so that a resumed run draws the
/// same crops), not from torch's generator: the crops follow the same distribution, not the same
/// sequence.
public struct TrainTransform: Sendable {
    public let imageSize: Int
    /// Fraction of the image area, (0.9, 1.0) in open_clip (`--aug-cfg scale=…`).
    public let scale: (Double, Double)
    /// Aspect ratio range w/h, (3/4, 4/3) (`--aug-cfg ratio=…`).
    public let ratio: (Double, Double)
    public let preprocessor: Preprocessor

    public init(imageSize: Int, scale: (Double, Double) = (0.9, 1.0), ratio: (Double, Double) = (3.0 / 4.0, 4.0 / 3.0),
                mean: (Float, Float, Float) = Preprocessor.openAIMean, std: (Float, Float, Float) = Preprocessor.openAIStd) throws {
        guard imageSize > 0 else { throw TensorError.invalidArgument("image size must be positive, got \(imageSize)") }
        guard scale.0 > 0, scale.0 <= scale.1, scale.1 <= 1 else {
            throw TensorError.invalidArgument("scale must satisfy 0 < min ≤ max ≤ 1, got (\(scale.0), \(scale.1))")
        }
        guard ratio.0 > 0, ratio.0 <= ratio.1, ratio.1.isFinite else {
            throw TensorError.invalidArgument("ratio must satisfy 0 < min ≤ max, got (\(ratio.0), \(ratio.1))")
        }
        self.imageSize = imageSize
        self.scale = scale
        self.ratio = ratio
        self.preprocessor = Preprocessor(imageSize: imageSize, mean: mean, std: std)
    }

    /// torchvision's `RandomResizedCrop.get_params`: (top, left, height, width) of the crop.
    public func cropParameters(width: Int, height: Int, using rng: inout SeededGenerator) -> (top: Int, left: Int, height: Int, width: Int) {
        let area = Double(height * width)
        // torch computes log(ratio) and the uniform draws in float32.
        let logLow = Float(Foundation.log(Float(ratio.0))), logHigh = Float(Foundation.log(Float(ratio.1)))
        for _ in 0..<10 {
            let fraction = Double(Float.uniform(Float(scale.0), Float(scale.1), using: &rng))
            let aspect = Double(Foundation.exp(Float.uniform(logLow, logHigh, using: &rng)))
            let w = Int((area * fraction * aspect).squareRoot().rounded(.toNearestOrEven))
            let h = Int((area * fraction / aspect).squareRoot().rounded(.toNearestOrEven))
            if w > 0, w <= width, h > 0, h <= height {
                let top = Int.random(in: 0...(height - h), using: &rng)
                let left = Int.random(in: 0...(width - w), using: &rng)
                return (top, left, h, w)
            }
        }
        let inRatio = Double(width) / Double(height)
        var w = width, h = height
        if inRatio < ratio.0 {
            h = Int((Double(w) / ratio.0).rounded(.toNearestOrEven))
        } else if inRatio > ratio.1 {
            w = Int((Double(h) * ratio.1).rounded(.toNearestOrEven))
        }
        return ((height - h) / 2, (width - w) / 2, h, w)
    }

    /// A random crop resized to imageSize × imageSize (8-bit, as Pillow leaves it).
    public func cropAndResize(_ image: RGBImage, using rng: inout SeededGenerator) -> RGBImage {
        let p = cropParameters(width: image.width, height: image.height, using: &rng)
        return resizedCrop(image, top: p.top, left: p.left, height: p.height, width: p.width)
    }

    /// torchvision's `F.resized_crop(img, top, left, height, width, [S, S], BICUBIC)` on a PIL image:
    /// `img.crop(...)`, then Pillow's bicubic resize. The rectangle must lie inside the image.
    public func resizedCrop(_ image: RGBImage, top: Int, left: Int, height: Int, width: Int) -> RGBImage {
        precondition(top >= 0 && left >= 0 && height > 0 && width > 0 && top + height <= image.height && left + width <= image.width,
                     "crop (\(top), \(left), \(height), \(width)) outside a \(image.width)×\(image.height) image")
        let p = (top: top, left: left, height: height, width: width)
        var pixels = [UInt8](repeating: 0, count: p.width * p.height * 3)
        image.pixels.withUnsafeBufferPointer { src in
            pixels.withUnsafeMutableBufferPointer { dst in
                for y in 0..<p.height {
                    let from = ((p.top + y) * image.width + p.left) * 3
                    (dst.baseAddress! + y * p.width * 3).update(from: src.baseAddress! + from, count: p.width * 3)
                }
            }
        }
        let crop = RGBImage(width: p.width, height: p.height, pixels: pixels)
        let resized = Resampler.resize(crop.pixels, width: crop.width, height: crop.height, channels: 3, outWidth: imageSize,
                                       outHeight: imageSize, window: (0, 0, imageSize, imageSize), filter: .bicubic)
        return RGBImage(width: imageSize, height: imageSize, pixels: resized)
    }

    /// [3, S, S] float32, normalised, channels first, written at `out`.
    public func write(_ image: RGBImage, into out: UnsafeMutablePointer<Float>, using rng: inout SeededGenerator) {
        preprocessor.writeNormalized(cropAndResize(image, using: &rng), into: out)
    }
}

extension Float {
    /// torch's `uniform_(low, high)` in float32: low + (high − low)·u, u uniform in [0, 1).
    static func uniform(_ low: Float, _ high: Float, using rng: inout SeededGenerator) -> Float {
        low + (high - low) * Float(rng.next() >> 40) * 0x1p-24
    }
}
