import CLIPEngine
import Dispatch
import Foundation

/// How open_clip's eval transform fits an image into S x S (`preprocess_cfg.resize_mode`).
public enum ResizeMode: String, Sendable, CaseIterable {
    /// `Resize(S)` + `CenterCrop(S)`: the short side becomes S, the long side is cropped.
    case shortest
    /// `ResizeKeepRatio(S, longest=1)` + `CenterCropOrPad(S, fill)`: the long side becomes S, the
    /// short side is padded with `fill_color`.
    case longest
    /// `Resize((S, S))`: both sides become S, the aspect ratio is not kept.
    case squash
}

/// open_clip's eval transform for a square `image_size` S (`open_clip.image_transform(S,
/// is_train=False, ...)`, i.e. `image_transform_v2(preprocess_cfg)`), for resize_mode "shortest":
///
/// 1. torchvision `Resize(S, interpolation)` on the PIL image as opened: the short side becomes S,
///    the long side `int(S * long / short)` (truncated), resampled by Pillow's `Image.resize` in
///    the image's own mode (`Resampler.resize`); an image already of that size is left alone;
/// 2. `CenterCrop(S)`: top = `round((h - S) / 2)`, left likewise, with Python's round-half-even;
/// 3. `convert("RGB")` (after resizing: a palette image is resized with nearest neighbour, RGBA
///    with premultiplied alpha, CMYK in CMYK, as Pillow does);
/// 4. `ToTensor` (x / 255 in float32) and `Normalize(mean, std)` ((x - mean) / std in float32),
///    channels first.
///
/// "longest" and "squash" change steps 1 and 2 (see `ResizeMode`). Given an `RGBImage`
/// (`Image.open(p).convert("RGB")`) steps 1-3 are those of an RGB image.
public struct Preprocessor: Sendable {
    /// Float32 values of OpenAI's constants, as `torch.tensor(mean)` rounds the Python floats.
    public static let openAIMean: (Float, Float, Float) = (Float(0.48145466 as Double), Float(0.4578275 as Double),
                                                          Float(0.40821073 as Double))
    public static let openAIStd: (Float, Float, Float) = (Float(0.26862954 as Double), Float(0.26130258 as Double),
                                                         Float(0.27577711 as Double))

    public let imageSize: Int
    public let mean: (Float, Float, Float)
    public let std: (Float, Float, Float)
    public let interpolation: Interpolation
    public let resizeMode: ResizeMode
    /// The padding colour of resize mode "longest" (torchvision's `fill`, every band).
    public let fillColor: Int
    /// normalised value of each byte, per channel: 3 x 256.
    private let table: [Float]

