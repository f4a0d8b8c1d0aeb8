import CLIPEngine
import Foundation

/// open_clip's training transform (`image_transform(S, is_train=True)` without timm's extras):
/// torchvision `RandomResizedCrop(S, scale, ratio, BICUBIC)` on the image as opened (in Pillow's
/// mode), `convert("RGB")`, then `ToTensor` and `Normalize` as in `Preprocessor`. The crop is drawn
/// as torchvision's `get_params` draws it (ten tries of a uniform area fraction in `scale` and a
/// log-uniform aspect in `ratio`, rounding half to even as Python does, then the central fallback);
/// the pixels are cropped and resized by Pillow's bicubic exactly as `F.resized_crop` does on a PIL
/// image. The random numbers come from a `SeededGenerator` the caller seeds (per sample and epoch,
/// so that a resumed run draws the same crops), not from torch's generator: the crops follow the
/// same distribution, not the same sequence.
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

    /// A random crop resized to imageSize × imageSize (8-bit RGB, as Pillow leaves it).
    public func cropAndResize<Input: PreprocessorInput>(_ input: Input, using rng: inout SeededGenerator) -> RGBImage {
        let image = input.decodedImage
        let p = cropParameters(width: image.width, height: image.height, using: &rng)
        return resizedCrop(image, top: p.top, left: p.left, height: p.height, width: p.width)
    }

    /// torchvision's `F.resized_crop(img, top, left, height, width, [S, S], BICUBIC)` on a PIL image
    /// as opened, then open_clip's `convert("RGB")`: `img.crop(...)` and Pillow's bicubic resize in
    /// the image's own mode (a palette with nearest neighbour, RGBA premultiplied: `Resampler`, as
    /// the eval transform does), converted to RGB after. The rectangle must lie inside the image.
    public func resizedCrop<Input: PreprocessorInput>(_ input: Input, top: Int, left: Int, height: Int, width: Int) -> RGBImage {
        let image = input.decodedImage
        precondition(top >= 0 && left >= 0 && height > 0 && width > 0 && top + height <= image.height && left + width <= image.width,
                     "crop (\(top), \(left), \(height), \(width)) outside a \(image.width)×\(image.height) image")
        let bpp = image.mode.bytesPerPixel, rowBytes = width * bpp
        var samples = [UInt8](repeating: 0, count: height * rowBytes)
        image.samples.withUnsafeBufferPointer { src in
            samples.withUnsafeMutableBufferPointer { dst in
                for y in 0..<height {
                    let from = ((top + y) * image.width + left) * bpp
                    (dst.baseAddress! + y * rowBytes).update(from: src.baseAddress! + from, count: rowBytes)
                }
            }
        }
        var crop = DecodedImage(width: width, height: height, mode: image.mode, samples: samples)
        crop.palette = image.palette
        return Resampler.resize(crop, outWidth: imageSize, outHeight: imageSize, window: (0, 0, imageSize, imageSize), filter: .bicubic).rgb()
    }

    /// [3, S, S] float32, normalised, channels first, written at `out`.
    public func write<Input: PreprocessorInput>(_ image: Input, into out: UnsafeMutablePointer<Float>, using rng: inout SeededGenerator) {
        preprocessor.writeNormalized(cropAndResize(image, using: &rng), into: out)
    }
}

extension Float {
    /// torch's `uniform_(low, high)` in float32: low + (high − low)·u, u uniform in [0, 1).
    static func uniform(_ low: Float, _ high: Float, using rng: inout SeededGenerator) -> Float {
        low + (high - low) * Float(rng.next() >> 40) * 0x1p-24
    }
}
