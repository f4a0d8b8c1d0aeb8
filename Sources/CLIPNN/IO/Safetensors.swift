import CLIPEngine
import Foundation

/// A safetensors file that cannot be read or written. Every case names the file; cases about one
/// tensor name its key, and header syntax errors give the byte offset in the file.
public enum SafetensorsError: Error, CustomStringConvertible, Equatable {
    /// The operating system refused (open, map, write, rename...).
    case io(file: String, message: String)
    /// Fewer than the 8 bytes of the header length.
    case fileTooShort(file: String, size: Int)
    /// The header length field is larger than the file or than the 100 MB limit.
    case invalidHeaderLength(file: String, length: UInt64, fileSize: Int)
    /// The header is not a JSON object (`offset` is from the start of the file).
    case invalidHeader(file: String, offset: Int, message: String)
    /// A tensor entry (or `__metadata__`) is malformed: missing field, bad shape, bad offsets.
    case invalidEntry(file: String, key: String, message: String)
    case unknownDtype(file: String, key: String, dtype: String)
    /// `data_offsets` span a different byte count than `shape` × dtype size.
    case sizeMismatch(file: String, key: String, shape: [Int], dtype: String, expectedBytes: Int, actualBytes: Int)
    /// The data section ends before the tensor's bytes do.
    case truncated(file: String, key: String, begin: Int, end: Int, available: Int)
    case keyNotFound(file: String, key: String)
    /// Bad input to `write` (e.g. the reserved key `__metadata__`).
    case invalidArgument(file: String, message: String)

    public var description: String {
        switch self {
        case let .io(file, message):
            return "\(file): \(message)"
        case let .fileTooShort(file, size):
            return "\(file): not a safetensors file: \(size) bytes, shorter than the 8-byte header length"
        case let .invalidHeaderLength(file, length, fileSize):
            return "\(file): header length \(length) is impossible for a file of \(fileSize) bytes (limit \(Safetensors.maximumHeaderLength))"
        case let .invalidHeader(file, offset, message):
            return "\(file): invalid header at byte \(offset): \(message)"
        case let .invalidEntry(file, key, message):
            return "\(file): tensor '\(key)': \(message)"
        case let .unknownDtype(file, key, dtype):
            return "\(file): tensor '\(key)': unknown dtype \"\(dtype)\""
        case let .sizeMismatch(file, key, shape, dtype, expected, actual):
            return "\(file): tensor '\(key)': shape \(shape) of \(dtype) needs \(expected) bytes but data_offsets span \(actual)"
        case let .truncated(file, key, begin, end, available):
            return "\(file): truncated: tensor '\(key)' needs bytes \(begin)..<\(end) but the data section has only \(available) bytes"
        case let .keyNotFound(file, key):
            return "\(file): no tensor named '\(key)'"
        case let .invalidArgument(file, message):
            return "\(file): \(message)"
        }
    }
}

/// A parsed safetensors file. The file is memory-mapped and its header fully validated by
/// `read`; tensors are decoded to Float32 only when asked for.
public struct SafetensorsFile {
    struct Entry {
        let dtype: String
        let type: ScalarType
        let shape: [Int]
        let count: Int
        let begin: Int
        let end: Int
    }

    public let url: URL
    public let metadata: [String: String]
    /// Tensor names, sorted.
    public let keys: [String]
    private let entries: [String: Entry]
    private let bytes: FileBytes
    private let dataStart: Int

    public static func read(_ url: URL) throws -> SafetensorsFile {
        let file = url.path
        let bytes: FileBytes
        do { bytes = try FileBytes(contentsOf: url) } catch let e as FileIOFailure {
            throw SafetensorsError.io(file: file, message: e.message)
        }
        guard bytes.count >= 8, let base = bytes.base else {
            throw SafetensorsError.fileTooShort(file: file, size: bytes.count)
        }
        let headerLength = UInt64(littleEndian: base.loadUnaligned(as: UInt64.self))
        guard headerLength <= UInt64(bytes.count - 8), headerLength <= UInt64(Safetensors.maximumHeaderLength) else {
            throw SafetensorsError.invalidHeaderLength(file: file, length: headerLength, fileSize: bytes.count)
        }
        let dataStart = 8 + Int(headerLength)
        let root: Literal
        do { root = try LiteralParser.parse(bytes.bytes(8..<dataStart), dialect: .json) } catch let e as LiteralSyntaxError {
            throw SafetensorsError.invalidHeader(file: file, offset: 8 + e.offset, message: e.message)
        }
        guard case .object(let members) = root else {
            throw SafetensorsError.invalidHeader(file: file, offset: 8, message: "the header is not a JSON object")
        }
        let available = bytes.count - dataStart
        var entries: [String: Entry] = [:]
        var metadata: [String: String] = [:]
        for (key, value) in members {
            if key == Safetensors.metadataKey {
                metadata = try parseMetadata(value, file: file)
            } else {
                entries[key] = try parseEntry(key: key, value: value, available: available, file: file)
            }
        }
        return SafetensorsFile(url: url, metadata: metadata, keys: entries.keys.sorted(), entries: entries,
                               bytes: bytes, dataStart: dataStart)
    }

    private static func parseMetadata(_ value: Literal, file: String) throws -> [String: String] {
        guard case .object(let members) = value else {
            throw SafetensorsError.invalidEntry(file: file, key: Safetensors.metadataKey, message: "must be an object of strings")
        }
        return try members.mapValues {
            guard case .string(let s) = $0 else {
                throw SafetensorsError.invalidEntry(file: file, key: Safetensors.metadataKey, message: "values must be strings, found \($0.summary)")
            }
            return s
        }
    }

