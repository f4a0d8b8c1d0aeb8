import CLIPEngine
import Dispatch
import Foundation

/// open_clip's eval transform for a square `image_size` S (`open_clip.image_transform(S,
/// is_train=False)` with resize_mode "shortest" and bicubic interpolation):
///
/// 1. torchvision `Resize(S, BICUBIC)` on a PIL image: the short side becomes S, the long side
///    `int(S * long / short)` (truncated), resampled by Pillow's antialiased bicubic; an image
///    already of that size is left alone;
/// 2. `CenterCrop(S)`: top = `round((h - S) / 2)`, left likewise, with Python's round-half-even;
/// 3. `ToTensor` (x / 255 in float32) and `Normalize(mean, std)` ((x - mean) / std in float32),
///    channels first.
///
/// Input is the RGB image (`Image.open(p).convert("RGB")`); see docs/images.md for how that differs
/// from feeding open_clip a palette or RGBA image directly.
public struct Preprocessor: Sendable {
    /// Float32 values of OpenAI's constants, as `torch.tensor(mean)` rounds the Python floats.
    public static let openAIMean: (Float, Float, Float) = (Float(0.48145466 as Double), Float(0.4578275 as Double),
                                                          Float(0.40821073 as Double))
    public static let openAIStd: (Float, Float, Float) = (Float(0.26862954 as Double), Float(0.26130258 as Double),
                                                         Float(0.27577711 as Double))

    public let imageSize: Int
    public let mean: (Float, Float, Float)
    public let std: (Float, Float, Float)
    /// normalised value of each byte, per channel: 3 x 256.
    private let table: [Float]

    public init(imageSize: Int, mean: (Float, Float, Float) = openAIMean, std: (Float, Float, Float) = openAIStd) {
        precondition(imageSize > 0, "imageSize must be positive, got \(imageSize)")
        self.imageSize = imageSize
        self.mean = mean
        self.std = std
        var table = [Float](repeating: 0, count: 3 * 256)
        let m = [mean.0, mean.1, mean.2], s = [std.0, std.1, std.2]
        for c in 0..<3 {
            for v in 0..<256 {
                // Same float32 operations as torchvision: (v / 255 - mean) / std.
                let x = Float(v) / Float(255)
                table[c * 256 + v] = (x - m[c]) / s[c]
            }
        }
        self.table = table
    }

    /// Size after torchvision's Resize(imageSize): the short side is imageSize, the long side
    /// int(imageSize * long / short) computed in double precision as Python does.
    public func resizedSize(width: Int, height: Int) -> (width: Int, height: Int) {
        let short = min(width, height), long = max(width, height)
        let newLong = Int(Double(imageSize * long) / Double(short))
        return width <= height ? (imageSize, newLong) : (newLong, imageSize)
    }

    /// The 8-bit pixels after Resize + CenterCrop: imageSize x imageSize.
    public func resizeAndCrop(_ image: RGBImage) -> RGBImage {
        let (w, h) = resizedSize(width: image.width, height: image.height)
        // Resizing makes the short side exactly imageSize, so the crop never needs padding.
        let top = Int((Double(h - imageSize) / 2.0).rounded(.toNearestOrEven))
        let left = Int((Double(w - imageSize) / 2.0).rounded(.toNearestOrEven))
        let window = (x: left, y: top, width: imageSize, height: imageSize)
        return BicubicResampler.resize(image, outWidth: w, outHeight: h, window: window)
    }

    /// [3, S, S] float32, normalised, channels first.
    public func callAsFunction(_ image: RGBImage) -> Tensor {
        let t = Tensor(uninitializedShape: [3, imageSize, imageSize])
        writeNormalized(resizeAndCrop(image), into: t.storage.pointer)
        return t
    }

