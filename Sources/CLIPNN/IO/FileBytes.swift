import Foundation

/// A failed system call on a file, with the reason in words. Each file format wraps it into its
/// own typed error (`SafetensorsError.io`, `NPYError.io`) that names the file.
public struct FileIOFailure: Error, CustomStringConvertible {
    public let message: String
    /// The file it is about, when the thrower knows it (the output writer does).
    public let path: String?

    init(_ message: String, path: String? = nil) { self.message = message; self.path = path }

    public var description: String { path.map { "\($0): \(message)" } ?? message }

    /// The failure of the system call that just set `errno`.
    static func errno(_ what: String, path: String? = nil) -> FileIOFailure {
        FileIOFailure("\(what): \(String(cString: strerror(Foundation.errno)))", path: path)
    }
}

/// The bytes of a file, memory-mapped read-only (so a 350 MB checkpoint costs no copy until a
/// tensor is decoded). The mapping lives as long as this object.
///
/// Weak spot: if another process truncates the file while it is mapped, touching the lost pages
/// raises SIGBUS. Files are checked against their size when opened, not while in use.
final class FileBytes: @unchecked Sendable {
    /// Start of the bytes; nil when the file is empty.
    let base: UnsafeRawPointer?
    let count: Int
    private let mappedLength: Int

    init(contentsOf url: URL) throws {
        let fd = open(url.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileIOFailure.errno("cannot open") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw FileIOFailure.errno("cannot stat") }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw FileIOFailure("not a regular file") }
        let size = Int(info.st_size)
        count = size
        mappedLength = size
        guard size > 0 else { base = nil; return }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else { throw FileIOFailure.errno("cannot map \(size) bytes") }
        base = UnsafeRawPointer(p)
    }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), mappedLength) }
    }

    /// Gives the pages wholly inside `range` back to the kernel (they stop counting as this
    /// process's resident memory; a later read maps them in again from the file).
    func dropPages(_ range: Range<Int>) {
        guard let base, !range.isEmpty else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (Int(bitPattern: base) + range.lowerBound + page - 1) / page * page
        let end = (Int(bitPattern: base) + range.upperBound) / page * page
        guard end > start, let p = UnsafeMutableRawPointer(bitPattern: start) else { return }
        _ = madvise(p, end - start, MADV_DONTNEED)
    }

    /// Copies `range` out as an array (for headers; bounds are the caller's to check).
    func bytes(_ range: Range<Int>) -> [UInt8] {
        guard let base, !range.isEmpty else { return [] }
        return Array(UnsafeRawBufferPointer(start: base + range.lowerBound, count: range.count))
    }
}

/// Writes a file so that the destination is either untouched or complete: the bytes go to a
/// fresh temporary file in the destination's folder, which is fsynced and then renamed over the
/// destination. If anything fails (or `commit` is never reached) the temporary file is removed.
///
/// Only a new file or an existing regular file is replaced that way. A symbolic link is followed
/// (the file it points to is replaced, the link stays); a character device or FIFO (`/dev/null`,
/// `/dev/stdout`, a pipe) is written in place, never replaced; a directory, block device, socket
/// or dangling link is refused. Every error names the destination.
public final class AtomicFileWriter {
    private let destination: URL
    /// Where the bytes go first; nil when writing in place (a device or FIFO).
    private let temporaryPath: String?
    private var fd: Int32
    private var committed = false