    private static func parseEntry(key: String, value: Literal, available: Int, file: String) throws -> Entry {
        func fail(_ message: String) -> SafetensorsError { .invalidEntry(file: file, key: key, message: message) }
        guard case .object(let fields) = value else { throw fail("entry is not an object") }
        guard let dtypeField = fields["dtype"] else { throw fail("missing \"dtype\"") }
        guard let shapeField = fields["shape"] else { throw fail("missing \"shape\"") }
        guard let offsetsField = fields["data_offsets"] else { throw fail("missing \"data_offsets\"") }
        guard case .string(let dtype) = dtypeField else { throw fail("\"dtype\" is not a string") }
        guard let type = Safetensors.dtypes[dtype] else {
            throw SafetensorsError.unknownDtype(file: file, key: key, dtype: dtype)
        }
        func integers(_ field: Literal, _ name: String) throws -> [Int] {
            guard case .array(let items) = field else { throw fail("\"\(name)\" is not a list") }
            return try items.map {
                guard case .integer(let n) = $0 else { throw fail("\"\(name)\" holds \($0.summary), not an integer in range") }
                guard n >= 0 else { throw fail("\"\(name)\" holds a negative value \(n)") }
                return n
            }
        }
        let shape = try integers(shapeField, "shape")
        let offsets = try integers(offsetsField, "data_offsets")
        guard offsets.count == 2 else { throw fail("\"data_offsets\" must hold 2 values, not \(offsets.count)") }
        let (begin, end) = (offsets[0], offsets[1])
        guard begin <= end else { throw fail("data_offsets [\(begin), \(end)] end before they begin") }
        guard let count = checkedElementCount(shape) else { throw fail("shape \(shape) is too large") }
        let (bytesNeeded, overflow) = count.multipliedReportingOverflow(by: type.byteSize)
        guard !overflow else { throw fail("shape \(shape) is too large") }
        guard bytesNeeded == end - begin else {
            throw SafetensorsError.sizeMismatch(file: file, key: key, shape: shape, dtype: dtype,
                                                expectedBytes: bytesNeeded, actualBytes: end - begin)
        }
        guard end <= available else {
            throw SafetensorsError.truncated(file: file, key: key, begin: begin, end: end, available: available)
        }
        return Entry(dtype: dtype, type: type, shape: shape, count: count, begin: begin, end: end)
    }

    public func info(_ key: String) -> (dtype: String, shape: [Int])? {
        entries[key].map { ($0.dtype, $0.shape) }
    }

    /// The tensor converted to Float32 (from F32, F16, BF16, F64, F8 or any integer/bool dtype;
    /// 64-bit integers beyond 2^24 round).
    public func tensor(_ key: String) throws -> Tensor {
        guard let e = entries[key] else { throw SafetensorsError.keyNotFound(file: url.path, key: key) }
        let t = decodeTensor(e.type, from: bytes.base.map { $0 + dataStart + e.begin }, shape: e.shape, count: e.count)
        // The decoded copy is what the model keeps: the file's pages need not stay resident too.
        bytes.dropPages(dataStart + e.begin ..< dataStart + e.end)
        return t
    }

    /// Every tensor, decoded.
    public func tensors() throws -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for key in keys { out[key] = try tensor(key) }
        return out
    }
}

public enum Safetensors {
    /// Headers longer than this are rejected as corrupt (the Python library uses the same limit).
    public static let maximumHeaderLength = 100_000_000
    static let metadataKey = "__metadata__"

    static let dtypes: [String: ScalarType] = [
        "F64": .f64, "F32": .f32, "F16": .f16, "BF16": .bf16, "F8_E4M3": .f8e4m3, "F8_E5M2": .f8e5m2,
        "I64": .i64, "I32": .i32, "I16": .i16, "I8": .i8,
        "U64": .u64, "U32": .u32, "U16": .u16, "U8": .u8, "BOOL": .bool,
    ]

    /// Writes `tensors` as F32, keys sorted, header padded with spaces to a multiple of 8 bytes as
    /// the Python library does. Atomic: `url` is either left untouched or replaced by the whole file.
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = [:], to url: URL) throws {
        let file = url.path
        guard tensors[metadataKey] == nil else {
            throw SafetensorsError.invalidArgument(file: file, message: "'\(metadataKey)' is reserved and cannot name a tensor")
        }
        let keys = tensors.keys.sorted()
        var header = "{"
        if !metadata.isEmpty {
            header += jsonString(metadataKey) + ":{"
            header += metadata.keys.sorted().map { jsonString($0) + ":" + jsonString(metadata[$0]!) }.joined(separator: ",")
            header += "},"
        }
        var offset = 0
        header += keys.map { key in
            let t = tensors[key]!
            let begin = offset
            offset += t.count * MemoryLayout<Float>.size
            let shape = t.shape.map(String.init).joined(separator: ",")
            return "\(jsonString(key)):{\"dtype\":\"F32\",\"shape\":[\(shape)],\"data_offsets\":[\(begin),\(offset)]}"
        }.joined(separator: ",")
        header += "}"
        var headerBytes = Array(header.utf8)
        headerBytes += [UInt8](repeating: 0x20, count: (8 - headerBytes.count % 8) % 8)
        do {
            try AtomicFileWriter.write(to: url) { w in
                try withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { try w.write($0) }
                try w.write(headerBytes)
                for key in keys {
                    try tensors[key]!.withUnsafeBufferPointer { try w.write(UnsafeRawBufferPointer($0)) }
                }
            }
        } catch let e as FileIOFailure {
            throw SafetensorsError.io(file: file, message: e.message)
        }
    }

    /// A JSON string literal (quotes, backslashes and control characters escaped).
    static func jsonString(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20: out += String(format: "\\u%04x", u.value)
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
}