    public init(imageSize: Int, mean: (Float, Float, Float) = openAIMean, std: (Float, Float, Float) = openAIStd,
                interpolation: Interpolation = .bicubic, resizeMode: ResizeMode = .shortest, fillColor: Int = 0) {
        precondition(imageSize > 0, "imageSize must be positive, got \(imageSize)")
        self.imageSize = imageSize
        self.mean = mean
        self.std = std
        self.interpolation = interpolation
        self.resizeMode = resizeMode
        self.fillColor = fillColor
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

    /// Size after the resize step. "shortest" (torchvision's Resize(S)): the short side is S, the
    /// long side int(S * long / short) in double precision as Python computes it. "longest"
    /// (ResizeKeepRatio): each side round(side / ratio), ratio = max(h / S, w / S), half to even;
    /// at least 1 (Python fails on a side that rounds to 0). "squash": S x S.
    public func resizedSize(width: Int, height: Int) -> (width: Int, height: Int) {
        let s = imageSize
        switch resizeMode {
        case .shortest:
            let short = min(width, height), long = max(width, height)
            let newLong = Int(Double(s * long) / Double(short))
            return width <= height ? (s, newLong) : (newLong, s)
        case .longest:
            let ratio = max(Double(height) / Double(s), Double(width) / Double(s))
            func side(_ x: Int) -> Int { max(1, Int((Double(x) / ratio).rounded(.toNearestOrEven))) }
            return (side(width), side(height))
        case .squash:
            return (s, s)
        }
    }

    /// The 8-bit RGB pixels after the resize, crop (or pad) and `convert("RGB")`: imageSize x imageSize.
    public func resizeAndCrop<Input: PreprocessorInput>(_ input: Input) -> RGBImage {
        let image = input.decodedImage
        let s = imageSize
        let (w, h) = resizedSize(width: image.width, height: image.height)
        // CenterCropOrPad: the resized image sits at (padLeft, padTop) of a canvas at least S a
        // side; the crop of that canvas starts at round((canvas - S) / 2), half to even.
        let padLeft = w < s ? (s - w) / 2 : 0, padTop = h < s ? (s - h) / 2 : 0
        let cropLeft = Int((Double(max(w, s) - s) / 2.0).rounded(.toNearestOrEven))
        let cropTop = Int((Double(max(h, s) - s) / 2.0).rounded(.toNearestOrEven))
        // The part of the resized image inside the crop, in canvas coordinates.
        let x0 = max(cropLeft, padLeft), x1 = min(cropLeft + s, padLeft + w)
        let y0 = max(cropTop, padTop), y1 = min(cropTop + s, padTop + h)
        let window = (x: x0 - padLeft, y: y0 - padTop, width: x1 - x0, height: y1 - y0)
        if window.width == s && window.height == s {
            return Resampler.resize(image, outWidth: w, outHeight: h, window: window, filter: interpolation).rgb()
        }
        // Padding: a canvas of the fill colour in the image's mode, the visible part pasted in.
        let bpp = image.mode.bytesPerPixel
        var canvas = DecodedImage(width: s, height: s, mode: image.mode,
                                  samples: Array([[UInt8]](repeating: image.fillPixel(fillColor), count: s * s).joined()))
        if window.width > 0 && window.height > 0 {
            let part = Resampler.resize(image, outWidth: w, outHeight: h, window: window, filter: interpolation)
            for y in 0..<window.height {
                let dst = ((y0 - cropTop + y) * s + (x0 - cropLeft)) * bpp
                canvas.samples.replaceSubrange(dst..<(dst + window.width * bpp),
                                               with: part.samples[(y * window.width * bpp)..<((y + 1) * window.width * bpp)])
            }
        }
        return canvas.rgb()
    }

    /// [3, S, S] float32, normalised, channels first.
    public func callAsFunction<Input: PreprocessorInput>(_ image: Input) -> Tensor {
        let t = Tensor(uninitializedShape: [3, imageSize, imageSize])
        writeNormalized(resizeAndCrop(image), into: t.storage.pointer)
        return t
    }

    /// [3, S, S] float32, normalised, channels first, of the whole image stretched to S × S (no crop,
    /// the aspect ratio not kept): detection maps a box back by scaling x by width/S and y by height/S.
    public func stretched(_ image: RGBImage) -> Tensor {
        let t = Tensor(uninitializedShape: [3, imageSize, imageSize])
        let window = (x: 0, y: 0, width: imageSize, height: imageSize)
        let resized = Resampler.resize(DecodedImage(image), outWidth: imageSize, outHeight: imageSize, window: window,
                                       filter: interpolation)
        writeNormalized(resized.rgb(), into: t.storage.pointer)
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
    public func batch<Input: PreprocessorInput>(count: Int, _ load: (Int) throws -> Input) throws -> Tensor {
        let t = try Tensor(checkedShape: [count, 3, imageSize, imageSize])
        let errors = BatchErrors(count)
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

    /// Decodes (in the mode Pillow opens them in, as open_clip's `preprocess(Image.open(p))` sees
    /// them) and preprocesses files into one [N, 3, S, S] tensor, N = the files that succeeded
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
                let r = Result { try self.resizeAndCrop(ImageDecoder.decodeImage(contentsOf: urls[i])) }
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

/// Each worker writes only its own indices.
private final class BatchErrors: @unchecked Sendable {
    var byIndex: [Error?]
    init(_ n: Int) { byIndex = Array(repeating: nil, count: n) }
}