    public init(destination: URL) throws {
        let given = destination.path
        guard !destination.relativePath.isEmpty else { throw FileIOFailure("empty output path", path: "(empty path)") }
        var target = destination
        var info = stat()
        if lstat(given, &info) == 0 && (info.st_mode & S_IFMT) == S_IFLNK {
            // Replace what the link points to, not the link.
            guard stat(given, &info) == 0 else {
                throw FileIOFailure.errno("output is a symbolic link that cannot be followed", path: given)
            }
            if let resolved = realpath(given, nil) {
                target = URL(fileURLWithPath: String(cString: resolved))
                free(resolved)
            } else if info.st_mode & S_IFMT != S_IFIFO && info.st_mode & S_IFMT != S_IFCHR {
                throw FileIOFailure.errno("output is a symbolic link that cannot be followed", path: given)
            }
            // else /dev/stdout onto a pipe: /proc/self/fd/1 names no path, but it opens (below, in place).
        } else if lstat(given, &info) != 0 {
            guard Foundation.errno == ENOENT else { throw FileIOFailure.errno("cannot write output", path: given) }
            info.st_mode = S_IFREG  // a new file
        }
        self.destination = target
        switch info.st_mode & S_IFMT {
        case S_IFREG:
            break
        case S_IFCHR, S_IFIFO:
            let fd = open(target.path, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else { throw FileIOFailure.errno("cannot open output", path: given) }
            self.fd = fd
            self.temporaryPath = nil
            return
        default:
            let kind = info.st_mode & S_IFMT == S_IFDIR ? "a directory" : "not a regular file, device or FIFO"
            throw FileIOFailure("output is \(kind); refusing to replace it", path: given)
        }
        let folder = target.deletingLastPathComponent().path
        var isFolder = stat()
        guard stat(folder, &isFolder) == 0, isFolder.st_mode & S_IFMT == S_IFDIR else {
            throw FileIOFailure("the output folder \(folder) does not exist", path: given)
        }
        let name = target.lastPathComponent
        var attempt = 0
        while true {
            let suffix = String(UInt64.random(in: 0...UInt64.max), radix: 36)
            let path = (folder as NSString).appendingPathComponent(".\(name).\(suffix).tmp")
            // 0o666 and the process umask give the same permissions an ordinary new file gets.
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
            if fd >= 0 { self.fd = fd; self.temporaryPath = path; return }
            attempt += 1
            if Foundation.errno != EEXIST || attempt > 16 {
                throw FileIOFailure.errno("cannot create a temporary file in \(folder)", path: given)
            }
        }
    }

    deinit {
        if fd >= 0 { close(fd) }
        if !committed, let temporaryPath { unlink(temporaryPath) }
    }

    public func write(_ buffer: UnsafeRawBufferPointer) throws {
        guard var p = buffer.baseAddress else { return }
        var left = buffer.count
        while left > 0 {
            let n = Foundation.write(fd, p, left)
            if n < 0 {
                if Foundation.errno == EINTR { continue }
                throw FileIOFailure.errno("cannot write", path: destination.path)
            }
            p += n
            left -= n
        }
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// False for a FIFO or device written in place: `write(_:atOffset:)` needs a regular file.
    public var isSeekable: Bool { temporaryPath != nil }

    /// Overwrites bytes already written, at `offset` from the start (the file position is kept).
    public func write(_ buffer: UnsafeRawBufferPointer, atOffset offset: Int) throws {
        guard isSeekable else { throw FileIOFailure("cannot rewrite a FIFO or device output", path: destination.path) }
        guard var p = buffer.baseAddress else { return }
        var left = buffer.count, at = off_t(offset)
        while left > 0 {
            let n = pwrite(fd, p, left, at)
            if n < 0 {
                if Foundation.errno == EINTR { continue }
                throw FileIOFailure.errno("cannot write", path: destination.path)
            }
            p += n
            left -= n
            at += off_t(n)
        }
    }

    /// Flushes to disk and renames over the destination.
    public func commit() throws {
        guard let temporaryPath else {
            // In place (device or FIFO): nothing to rename; close reports a late write error.
            let closed = close(fd)
            fd = -1
            guard closed == 0 else { throw FileIOFailure.errno("cannot close", path: destination.path) }
            committed = true
            return
        }
        guard fsync(fd) == 0 else { throw FileIOFailure.errno("cannot fsync", path: destination.path) }
        let closed = close(fd)
        fd = -1
        guard closed == 0 else { throw FileIOFailure.errno("cannot close", path: destination.path) }
        guard rename(temporaryPath, destination.path) == 0 else {
            throw FileIOFailure.errno("cannot rename into place", path: destination.path)
        }
        committed = true
        // Make the rename itself durable; a failure here leaves a complete file, so it is ignored.
        let dir = open(destination.deletingLastPathComponent().path, O_RDONLY | O_CLOEXEC)
        if dir >= 0 { _ = fsync(dir); close(dir) }
    }

    /// Runs `body` with a writer and commits; on any error the destination is left as it was.
    public static func write(to url: URL, _ body: (AtomicFileWriter) throws -> Void) throws {
        let writer = try AtomicFileWriter(destination: url)
        try body(writer)
        try writer.commit()
    }
}

/// Number of elements of `shape`, multiplied left to right as `Tensor.count` does, or nil if a
/// dimension is negative or a partial product overflows (so `Tensor` can never trap on it).
func checkedElementCount(_ shape: [Int]) -> Int? {
    var n = 1
    for d in shape {
        guard d >= 0 else { return nil }
        let (p, overflow) = n.multipliedReportingOverflow(by: d)
        if overflow { return nil }
        n = p
    }
    return n
}
