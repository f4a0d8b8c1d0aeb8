import CLIPEngine
import Foundation

/// Why a dataset could not be read. Every case names the file (or folder) and, where it applies,
/// the record or line.
public enum DatasetError: Error, CustomStringConvertible, Equatable {
    /// Nothing usable at `path`; `expected` describes the layout that was looked for.
    case missing(path: String, expected: String)
    /// A record ends before its declared size.
    case truncated(file: String, record: Int, message: String)
    case labelOutOfRange(file: String, record: Int, label: Int, classes: Int)
    /// The file is readable but does not have the expected structure.
    case malformed(file: String, message: String)
    /// A CSV problem at a 1-based line (and column name, when it is about one).
    case csv(file: String, line: Int, column: String?, message: String)

    public var description: String {
        switch self {
        case let .missing(path, expected): return "\(path): dataset not found; expected \(expected)"
        case let .truncated(file, record, message): return "\(file): record \(record) is truncated: \(message)"
        case let .labelOutOfRange(file, record, label, classes):
            return "\(file): record \(record) has label \(label), outside 0..<\(classes)"
        case let .malformed(file, message): return "\(file): \(message)"
        case let .csv(file, line, column, message):
            return "\(file):\(line): " + (column.map { "column '\($0)': " } ?? "") + message
        }
    }
}

/// Images with integer labels in `0..<classNames.count`, readable by index.
public protocol LabeledImageDataset {
    var count: Int { get }
    /// Display names used to build prompts, one per label.
    var classNames: [String] { get set }
    func label(at index: Int) -> Int
    /// The RGB image (before resizing). Thread-safe.
    func image(at index: Int) throws -> RGBImage
}

extension LabeledImageDataset {
    /// Replaces the display names (e.g. from `--classnames FILE`); the count must match. Names
    /// go to labels by position (torchvision's rule: line i names label i, the i-th sorted
    /// sub-folder), except when they are exactly the dataset's own names in another order: then
    /// each name stays with the label it already names (matching by position would score every
    /// class against another's prompts).
    @discardableResult
    public mutating func overrideClassNames(_ names: [String], source: String) throws -> ClassNameMatching {
        guard names.count == classNames.count else {
            throw DatasetError.malformed(file: source, message: "has \(names.count) class names, the dataset has \(classNames.count) classes")
        }
        if names == classNames { return .sameOrder }
        if Set(names).count == names.count, Set(names) == Set(classNames) { return .byName }
        classNames = names
        return .byPosition
    }
}

/// Non-empty lines of a UTF-8 text file, trimmed (class names, templates). A file that cannot be
/// read throws `InputFileError` (naming it and the reason).
public func readLines(_ url: URL) throws -> [String] {
    let data = try InputFile.read(url.path, maximumBytes: 256 << 20)
    guard let text = String(data: data, encoding: .utf8) else {
        throw DatasetError.malformed(file: url.path, message: "not UTF-8 text")
    }
    return text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
}

func isDirectory(_ url: URL) -> Bool {
    var dir: ObjCBool = false
    return FileManager.default.fileExists(atPath: url.path, isDirectory: &dir) && dir.boolValue
}

func isFile(_ url: URL) -> Bool {
    var dir: ObjCBool = false
    return FileManager.default.fileExists(atPath: url.path, isDirectory: &dir) && !dir.boolValue
}

/// How `overrideClassNames` paired a class-name list with the labels.
public enum ClassNameMatching: String, Sendable {
    /// The list is the dataset's own names in the same order.
    case sameOrder = "same_order"
    /// The list is the dataset's own names in another order: each name kept its label.
    case byName = "by_name"
    /// Line i names label i (the i-th sorted sub-folder), as torchvision does.
    case byPosition = "by_position"
}
