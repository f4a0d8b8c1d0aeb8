import CLIPEngine
import Foundation

/// CIFAR-10 / CIFAR-100 test sets (https://www.cs.toronto.edu/~kriz/cifar.html), from either
/// distribution:
///
/// - Python: `cifar-10-batches-py/{test_batch,batches.meta}`, `cifar-100-python/{test,meta}` —
///   pickled dicts (`data`: uint8 array (N, 3072), `labels` / `fine_labels`: lists), read by
///   `Pickle` (nothing is executed);
/// - binary: `cifar-10-batches-bin/test_batch.bin` (records of 1 label byte + 3072 pixel bytes),
///   `cifar-100-binary/test.bin` (1 coarse + 1 fine label byte + 3072 pixel bytes; fine labels are used).
///
/// Pixels are 32×32, stored as three channel planes (R, G, B). `classNames` are the CLIP
/// display names (`CIFARClassNames`), not the files' own (`fileClassNames`, with underscores).
public struct CIFARDataset: LabeledImageDataset {
    public enum Variant: String, CaseIterable, Sendable {
        case cifar10, cifar100
        public var classCount: Int { self == .cifar10 ? 10 : 100 }
        var pythonFolder: String { self == .cifar10 ? "cifar-10-batches-py" : "cifar-100-python" }
        var binaryFolder: String { self == .cifar10 ? "cifar-10-batches-bin" : "cifar-100-binary" }
        var pythonFiles: (test: String, meta: String) { self == .cifar10 ? ("test_batch", "batches.meta") : ("test", "meta") }
        var binaryFiles: (test: String, names: String) {
            self == .cifar10 ? ("test_batch.bin", "batches.meta.txt") : ("test.bin", "fine_label_names.txt")
        }
        public var builtinClassNames: [String] { self == .cifar10 ? CIFARClassNames.cifar10 : CIFARClassNames.cifar100 }
    }

    public static let side = 32
    public static let recordPixels = 3 * 32 * 32

    public let variant: Variant
    /// The file the images came from.
    public let file: URL
    /// count × 3072 bytes: per image, the R, G and B planes.
    public let pixels: [UInt8]
    public let labels: [Int]
    public var classNames: [String]
    /// The names in the distribution's meta file (e.g. "aquarium_fish"), when present.
    public let fileClassNames: [String]?

    public var count: Int { labels.count }
    public func label(at index: Int) -> Int { labels[index] }

    public func image(at index: Int) throws -> RGBImage {
        let plane = Self.side * Self.side
        let base = index * Self.recordPixels
        var rgb = [UInt8](repeating: 0, count: Self.recordPixels)
        pixels.withUnsafeBufferPointer { p in
            for i in 0..<plane {
                rgb[3 * i] = p[base + i]
                rgb[3 * i + 1] = p[base + plane + i]
                rgb[3 * i + 2] = p[base + 2 * plane + i]
            }
        }
        return RGBImage(width: Self.side, height: Self.side, pixels: rgb)
    }

    /// Finds the test set under `path`: the distribution folder itself, or a folder holding it
    /// (Python distribution preferred when both are there).
    public static func load(_ variant: Variant, at path: URL) throws -> CIFARDataset {
        let (test, meta) = variant.pythonFiles
        let (bin, names) = variant.binaryFiles
        for dir in [path.appendingPathComponent(variant.pythonFolder), path] where isFile(dir.appendingPathComponent(test)) {
            return try loadPython(variant, test: dir.appendingPathComponent(test), meta: dir.appendingPathComponent(meta))
        }
        for dir in [path.appendingPathComponent(variant.binaryFolder), path] where isFile(dir.appendingPathComponent(bin)) {
            return try loadBinary(variant, test: dir.appendingPathComponent(bin), names: dir.appendingPathComponent(names))
        }
        let p = path.path
        throw DatasetError.missing(path: p, expected: "the \(variant == .cifar10 ? "CIFAR-10" : "CIFAR-100") test set as "
            + "\(p)/\(variant.pythonFolder)/{\(test),\(meta)} (Python distribution) or "
            + "\(p)/\(variant.binaryFolder)/\(bin) (binary distribution), unpacked from "
            + "https://www.cs.toronto.edu/~kriz/cifar.html (no download is attempted)")
    }

