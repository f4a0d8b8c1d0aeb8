import Foundation

/// The image files under a folder, depth first in sorted order, one directory listed at a time (so
/// memory is the path being walked plus one listing). Symbolic links to files are followed; links
/// to folders are not (no loops, no file indexed twice through two names). A folder that cannot be
/// listed is reported and its files left as they were.
package struct FolderWalker {
    package struct Entry {
        package var path: String
        package var size: Int64
        package var mtimeNanoseconds: Int64
    }

    let extensions: Set<String>
    package private(set) var unreadable: [(path: String, reason: String)] = []
    private(set) var skippedFolderLinks = 0

    init(extensions: Set<String>) { self.extensions = extensions }

    /// Calls `body` for every image file under `root` (a folder).
    mutating func walk(_ root: String, _ body: (Entry) throws -> Void) throws {
        var stack = [root]
        while let dir = stack.popLast() {
            guard let handle = opendir(dir) else {
                unreadable.append((dir, String(cString: strerror(errno))))
                continue
            }
            var names: [String] = []
            while let entry = readdir(handle) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
                }
                if name == "." || name == ".." { continue }
                names.append(name)
            }
            closedir(handle)
            var subfolders: [String] = []
            for name in names.sorted() {
                let path = dir == "/" ? "/" + name : dir + "/" + name
                var info = stat()
                guard lstat(path, &info) == 0 else { continue } // gone since the listing
                var kind = info.st_mode & S_IFMT
                if kind == S_IFLNK {
                    guard stat(path, &info) == 0 else { continue } // a dangling link
                    kind = info.st_mode & S_IFMT
                    if kind == S_IFDIR { skippedFolderLinks += 1; continue }
                }
                if kind == S_IFDIR {
                    subfolders.append(path)
                } else if kind == S_IFREG, extensions.contains((name as NSString).pathExtension.lowercased()) {
                    try body(Entry(path: path, size: Int64(info.st_size),
                                   mtimeNanoseconds: Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)))
                }
            }
            // Depth first, in sorted order.
            stack += subfolders.reversed()
        }
    }
}
