import Foundation

/// The image files under a folder, depth first in sorted order, one directory listed at a time (so
/// memory is the path being walked plus one listing). Symbolic links to files are followed; links
/// to folders are not (no loops, no file indexed twice through two names).
///
/// What cannot be read is reported, never taken for gone: a folder that cannot be listed, or whose
/// entries cannot be looked at (read but not search permission), lands in `unreadableFolders`; an
/// image file whose metadata cannot be read (an I/O error, a loop of links) or whose name is not
/// UTF-8 (paths are stored as text) lands in `unreadableFiles`. The indexer leaves what it holds
/// under both as it was. Only a file that vanished between the listing and its `lstat`, or a link
/// whose target does not exist, is treated as gone.
public struct FolderWalker {
    public struct Entry {
        public var path: String
        public var size: Int64
        public var mtimeNanoseconds: Int64
    }

    public let extensions: Set<String>
    /// Folder names not walked, as `fnmatch` globs (`@eaDir`, `.*`).
    public let excludedNames: [String]
    /// Folders skipped because their names matched `excludedNames`.
    public private(set) var excludedFolders = 0
    public private(set) var unreadableFolders: [(path: String, reason: String)] = []
    public private(set) var unreadableFiles: [(path: String, reason: String)] = []

    public init(extensions: Set<String> = ImageFiles.extensions, excludedNames: [String] = []) {
        self.extensions = extensions
        self.excludedNames = excludedNames
    }

    /// "path: reason" for each entry, as summaries and error lines show them.
    public static func described(_ entries: [(path: String, reason: String)]) -> [String] {
        entries.map { "\($0.path): \($0.reason)" }
    }

    /// Every path whose indexed files must be left as they were: the unreadable folders and files.
    public var unreadablePaths: [String] { unreadableFolders.map(\.path) + unreadableFiles.map(\.path) }

    /// Calls `body` for every image file under `root` (a folder).
    public mutating func walk(_ root: String, _ body: (Entry) throws -> Void) rethrows {
        var stack = [root]
        while let dir = stack.popLast() {
            guard let handle = opendir(dir) else {
                unreadableFolders.append((dir, Self.reason(errno)))
                continue
            }
            var names: [String] = []
            while let entry = readdir(handle) {
                let bytes = withUnsafeBytes(of: entry.pointee.d_name) { raw in Array(raw.prefix(while: { $0 != 0 })) }
                guard let name = String(validating: bytes, as: UTF8.self) else {
                    reportUndecodableName(bytes, in: dir)
                    continue
                }
                if name == "." || name == ".." { continue }
                names.append(name)
            }
            closedir(handle)
            var subfolders: [String] = []
            for name in names.sorted() {
                let path = Self.join(dir, name)
                var info = stat()
                guard lstat(path, &info) == 0 else {
                    let error = errno
                    if error == ENOENT { continue } // gone since the listing
                    if error == EACCES {
                        // Listed but not searchable (mode r without x): no entry can be looked at.
                        unreadableFolders.append((dir, "cannot look inside the folder (\(Self.reason(error)))"))
                        break
                    }
                    if isImageName(name) { unreadableFiles.append((path, Self.reason(error))) }
                    continue
                }
                var kind = info.st_mode & S_IFMT
                if kind == S_IFLNK {
                    guard stat(path, &info) == 0 else {
                        // A dangling link is a file that is gone; any other failure (a loop of links,
                        // a target that cannot be reached) says nothing about the picture.
                        let error = errno
                        if error != ENOENT, isImageName(name) { unreadableFiles.append((path, Self.reason(error))) }
                        continue
                    }
                    kind = info.st_mode & S_IFMT
                    if kind == S_IFDIR { continue }
                }
                if kind == S_IFDIR {
                    if excludedNames.contains(where: { fnmatch($0, name, 0) == 0 }) { excludedFolders += 1; continue }
                    subfolders.append(path)
                } else if kind == S_IFREG, isImageName(name) {
                    try body(Entry(path: path, size: Int64(info.st_size),
                                   mtimeNanoseconds: Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)))
                }
            }
            // Depth first, in sorted order.
            stack += subfolders.reversed()
        }
    }

    private func isImageName(_ name: String) -> Bool {
        extensions.contains((name as NSString).pathExtension.lowercased())
    }

    /// A name that is not UTF-8 (a Latin-1 name copied from an old disk, say): the index stores
    /// paths as text, so such a folder or image file is reported (shown with U+FFFD) to be renamed.
    private mutating func reportUndecodableName(_ bytes: [UInt8], in dir: String) {
        let shown = String(decoding: bytes, as: UTF8.self)
        let raw = Array(dir.utf8) + [UInt8(ascii: "/")] + bytes + [0]
        var info = stat()
        let isFolder = raw.withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { stat($0.baseAddress!, &info) == 0 } && info.st_mode & S_IFMT == S_IFDIR
        }
        let why = "the name is not valid UTF-8; rename it (SwiftCLIP keeps paths as UTF-8 text)"
        if isFolder {
            unreadableFolders.append((Self.join(dir, shown), why))
        } else if isImageName(shown) {
            unreadableFiles.append((Self.join(dir, shown), why))
        }
    }

    private static func join(_ dir: String, _ name: String) -> String { dir == "/" ? "/" + name : dir + "/" + name }
    private static func reason(_ error: Int32) -> String { String(cString: strerror(error)) }
}
