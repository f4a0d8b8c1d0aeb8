import CLIPEngine
import Foundation

/// A zip archive that cannot be read or written; every case names the file.
public struct ZipError: Error, CustomStringConvertible, Equatable {
    public let file: String
    /// The entry it is about, when there is one.
    public let entry: String?
    public let message: String

    public var description: String {
        entry.map { "\(file): zip entry '\($0)': \(message)" } ?? "\(file): \(message)"
    }
}

/// A zip archive of stored (uncompressed) entries, as `torch.save` writes them, read from a
/// memory-mapped file: an entry's bytes are a range of the mapping, never copied until decoded.
/// The central directory is validated whole when the archive is opened (every entry's data inside
/// the file, zip64 sizes and offsets understood); compressed or encrypted entries are listed but
/// refused when read, with a message that says so.
public final class ZipArchive {
    public struct Entry: Equatable {
        public let name: String
        /// 0 = stored; anything else is refused by `bytes(of:)`.
        public let method: UInt16
        public let flags: UInt16
        public let crc32: UInt32
        public let size: Int
        public let compressedSize: Int
        /// Where the entry's bytes begin in the file (after its local header).
        public let dataOffset: Int
    }

    public let path: String
    /// Entries in central-directory order.
    public let entries: [Entry]
    private let index: [String: Int]
    let bytes: FileBytes

    /// Most entries accepted (the central directory of a torch checkpoint has one per tensor).
    public static let maximumEntries = 1 << 20

    public convenience init(url: URL) throws {
        let bytes: FileBytes
        do { bytes = try FileBytes(contentsOf: url) } catch let e as FileIOFailure {
            throw ZipError(file: url.path, entry: nil, message: e.message)
        }
        try self.init(bytes: bytes, path: url.path)
    }

