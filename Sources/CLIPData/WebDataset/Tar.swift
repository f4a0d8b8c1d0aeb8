import Foundation

/// One regular-file member of a tar archive.
public struct TarMember: Sendable {
    public let name: String
    public let data: Data
    /// Byte offset of the member's header in the archive (for messages).
    public let offset: Int
}

/// Why a tar archive could not be read further. Each names the archive, the byte offset and,
/// where known, the member.
public enum TarError: Error, CustomStringConvertible, Equatable {
    case cannotOpen(path: String, reason: String)
    case badHeader(path: String, offset: Int, after: String?, reason: String)
    case truncated(path: String, offset: Int, member: String?, reason: String)

    /// The member being read when the archive ended (nil when it ended between members).
    public var member: String? {
        if case let .truncated(_, _, member?, _) = self, !member.hasPrefix("after ") { return member }
        return nil
    }

    public var description: String {
        switch self {
        case let .cannotOpen(path, reason): return "\(path): cannot open the tar shard (\(reason))"
        case let .badHeader(path, offset, after, reason):
            return "\(path): corrupt tar header at byte \(offset)" + (after.map { " (after member \($0))" } ?? "") + ": \(reason)"
        case let .truncated(path, offset, member, reason):
            return "\(path): truncated tar at byte \(offset)" + (member.map { " in member \($0)" } ?? "") + ": \(reason)"
        }
    }
}

/// Reads a tar archive member by member, streaming: only the current member's bytes are in memory
/// (never the whole archive). ustar, GNU (`L` long names, base-256 sizes) and pax (`x` headers'
/// `path`) as Python's `tarfile` and webdataset write them; directories, links and other entries
/// are skipped. A header whose checksum is wrong, or an archive that ends inside a header or a
/// member, is an error naming the archive, the offset and the member: the caller skips the rest.
public final class TarReader {
    public let path: String
    /// Members larger than this are skipped (their bytes are read past, not kept).
    public let maximumMemberBytes: Int
    private let handle: FileHandle
    private var buffer = Data()
    private var bufferStart = 0
    private var position = 0
    private var finished = false
    private var lastName: String?
    /// Members skipped because they exceeded `maximumMemberBytes` (name, size).
    public private(set) var oversized: [(name: String, size: Int)] = []

    public init(path: String, maximumMemberBytes: Int = 256 << 20) throws {
        self.path = path
        self.maximumMemberBytes = maximumMemberBytes
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw TarError.cannotOpen(path: path, reason: "no such file")
        }
        guard let h = FileHandle(forReadingAtPath: path) else { throw TarError.cannotOpen(path: path, reason: "not readable") }
        handle = h
    }

    deinit { try? handle.close() }

    /// Up to `count` bytes from the current position (fewer only at the end of the file).
    private func read(_ count: Int) throws -> Data {
        var out = Data()
        out.reserveCapacity(min(count, 16 << 20))   // a header's size is not trusted before the bytes arrive
        while out.count < count {
            if bufferStart >= buffer.count {
                let chunk: Data?
                do { chunk = try handle.read(upToCount: max(1 << 20, min(count - out.count, 16 << 20))) } catch {
                    throw TarError.truncated(path: path, offset: position, member: lastName, reason: "read failed (\(error.localizedDescription))")
                }
                guard let chunk, !chunk.isEmpty else { break }
                buffer = chunk
                bufferStart = 0
            }
            let take = min(count - out.count, buffer.count - bufferStart)
            out.append(buffer.subdata(in: (buffer.startIndex + bufferStart)..<(buffer.startIndex + bufferStart + take)))
            bufferStart += take
        }
        position += out.count
        return out
    }

    /// Reads past `count` bytes without keeping them.
    private func skip(_ count: Int) throws -> Int {
        var left = count
        while left > 0 {
            let got = try read(min(left, 4 << 20)).count
            if got == 0 { break }
            left -= got
        }
        return count - left
    }

    static func padded(_ n: Int) -> Int { (n + 511) / 512 * 512 }

    /// The next regular file, or nil at the end of the archive.
    public func next() throws -> TarMember? {
        guard !finished else { return nil }
        var longName: String?
        while true {
            let offset = position
            let header = try read(512)
            if header.isEmpty { finished = true; return nil }   // end of file at a block boundary: accepted, as tarfile does
            guard header.count == 512 else {
                finished = true
                throw TarError.truncated(path: path, offset: offset, member: lastName.map { "after \($0)" },
                                         reason: "the archive ends inside a 512-byte header (\(header.count) bytes)")
            }
            let bytes = [UInt8](header)
            if bytes.allSatisfy({ $0 == 0 }) { finished = true; return nil }
            let fail = { (reason: String) -> TarError in
                self.finished = true
                return TarError.badHeader(path: self.path, offset: offset, after: self.lastName, reason: reason)
            }
            // Checksum: the header's bytes summed with the checksum field read as spaces.
            var sum = 0
            for (i, b) in bytes.enumerated() { sum += (148..<156).contains(i) ? 32 : Int(b) }
            guard let stored = Self.octal(bytes[148..<156]) else { throw fail("unreadable checksum field") }
            guard stored == sum else { throw fail("checksum \(stored) does not match the header (\(sum))") }
            guard let size = Self.size(bytes[124..<136]), size >= 0, size < 1 << 40 else { throw fail("unreadable size field") }
            let type = bytes[156]
            var name = longName ?? Self.string(bytes[0..<100])
            if longName == nil, bytes[257..<262].elementsEqual(Array("ustar".utf8)) {
                let prefix = Self.string(bytes[345..<500])
                if !prefix.isEmpty { name = prefix + "/" + name }
            }
            longName = nil
            switch type {
            case UInt8(ascii: "0"), 0, UInt8(ascii: "7"):
                if size > maximumMemberBytes {
                    let skipped = try skip(Self.padded(size))
                    guard skipped == Self.padded(size) else {
                        finished = true
                        throw TarError.truncated(path: path, offset: offset, member: name, reason: "\(size)-byte member cut short")
                    }
                    oversized.append((name, size))
                    lastName = name
                    continue
                }
                let data = try read(size)
                guard data.count == size else {
                    finished = true
                    throw TarError.truncated(path: path, offset: offset, member: name, reason: "\(data.count) of \(size) bytes")
                }
                _ = try skip(Self.padded(size) - size)   // padding: a missing tail of zeros loses nothing
                lastName = name
                return TarMember(name: name, data: data, offset: offset)
            case UInt8(ascii: "L"), UInt8(ascii: "x"):
                guard size <= 1 << 20 else { throw fail("\(size)-byte extended header") }
                let data = try read(size)
                guard data.count == size else {
                    finished = true
                    throw TarError.truncated(path: path, offset: offset, member: nil, reason: "extended header cut short")
                }
                _ = try skip(Self.padded(size) - size)
                if type == UInt8(ascii: "L") {
                    longName = Self.string(data[...])
                } else if let p = Self.paxPath(data) {
                    longName = p
                }
            default:
                // Directories, links, devices, global pax headers: nothing to read.
                let skipped = try skip(Self.padded(size))
                guard skipped == Self.padded(size) else {
                    finished = true
                    throw TarError.truncated(path: path, offset: offset, member: name, reason: "entry cut short")
                }
            }
        }
    }

    static func string<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }

    static func octal(_ field: ArraySlice<UInt8>) -> Int? {
        let digits = field.drop { $0 == 32 || $0 == 0 }.prefix { $0 >= 48 && $0 <= 55 }
        guard !digits.isEmpty else { return nil }
        var v = 0
        for d in digits {
            guard v < 1 << 50 else { return nil }
            v = v * 8 + Int(d - 48)
        }
        return v
    }

    /// Octal, or GNU's base-256 (first byte 0x80) for members of 8 GiB and more.
    static func size(_ field: ArraySlice<UInt8>) -> Int? {
        if let first = field.first, first & 0x80 != 0 {
            var v = Int(first & 0x7F)
            for b in field.dropFirst() {
                guard v < 1 << 48 else { return nil }
                v = v << 8 | Int(b)
            }
            return v
        }
        return octal(field)
    }

    /// The `path` record of a pax header ("LEN path=VALUE\n" records).
    static func paxPath(_ data: Data) -> String? {
        let bytes = [UInt8](data)
        var i = 0
        while i < bytes.count {
            guard let space = bytes[i...].firstIndex(of: 32), let length = Int(String(decoding: bytes[i..<space], as: UTF8.self)),
                  length > space - i, length <= bytes.count - i else { return nil }
            let record = bytes[(space + 1)..<(i + length)]
            if let eq = record.firstIndex(of: UInt8(ascii: "=")), String(decoding: record[..<eq], as: UTF8.self) == "path" {
                var value = record[(eq + 1)...]
                if value.last == 10 { value = value.dropLast() }
                return String(decoding: value, as: UTF8.self)
            }
            i += length
        }
        return nil
    }
}

