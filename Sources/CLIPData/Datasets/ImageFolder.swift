import Foundation

/// An ImageNet-style folder: one sub-folder per class, as torchvision's `ImageFolder` reads it —
/// classes are the sub-folder names sorted by code point (label = position), files are found by
/// walking each class folder (following links), in sorted order of folder path, then file name.
/// Only JPEG and PNG files (by extension, any case) are taken; other files are ignored.
public struct ImageFolderDataset: LabeledImageDataset {
    public static let extensions: Set<String> = ["jpg", "jpeg", "png"]

    public let root: URL
    public let files: [URL]
    public let labels: [Int]
    /// Sub-folder names, unless overridden.
    public var classNames: [String]

    public var count: Int { files.count }
    public func label(at index: Int) -> Int { labels[index] }
    public func image(at index: Int) throws -> RGBImage { try ImageDecoder.decode(contentsOf: files[index]) }

    public init(root: URL) throws {
        let fm = FileManager.default
        let layout = "one sub-folder per class holding its images (JPEG or PNG), e.g. \(root.path)/cat/1.jpg"
        guard isDirectory(root) else { throw DatasetError.missing(path: root.path, expected: layout) }
        let entries = (try? fm.contentsOfDirectory(atPath: root.path)) ?? []
        let classes = entries.filter { !$0.hasPrefix(".") && isDirectory(root.appendingPathComponent($0)) }.sorted(by: codePointLess)
        guard !classes.isEmpty else { throw DatasetError.missing(path: root.path, expected: layout + " (found no sub-folders)") }
        var files: [URL] = [], labels: [Int] = []
        for (label, name) in classes.enumerated() {
            let found = Self.walk(root.appendingPathComponent(name))
            files += found
            labels += Array(repeating: label, count: found.count)
        }
        guard !files.isEmpty else { throw DatasetError.missing(path: root.path, expected: layout + " (found no JPEG or PNG files)") }
        self.root = root
        self.files = files
        self.labels = labels
        self.classNames = classes
    }

    /// Like `sorted(os.walk(dir, followlinks=True))`, keeping image files, each folder's sorted.
    static func walk(_ dir: URL) -> [URL] {
        var folders: [(path: String, files: [String])] = []
        var pending = [dir.path]
        var seen = Set<String>()
        while let path = pending.popLast() {
            let real = (path as NSString).resolvingSymlinksInPath
            guard seen.insert(real).inserted else { continue }  // link cycles
            let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
            var files: [String] = []
            for n in names {
                let full = (path as NSString).appendingPathComponent(n)
                if isDirectory(URL(fileURLWithPath: full)) { pending.append(full) }
                else if extensions.contains((n as NSString).pathExtension.lowercased()) { files.append(n) }
            }
            folders.append((path, files.sorted(by: codePointLess)))
        }
        return folders.sorted { codePointLess($0.path, $1.path) }.flatMap { f in
            f.files.map { URL(fileURLWithPath: (f.path as NSString).appendingPathComponent($0)) }
        }
    }
}

/// Python's string order (by code point), not Swift's (Unicode canonical equivalence).
func codePointLess(_ a: String, _ b: String) -> Bool {
    a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars)
}