    init(bytes: FileBytes, path: String) throws {
        self.bytes = bytes
        self.path = path
        func fail(_ m: String, _ entry: String? = nil) -> ZipError { ZipError(file: path, entry: entry, message: m) }
        let n = bytes.count
        guard n >= 22, let base = bytes.base else { throw fail("not a zip archive: \(n) bytes, too short for its end record") }
        func u16(_ at: Int) -> Int { Int(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: at, as: UInt16.self))) }
        func u32(_ at: Int) -> Int { Int(UInt32(littleEndian: base.loadUnaligned(fromByteOffset: at, as: UInt32.self))) }
        func u64(_ at: Int) throws -> Int {
            let v = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: at, as: UInt64.self))
            guard v <= UInt64(Int.max) else { throw fail("a zip64 field at byte \(at) is out of range") }
            return Int(v)
        }
        // The end-of-central-directory record: 22 bytes plus a comment of up to 65535 at the end.
        var eocd = -1
        var at = n - 22
        while at >= max(0, n - 22 - 65_535) {
            if u32(at) == 0x0605_4B50 && at + 22 + u16(at + 20) == n { eocd = at; break }
            at -= 1
        }
        guard eocd >= 0 else { throw fail("not a zip archive (no end-of-central-directory record; truncated?)") }
        var count = u16(eocd + 10), cdSize = u32(eocd + 12), cdOffset = u32(eocd + 16)
        if count == 0xFFFF || cdSize == 0xFFFF_FFFF || cdOffset == 0xFFFF_FFFF {
            // zip64: a locator just before the end record points at the zip64 end record.
            let loc = eocd - 20
            guard loc >= 0, u32(loc) == 0x0706_4B50 else { throw fail("zip64 sizes without a zip64 end-record locator") }
            let z = try u64(loc + 8)
            guard z <= n - 56, u32(z) == 0x0606_4B50 else { throw fail("zip64 end record missing at byte \(z)") }
            count = try u64(z + 32); cdSize = try u64(z + 40); cdOffset = try u64(z + 48)
        }
        guard count <= Self.maximumEntries else { throw fail("\(count) entries, over the limit of \(Self.maximumEntries)") }
        guard cdOffset <= n, cdSize <= n - cdOffset else {
            throw fail("central directory (\(cdSize) bytes at \(cdOffset)) runs past the end of the file (\(n) bytes): truncated?")
        }
        var entries: [Entry] = []
        entries.reserveCapacity(count)
        var index: [String: Int] = [:]
        var p = cdOffset
        let cdEnd = cdOffset + cdSize
        for i in 0..<count {
            guard p + 46 <= cdEnd, u32(p) == 0x0201_4B50 else { throw fail("central directory entry \(i) is damaged (at byte \(p))") }
            let flags = UInt16(u16(p + 8)), method = UInt16(u16(p + 10))
            let crc = UInt32(u32(p + 16))
            var compressed = u32(p + 20), size = u32(p + 24)
            let nameLength = u16(p + 28), extraLength = u16(p + 30), commentLength = u16(p + 32)
            var local = u32(p + 42)
            let fieldsEnd = p + 46 + nameLength + extraLength + commentLength
            guard fieldsEnd <= cdEnd else { throw fail("central directory entry \(i) runs past the directory") }
            let name = String(decoding: bytes.bytes(p + 46 ..< p + 46 + nameLength), as: UTF8.self)
            // zip64 extra field (id 1): the 64-bit values of the fields that read 0xFFFFFFFF, in order.
            var e = p + 46 + nameLength
            let extraEnd = e + extraLength
            while e + 4 <= extraEnd {
                let id = u16(e), len = u16(e + 2)
                guard e + 4 + len <= extraEnd else { throw fail("extra field runs past its entry", name) }
                if id == 1 {
                    var q = e + 4
                    func next() throws -> Int {
                        guard q + 8 <= e + 4 + len else { throw fail("zip64 extra field too short", name) }
                        defer { q += 8 }
                        return try u64(q)
                    }
                    if size == 0xFFFF_FFFF { size = try next() }
                    if compressed == 0xFFFF_FFFF { compressed = try next() }
                    if local == 0xFFFF_FFFF { local = try next() }
                }
                e += 4 + len
            }
            guard local <= n - 30, u32(local) == 0x0403_4B50 else { throw fail("local header missing at byte \(local)", name) }
            let dataOffset = local + 30 + u16(local + 26) + u16(local + 28)
            guard dataOffset <= n, compressed <= n - dataOffset else {
                throw fail("data (\(compressed) bytes at \(dataOffset)) runs past the end of the file (\(n) bytes): truncated?", name)
            }
            if index[name] != nil { throw fail("the archive holds two entries with this name", name) }
            index[name] = entries.count
            entries.append(Entry(name: name, method: method, flags: flags, crc32: crc, size: size,
                                 compressedSize: compressed, dataOffset: dataOffset))
            p = fieldsEnd
        }
        self.entries = entries
        self.index = index
    }

    public func entry(_ name: String) -> Entry? { index[name].map { entries[$0] } }

    /// The stored bytes of `name` (a view of the mapping, valid while the archive lives).
    public func bytes(of name: String) throws -> UnsafeRawBufferPointer {
        guard let e = entry(name) else { throw ZipError(file: path, entry: name, message: "no such entry in the archive") }
        guard e.flags & 1 == 0 else { throw ZipError(file: path, entry: name, message: "is encrypted") }
        guard e.method == 0 else {
            throw ZipError(file: path, entry: name, message: "is compressed (method \(e.method)); only stored entries are read, as torch.save writes them")
        }
        guard e.size == e.compressedSize else {
            throw ZipError(file: path, entry: name, message: "stored entry with size \(e.size) != compressed size \(e.compressedSize)")
        }
        return UnsafeRawBufferPointer(start: bytes.base.map { $0 + e.dataOffset }, count: e.size)
    }

    /// Checks an entry's CRC-32 (a pass over its bytes: done for the small entries only).
    public func verifyChecksum(_ name: String) throws {
        let data = try bytes(of: name)
        var c = CRC32()
        c.update(data)
        guard let e = entry(name), c.value == e.crc32 else {
            throw ZipError(file: path, entry: name, message: "CRC-32 mismatch: the file is damaged")
        }
    }

    /// Gives the pages of an entry back once it has been decoded.
    func dropPages(of name: String) {
        guard let e = entry(name) else { return }
        bytes.dropPages(e.dataOffset ..< e.dataOffset + e.size)
    }
}

/// Writes a zip archive of stored entries, each entry's data aligned to 64 bytes (as torch.save
/// does, padding with an extra field), with zip64 records where sizes or offsets need them.
/// Atomic, as every writer here: the destination is replaced only once the whole archive is written.
public enum ZipWriter {
    /// One entry: its name, its size, and a body that writes exactly `size` bytes through `emit`.
    public struct Source {
        public let name: String
        public let size: Int
        public let write: ((UnsafeRawBufferPointer) throws -> Void) throws -> Void

        public init(name: String, size: Int, write: @escaping ((UnsafeRawBufferPointer) throws -> Void) throws -> Void) {
            self.name = name; self.size = size; self.write = write
        }