    /// [3, S, S] float32, normalised, channels first, of the whole image stretched to S × S (no crop,
    /// the aspect ratio not kept): detection maps a box back by scaling x by width/S and y by height/S.
    public func stretched(_ image: RGBImage) -> Tensor {
        let t = Tensor(uninitializedShape: [3, imageSize, imageSize])
        let window = (x: 0, y: 0, width: imageSize, height: imageSize)
        writeNormalized(BicubicResampler.resize(image, outWidth: imageSize, outHeight: imageSize, window: window), into: t.storage.pointer)
        return t
    }

    /// Writes the normalised channels-first planes of an imageSize x imageSize image.
    func writeNormalized(_ crop: RGBImage, into out: UnsafeMutablePointer<Float>) {
        let plane = imageSize * imageSize
        crop.pixels.withUnsafeBufferPointer { px in
            table.withUnsafeBufferPointer { lut in
                for c in 0..<3 {
                    let o = out + c * plane
                    let l = lut.baseAddress! + c * 256
                    for i in 0..<plane { o[i] = l[Int(px[3 * i + c])] }
                }
            }
        }
    }

    /// [count, 3, S, S] from the images `load(i)` returns for i in 0..<count, loaded and resized on
    /// `Parallel.budget` threads; an error stops the batch (the lowest failing index's is thrown).
    public func batch(count: Int, _ load: (Int) throws -> RGBImage) throws -> Tensor {
        let t = try Tensor(checkedShape: [count, 3, imageSize, imageSize])
        final class Errors: @unchecked Sendable { var byIndex: [Error?]; init(_ n: Int) { byIndex = Array(repeating: nil, count: n) } }
        let errors = Errors(count)
        let out = t.storage.pointer, sampleCount = 3 * imageSize * imageSize
        let workers = min(Parallel.budget, max(count, 1))
        withoutActuallyEscaping(load) { load in
            Parallel.run(workers) { worker in
                for i in stride(from: worker, to: count, by: workers) {
                    do { self.writeNormalized(self.resizeAndCrop(try load(i)), into: out + i * sampleCount) } catch { errors.byIndex[i] = error }
                }
            }
        }
        if let first = errors.byIndex.first(where: { $0 != nil }) { throw first! }
        return t
    }

    /// Decodes and preprocesses files into one [N, 3, S, S] tensor, N = the files that succeeded
    /// (in input order, listed in `succeeded`). Files that fail are reported in `failures` and
    /// left out; `tensor` is nil when none succeeded. Files are processed on `Parallel.budget` threads.
    public func batch(_ urls: [URL]) -> (tensor: Tensor?, failures: [(url: URL, error: Error)], succeeded: [URL]) {
        final class Slots: @unchecked Sendable {
            var results: [Result<RGBImage, Error>?]
            init(_ n: Int) { results = Array(repeating: nil, count: n) }
        }
        let slots = Slots(urls.count)
        let workers = min(Parallel.budget, max(urls.count, 1))
        // Each worker takes every `workers`-th file; each slot is written by one worker only.
        Parallel.run(workers) { worker in
            for i in stride(from: worker, to: urls.count, by: workers) {
                let r = Result { try self.resizeAndCrop(ImageDecoder.decode(contentsOf: urls[i])) }
                slots.results[i] = r
            }
        }
        var failures: [(url: URL, error: Error)] = []
        var crops: [RGBImage] = []
        var succeeded: [URL] = []
        for (url, result) in zip(urls, slots.results) {
            switch result! {
            case .success(let crop): crops.append(crop); succeeded.append(url)
            case .failure(let error): failures.append((url, error))
            }
        }
        guard !crops.isEmpty else { return (nil, failures, succeeded) }
        let t = Tensor(uninitializedShape: [crops.count, 3, imageSize, imageSize])
        let sampleCount = 3 * imageSize * imageSize
        for (n, crop) in crops.enumerated() { writeNormalized(crop, into: t.storage.pointer + n * sampleCount) }
        return (t, failures, succeeded)
    }
}
