import Foundation

/// A 128-bit non-cryptographic hash (two independent 64-bit multiply-xorshift lanes over 8-byte
/// words): enough to tell photos apart, as rclip's partial hash is meant to; not a defence against
/// someone crafting collisions.
struct ContentHasher {
    private var a: UInt64 = 0x9E37_79B9_7F4A_7C15
    private var b: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    private var length: UInt64 = 0

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        var i = 0
        let n = bytes.count
        while i + 8 <= n {
            let w = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            a = (a ^ w) &* 0x1000_0000_01B3 ^ (a >> 29)
            b = (b &+ w) &* 0x9FB2_1C65_1E98_DF25 ^ (b >> 31)
            i += 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while i < n { tail |= UInt64(bytes[i]) << shift; shift += 8; i += 1 }
        if shift > 0 {
            a = (a ^ tail) &* 0x1000_0000_01B3 ^ (a >> 29)
            b = (b &+ tail) &* 0x9FB2_1C65_1E98_DF25 ^ (b >> 31)
        }
        length &+= UInt64(n)
    }

    mutating func update(_ data: Data) { data.withUnsafeBytes { update($0) } }
    mutating func update(_ text: String) { update(Data(text.utf8)); update(Data([0])) }

    func finish() -> String {
        func mix(_ x: UInt64) -> UInt64 {
            var z = x ^ length
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        let hi = mix(a), lo = mix(b ^ hi)
        return String(format: "%016llx%016llx", hi, lo)
    }
}

package enum FileHash {
    /// rclip's partial content hash: the first 1 MiB, the last 1 KiB and the size. Two files with
    /// equal hashes are treated as the same picture (a move, rename or copy).
    package static func partial(path: String, size: Int64) throws -> String {
        try sampled(path: path, size: size, blocks: [(0, 1 << 20), (max(0, size - 1024), 1024)])
    }

    /// A model weights file: its size and 64 evenly spaced 64 KiB blocks (4 MiB read whatever its
    /// size), so a changed checkpoint changes the digest without reading gigabytes per search.
    static func weights(path: String) throws -> String {
        var info = stat()
        guard stat(path, &info) == 0 else { throw SearchError.noModel("\(path): cannot read the weights (\(String(cString: strerror(errno))))") }
        let size = Int64(info.st_size)
        let blocks = (0..<64).map { i in (size * Int64(i) / 64, 65_536) }
        return try sampled(path: path, size: size, blocks: blocks)
    }

    private static func sampled(path: String, size: Int64, blocks: [(Int64, Int)]) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileError(path: path, errno: errno) }
        defer { close(fd) }
        var hasher = ContentHasher()
        var buffer = [UInt8](repeating: 0, count: blocks.map(\.1).max() ?? 0)
        for (offset, count) in blocks where offset < size {
            let want = Int(min(Int64(count), size - offset))
            let got = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, want, off_t(offset)) }
            guard got >= 0 else { throw FileError(path: path, errno: errno) }
            buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<got])) }
        }
        hasher.update("\(size)")
        return hasher.finish()
    }
}

/// A system call on a file failed.
struct FileError: Error, CustomStringConvertible {
    let path: String
    let errno: Int32
    var description: String { "\(path): \(String(cString: strerror(errno)))" }
}