        public init(name: String, bytes: [UInt8]) {
            self.init(name: name, size: bytes.count) { emit in try bytes.withUnsafeBytes { try emit($0) } }
        }
    }

    static let alignment = 64

    /// `forceZip64` writes zip64 records even for a small archive (to test that path).
    public static func write(_ sources: [Source], to url: URL, forceZip64: Bool = false) throws {
        do {
            try AtomicFileWriter.write(to: url) { w in
                var offset = 0
                func put(_ b: [UInt8]) throws { try w.write(b); offset += b.count }
                var central: [UInt8] = []
                for s in sources {
                    // The CRC first (one pass over the data), then the header, then the data.
                    var crc = CRC32()
                    var counted = 0
                    try s.write { crc.update($0); counted += $0.count }
                    guard counted == s.size else {
                        throw FileIOFailure("entry \(s.name): wrote \(counted) bytes, announced \(s.size)", path: url.path)
                    }
                    let name = Array(s.name.utf8)
                    let big = forceZip64 || s.size >= 0xFFFF_FFFF
                    let localOffset = offset
                    var extra: [UInt8] = []
                    if big { extra += le16(1) + le16(16) + le64(s.size) + le64(s.size) }
                    // Pad with an extra field (id 0x4246, as torch's writer) so the data starts aligned.
                    let unpadded = offset + 30 + name.count + extra.count
                    var pad = (alignment - unpadded % alignment) % alignment
                    if pad > 0 && pad < 4 { pad += alignment }
                    if pad > 0 { extra += le16(0x4246) + le16(pad - 4) + [UInt8](repeating: 0x5A, count: pad - 4) }
                    let size32 = big ? 0xFFFF_FFFF : s.size
                    try put(le32(0x0403_4B50) + le16(big ? 45 : 20) + le16(0) + le16(0) + le16(0) + le16(0x21)
                            + le32(Int(crc.value)) + le32(size32) + le32(size32) + le16(name.count) + le16(extra.count) + name + extra)
                    var written = 0
                    try s.write { buf in try w.write(buf); written += buf.count }
                    guard written == s.size else {
                        throw FileIOFailure("entry \(s.name): wrote \(written) bytes, then \(s.size)", path: url.path)
                    }
                    offset += written
                    let bigOffset = forceZip64 || localOffset >= 0xFFFF_FFFF
                    var cextra: [UInt8] = []
                    if big || bigOffset {
                        var fields: [UInt8] = []
                        if big { fields += le64(s.size) + le64(s.size) }
                        if bigOffset { fields += le64(localOffset) }
                        cextra = le16(1) + le16(fields.count) + fields
                    }
                    central += le32(0x0201_4B50) + le16(big || bigOffset ? 45 : 20) + le16(big || bigOffset ? 45 : 20)
                    central += le16(0) + le16(0) + le16(0) + le16(0x21) + le32(Int(crc.value)) + le32(size32) + le32(size32)
                    central += le16(name.count) + le16(cextra.count) + le16(0) + le16(0) + le16(0) + le32(0)
                    central += le32(bigOffset ? 0xFFFF_FFFF : localOffset) + name + cextra
                }
                let cdOffset = offset
                try put(central)
                let count = sources.count
                let zip64 = forceZip64 || count >= 0xFFFF || cdOffset >= 0xFFFF_FFFF || central.count >= 0xFFFF_FFFF
                if zip64 {
                    let record = offset
                    try put(le32(0x0606_4B50) + le64(44) + le16(45) + le16(45) + le32(0) + le32(0)
                            + le64(count) + le64(count) + le64(central.count) + le64(cdOffset))
                    try put(le32(0x0706_4B50) + le32(0) + le64(record) + le32(1))
                }
                try put(le32(0x0605_4B50) + le16(0) + le16(0) + le16(zip64 ? 0xFFFF : count) + le16(zip64 ? 0xFFFF : count)
                        + le32(zip64 ? 0xFFFF_FFFF : central.count) + le32(zip64 ? 0xFFFF_FFFF : cdOffset) + le16(0))
            }
        } catch let e as FileIOFailure {
            throw ZipError(file: url.path, entry: nil, message: e.message)
        }
    }

    private static func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF)] }
    private static func le32(_ v: Int) -> [UInt8] { (0..<4).map { UInt8((v >> (8 * $0)) & 0xFF) } }
    private static func le64(_ v: Int) -> [UInt8] { (0..<8).map { UInt8((v >> (8 * $0)) & 0xFF) } }
}
