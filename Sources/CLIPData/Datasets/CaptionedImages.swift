import CLIPEngine
import Foundation

/// Image–caption pairs read by index: what a contrastive trainer consumes.
public protocol CaptionedImageSource: Sendable {
    var count: Int { get }
    func caption(at index: Int) -> String
    /// The image (before any transform) in the mode Pillow opens it in, as open_clip_train's
    /// `CsvDataset` passes `Image.open(path)` to the transform. Thread-safe.
    func image(at index: Int) throws -> DecodedImage
    /// Where sample `index` comes from, for warnings: "FILE (CSV line N)".
    func describe(_ index: Int) -> String
}

extension CSVPairs: CaptionedImageSource {
    public func caption(at index: Int) -> String { captions[index] }
    public func image(at index: Int) throws -> DecodedImage { try ImageDecoder.decodeImage(contentsOf: images[index]) }
    public func describe(_ index: Int) -> String { "\(images[index].path) (\(file.path) line \(lines[index]))" }
}

extension SyntheticShapes: CaptionedImageSource {
    public func caption(at index: Int) -> String { sample(index).caption }
    public func image(at index: Int) throws -> DecodedImage { DecodedImage(sample(index).image) }
    public func describe(_ index: Int) -> String { "synthetic sample \(index) (seed \(seed))" }
}