    /// The Python distribution: `test` (dict with `data`, `labels`/`fine_labels`) and optional `meta`.
    public static func loadPython(_ variant: Variant, test: URL, meta: URL?) throws -> CIFARDataset {
        let file = test.path
        guard case .dict(let batch) = try Pickle.load(test) else {
            throw DatasetError.malformed(file: file, message: "the pickle does not hold a dict")
        }
        let labelKey = variant == .cifar10 ? "labels" : "fine_labels"
        guard let dataValue = batch["data"] else {
            throw DatasetError.malformed(file: file, message: "no 'data' entry (keys: \(batch.keys.joined(separator: ", ")))")
        }
        guard case .list(let labelList)? = batch[labelKey] else {
            throw DatasetError.malformed(file: file, message: "no '\(labelKey)' list (keys: \(batch.keys.joined(separator: ", ")))")
        }
        let array = try PickledArray(dataValue, file: file, what: "'data'")
        guard array.dtype == "u1" || array.dtype == "|u1" else {
            throw DatasetError.malformed(file: file, message: "'data' has dtype \(array.dtype), expected uint8")
        }
        if array.shape.first == 0 { throw DatasetError.malformed(file: file, message: "'data' holds 0 images") }
        guard array.shape.count == 2, array.shape[1] == recordPixels else {
            throw DatasetError.malformed(file: file, message: "'data' has shape \(array.shape), expected (N, \(recordPixels))")
        }
        let n = array.shape[0]
        guard n <= array.data.count / recordPixels, array.data.count == n * recordPixels else {
            throw DatasetError.truncated(file: file, record: array.data.count / recordPixels,
                                         message: "'data' holds \(array.data.count) bytes, its shape needs \(n) × \(recordPixels)")
        }
        guard labelList.items.count == n else {
            throw DatasetError.malformed(file: file, message: "\(labelList.items.count) labels for \(n) images")
        }
        var labels: [Int] = []
        labels.reserveCapacity(n)
        for (i, v) in labelList.items.enumerated() {
            guard case .int(let l) = v else { throw DatasetError.malformed(file: file, message: "label \(i) is a \(v.kind)") }
            guard (0..<variant.classCount).contains(l) else {
                throw DatasetError.labelOutOfRange(file: file, record: i, label: l, classes: variant.classCount)
            }
            labels.append(l)
        }
        var fileNames: [String]?
        if let meta, isFile(meta) {
            guard case .dict(let m) = try Pickle.load(meta) else {
                throw DatasetError.malformed(file: meta.path, message: "the pickle does not hold a dict")
            }
            let key = variant == .cifar10 ? "label_names" : "fine_label_names"
            guard case .list(let names)? = m[key] else {
                throw DatasetError.malformed(file: meta.path, message: "no '\(key)' list")
            }
            fileNames = try names.items.map {
                guard let s = $0.text else { throw DatasetError.malformed(file: meta.path, message: "a class name is a \($0.kind)") }
                return s
            }
            try checkNameCount(fileNames!, variant, meta.path)
        }
        return CIFARDataset(variant: variant, file: test, pixels: array.data, labels: labels,
                            classNames: variant.builtinClassNames, fileClassNames: fileNames)
    }

    /// The binary distribution: fixed-size records; an optional label-names text file.
    public static func loadBinary(_ variant: Variant, test: URL, names: URL?) throws -> CIFARDataset {
        let file = test.path
        let data: Data
        do { data = try InputFile.read(file) } catch let e as InputFileError {
            throw DatasetError.missing(path: file, expected: "a readable CIFAR binary file (\(e.reason))")
        }
        let labelBytes = variant == .cifar10 ? 1 : 2
        let recordSize = labelBytes + recordPixels
        guard !data.isEmpty else { throw DatasetError.malformed(file: file, message: "empty file") }
        let n = data.count / recordSize
        if data.count % recordSize != 0 {
            throw DatasetError.truncated(file: file, record: n, message: "\(data.count % recordSize) bytes of a "
                + "\(recordSize)-byte record (\(labelBytes) label byte\(labelBytes > 1 ? "s" : "") + \(recordPixels) pixels)")
        }
        var pixels = [UInt8](repeating: 0, count: n * recordPixels)
        var labels = [Int](repeating: 0, count: n)
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let b = raw.bindMemory(to: UInt8.self)
            try pixels.withUnsafeMutableBufferPointer { out in
                for r in 0..<n {
                    let rec = r * recordSize
                    if variant == .cifar100 {
                        let coarse = Int(b[rec])
                        guard coarse < 20 else { throw DatasetError.labelOutOfRange(file: file, record: r, label: coarse, classes: 20) }
                    }
                    let label = Int(b[rec + labelBytes - 1])
                    guard label < variant.classCount else {
                        throw DatasetError.labelOutOfRange(file: file, record: r, label: label, classes: variant.classCount)
                    }
                    labels[r] = label
                    for i in 0..<recordPixels { out[r * recordPixels + i] = b[rec + labelBytes + i] }
                }
            }
        }
        var fileNames: [String]?
        if let names, isFile(names) {
            fileNames = try readLines(names)
            try checkNameCount(fileNames!, variant, names.path)
        }
        return CIFARDataset(variant: variant, file: test, pixels: pixels, labels: labels,
                            classNames: variant.builtinClassNames, fileClassNames: fileNames)
    }

    private static func checkNameCount(_ names: [String], _ variant: Variant, _ file: String) throws {
        guard names.count == variant.classCount else {
            throw DatasetError.malformed(file: file, message: "\(names.count) class names, expected \(variant.classCount)")
        }
    }
}
