import Foundation

/// A file that could not be read, with the reason in words (never a raw Foundation error).
public struct InputFileError: Error, CustomStringConvertible, Equatable {
    /// The path as given; empty when an empty path was given.
    public let path: String
    public let reason: String

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    public var description: String { "\(path.isEmpty ? "(empty path)" : path): \(reason)" }
}

/// Reads input files for every layer (configs, images, vocabularies, datasets, text lists) with the
/// same checks: an empty path, a directory, a device, a FIFO or a socket, a symlink loop and a
/// file over a size limit are errors that say so, before any byte is read.
public enum InputFile {
    /// Default size limit (4 GiB): far above any config, image, vocabulary or CIFAR file.
    public static let defaultMaximumBytes = 4 << 30

    /// The whole file, or a typed error naming the path and the reason.
    public static func read(_ path: String, maximumBytes: Int = defaultMaximumBytes) throws -> Data {
        guard !path.isEmpty else { throw InputFileError(path: path, reason: "empty path") }
        // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below anyway).
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw InputFileError(path: path, reason: reasonForErrno(errno)) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw InputFileError(path: path, reason: reasonForErrno(errno)) }
        if let kind = nonRegularKind(info.st_mode) {
            throw InputFileError(path: path, reason: "is \(kind), not a regular file")
        }
        let size = Int(info.st_size)
        guard size <= maximumBytes else {
            throw InputFileError(path: path, reason: "is \(size) bytes, over the limit of \(maximumBytes) bytes")
        }
        var data = Data(count: size)
        var done = 0
        try data.withUnsafeMutableBytes { (buffer: UnsafeMutableRawBufferPointer) in
            while done < size {
                let n = Foundation.read(fd, buffer.baseAddress! + done, size - done)
                if n < 0 {
                    if errno == EINTR || errno == EAGAIN { continue }
                    throw InputFileError(path: path, reason: "cannot read: \(String(cString: strerror(errno)))")
                }
                if n == 0 { break }  // the file shrank while being read
                done += n
            }
        }
        if done < size { data.removeSubrange(done...) }
        return data
    }

    /// Checks that `path` names a readable regular file (for inputs opened later, such as a
    /// dataset's images), without reading it.
    public static func checkRegularFile(_ path: String) throws {
        guard !path.isEmpty else { throw InputFileError(path: path, reason: "empty path") }
        var info = stat()
        guard stat(path, &info) == 0 else { throw InputFileError(path: path, reason: reasonForErrno(errno)) }
        if let kind = nonRegularKind(info.st_mode) {
            throw InputFileError(path: path, reason: "is \(kind), not a regular file")
        }
    }

    /// What a file type is, in words, when it is not a regular file.
    public static func nonRegularKind(_ mode: mode_t) -> String? {
        switch mode & S_IFMT {
        case S_IFREG: return nil
        case S_IFDIR: return "a directory"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFIFO: return "a FIFO (named pipe)"
        case S_IFSOCK: return "a socket"
        case S_IFLNK: return "a symbolic link"
        default: return "a special file"
        }
    }

    /// open(2) / stat(2) failures in the words a user needs.
    public static func reasonForErrno(_ code: Int32) -> String {
        switch code {
        case ENOENT: return "no such file"
        case ENOTDIR: return "a component of the path is not a directory"
        case ELOOP: return "too many levels of symbolic links (a symlink loop?)"
        case EACCES, EPERM: return "permission denied"
        case ENAMETOOLONG: return "file name too long"
        default: return String(cString: strerror(code))
        }
    }
}