/// Writes a ustar archive member by member to a file (make-shards). Names up to 100 bytes.
public final class TarWriter {
    public let path: String
    private let handle: FileHandle

    public init(path: String) throws {
        self.path = path
        guard FileManager.default.createFile(atPath: path, contents: nil), let h = FileHandle(forWritingAtPath: path) else {
            throw TarError.cannotOpen(path: path, reason: "cannot create it for writing")
        }
        handle = h
    }

    public func add(name: String, data: Data, modificationTime: Int = 0) throws {
        let nameBytes = Array(name.utf8)
        guard !nameBytes.isEmpty, nameBytes.count <= 100 else {
            throw TarError.badHeader(path: path, offset: 0, after: nil, reason: "member name '\(name)' must be 1–100 bytes")
        }
        var h = [UInt8](repeating: 0, count: 512)
        func put(_ s: String, at offset: Int) { for (i, b) in s.utf8.enumerated() { h[offset + i] = b } }
        func octal(_ v: Int, width: Int) -> String { String(repeating: "0", count: max(0, width - 1 - String(v, radix: 8).count)) + String(v, radix: 8) }
        put(name, at: 0)
        put(octal(0o644, width: 8), at: 100)
        put(octal(0, width: 8), at: 108)
        put(octal(0, width: 8), at: 116)
        put(octal(data.count, width: 12), at: 124)
        put(octal(modificationTime, width: 12), at: 136)
        h[156] = UInt8(ascii: "0")
        put("ustar", at: 257)
        put("00", at: 263)
        for i in 148..<156 { h[i] = 32 }
        let sum = h.reduce(0) { $0 + Int($1) }
        put(octal(sum, width: 7), at: 148)
        h[155] = 0
        try write(Data(h))
        try write(data)
        let pad = TarReader.padded(data.count) - data.count
        if pad > 0 { try write(Data(count: pad)) }
    }

    /// The two zero blocks that end an archive, then fsync and close.
    public func finish() throws {
        try write(Data(count: 1024))
        do { try handle.synchronize(); try handle.close() } catch {
            throw TarError.cannotOpen(path: path, reason: "cannot finish writing (\(error.localizedDescription))")
        }
    }

    private func write(_ data: Data) throws {
        do { try handle.write(contentsOf: data) } catch {
            throw TarError.cannotOpen(path: path, reason: "write failed (\(error.localizedDescription))")
        }
    }
}
