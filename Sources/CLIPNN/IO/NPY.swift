import CLIPEngine
import Foundation

/// A .npy file that cannot be read or written, or an array that cannot be converted. Every case
/// names the file.
public enum NPYError: Error, CustomStringConvertible, Equatable {
    case io(file: String, message: String)
    /// The file does not start with `\x93NUMPY`.
    case badMagic(file: String)
    case unsupportedVersion(file: String, major: Int, minor: Int)
    /// The header dictionary is malformed (`offset` is from the start of the file when known).
    case invalidHeader(file: String, offset: Int, message: String)
    /// Column-major arrays are not supported; save with `np.ascontiguousarray` first.
    case fortranOrder(file: String)
    /// A dtype this reader does not decode (object, strings, structured, big-endian, complex...).
    case unsupportedDtype(file: String, descr: String, reason: String)
    /// The file ends before its header or data does.
    case truncated(file: String, expectedBytes: Int, availableBytes: Int)
    /// The data section has bytes beyond the array `shape` describes.
    case trailingData(file: String, expectedBytes: Int, availableBytes: Int)
    /// An element cannot be represented as asked (`intValues` on 2.5, or an out-of-range uint64).
    case notInteger(file: String, index: Int, value: String)
    case invalidArgument(file: String, message: String)

    public var description: String {
        switch self {
        case let .io(file, message): return "\(file): \(message)"
        case let .badMagic(file): return "\(file): not a .npy file (no \\x93NUMPY magic)"
        case let .unsupportedVersion(file, major, minor): return "\(file): unsupported .npy format version \(major).\(minor)"
        case let .invalidHeader(file, offset, message): return "\(file): invalid .npy header at byte \(offset): \(message)"
        case let .fortranOrder(file): return "\(file): Fortran-order (column-major) arrays are not supported; save a C-contiguous array"
        case let .unsupportedDtype(file, descr, reason): return "\(file): unsupported dtype '\(descr)': \(reason)"
        case let .truncated(file, expected, available):
            return "\(file): truncated: needs \(expected) bytes of data but the file has only \(available)"
        case let .trailingData(file, expected, available):
            return "\(file): \(available - expected) unexpected bytes after the \(expected) bytes of array data"
        case let .notInteger(file, index, value): return "\(file): element \(index) = \(value) is not an integer that fits in Int"
        case let .invalidArgument(file, message): return "\(file): \(message)"
        }
    }
}

/// An array read from a .npy file, decoded on demand. The bytes stay memory-mapped.
public struct NPYArray {
    public var shape: [Int]
    /// NumPy's type string, e.g. "<f4", "<f8", "<i4", "<i8", "|u1".
    public var dtype: String
    public let url: URL
    private let bytes: FileBytes
    private let dataStart: Int

    init(shape: [Int], dtype: String, url: URL, bytes: FileBytes, dataStart: Int) {
        self.shape = shape
        self.dtype = dtype
        self.url = url
        self.bytes = bytes
        self.dataStart = dataStart
    }

    /// The elements converted to Float32 (f2/f4/f8, signed and unsigned integers, bool).
    public func floatTensor() throws -> Tensor {
        let (type, count) = try validated()
        return decodeTensor(type, from: bytes.base.map { $0 + dataStart }, shape: shape, count: count)
    }

    /// The elements as `Int` (integer dtypes; floating-point ones only if every value is integral).
    public func intValues() throws -> [Int] {
        let (type, count) = try validated()
        guard count > 0, let base = bytes.base else { return [] }
        do { return try decodeInts(type, from: base + dataStart, count: count) } catch let e as IntegerConversionFailure {
            throw NPYError.notInteger(file: url.path, index: e.index, value: e.value)
        }
    }

    /// Checks `dtype` and `shape` (both public and mutable) against the data's byte count.
    fileprivate func validated() throws -> (ScalarType, Int) {
        let file = url.path
        let type = try NPY.scalarType(descr: dtype, file: file)
        guard let count = checkedElementCount(shape) else {
            throw NPYError.invalidHeader(file: file, offset: 0, message: "invalid shape \(shape)")
        }
        let available = bytes.count - dataStart
        let (needed, overflow) = count.multipliedReportingOverflow(by: type.byteSize)
        guard !overflow, needed <= available else {
            throw NPYError.truncated(file: file, expectedBytes: overflow ? Int.max : needed, availableBytes: available)
        }
        guard needed == available else {
            throw NPYError.trailingData(file: file, expectedBytes: needed, availableBytes: available)
        }
        return (type, count)
    }
}

/// NumPy's .npy format, versions 1.0, 2.0 and 3.0. Little-endian, C-order arrays only:
/// big-endian ('>f4') and Fortran-order files are rejected with a clear error rather than
/// converted (NumPy never writes them unless asked to).
public enum NPY {
    static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)
    /// NumPy aligns the start of the data to this many bytes.
    static let alignment = 64
    /// NumPy leaves this much spare space in headers it writes (`GROWTH_AXIS_MAX_DIGITS`).
    static let growthDigits = 21

    public static func read(_ url: URL) throws -> NPYArray {
        let file = url.path
        let bytes: FileBytes
        do { bytes = try FileBytes(contentsOf: url) } catch let e as FileIOFailure {
            throw NPYError.io(file: file, message: e.message)
        }
        let prefix = bytes.bytes(0..<min(bytes.count, 12))
        guard prefix.count >= magic.count, Array(prefix[0..<magic.count]) == magic else { throw NPYError.badMagic(file: file) }
        guard prefix.count >= 10 else { throw NPYError.truncated(file: file, expectedBytes: 10, availableBytes: bytes.count) }
        let (major, minor) = (Int(prefix[6]), Int(prefix[7]))
        let headerStart: Int, headerLength: Int
        switch (major, minor) {
        case (1, 0):
            headerStart = 10
            headerLength = Int(prefix[8]) | Int(prefix[9]) << 8
        case (2, 0), (3, 0):
            guard prefix.count >= 12 else { throw NPYError.truncated(file: file, expectedBytes: 12, availableBytes: bytes.count) }
            headerStart = 12
            headerLength = prefix[8..<12].reversed().reduce(0) { $0 << 8 | Int($1) }
        default:
            throw NPYError.unsupportedVersion(file: file, major: major, minor: minor)
        }
        let dataStart = headerStart + headerLength
        guard dataStart <= bytes.count else {
            throw NPYError.truncated(file: file, expectedBytes: dataStart, availableBytes: bytes.count)
        }
        let header: Literal
        do {
            header = try LiteralParser.parse(bytes.bytes(headerStart..<dataStart), dialect: .python(latin1: major < 3))
        } catch let e as LiteralSyntaxError {
            throw NPYError.invalidHeader(file: file, offset: headerStart + e.offset, message: e.message)
        }
        func fail(_ message: String) -> NPYError { .invalidHeader(file: file, offset: headerStart, message: message) }
        guard case .object(let dict) = header else { throw fail("the header is not a dictionary") }
        let expectedKeys: Set = ["descr", "fortran_order", "shape"]
        guard Set(dict.keys) == expectedKeys else {
            throw fail("the header has keys \(dict.keys.sorted()), expected \(expectedKeys.sorted())")
        }
        guard case .string(let descr) = dict["descr"]! else {
            throw NPYError.unsupportedDtype(file: file, descr: dict["descr"]!.summary, reason: "structured dtypes are not supported")
        }
        guard case .bool(let fortran) = dict["fortran_order"]! else { throw fail("'fortran_order' is not True or False") }
        guard case .array(let dims) = dict["shape"]! else { throw fail("'shape' is not a tuple") }
        let shape = try dims.map { d -> Int in
            guard case .integer(let n) = d, n >= 0 else { throw fail("'shape' holds \(d.summary), not a non-negative integer") }
            return n
        }
        if fortran && shape.filter({ $0 > 1 }).count > 1 { throw NPYError.fortranOrder(file: file) }
        let array = NPYArray(shape: shape, dtype: descr, url: url, bytes: bytes, dataStart: dataStart)
        _ = try array.validated()
        return array
    }

    /// The element type for a NumPy type string.
    static func scalarType(descr: String, file: String) throws -> ScalarType {
        func unsupported(_ reason: String) -> NPYError { .unsupportedDtype(file: file, descr: descr, reason: reason) }
        guard let order = descr.first else { throw unsupported("empty type string") }
        let code = String(descr.dropFirst())
        let types: [String: ScalarType] = [
            "f2": .f16, "f4": .f32, "f8": .f64,
            "i1": .i8, "i2": .i16, "i4": .i32, "i8": .i64,
            "u1": .u8, "u2": .u16, "u4": .u32, "u8": .u64, "b1": .bool,
        ]
        guard "<>|=".contains(order), let type = types[code] else {
            if code.hasPrefix("O") { throw unsupported("object arrays hold Python objects, not numbers") }
            throw unsupported("only f2/f4/f8, i1/i2/i4/i8, u1/u2/u4/u8 and b1 are supported")
        }
        if order == ">" && type.byteSize > 1 { throw unsupported("big-endian data is not supported; save with '<' byte order") }
        return type
    }

    /// Writes `tensor` as '<f4', C order, format 1.0, with the header padded so the data starts at
    /// a multiple of 64 bytes, byte for byte as `np.save` does. Atomic (temporary file + rename).
    public static func write(_ tensor: Tensor, to url: URL) throws {
        try write(descr: "<f4", shape: tensor.shape, to: url) { w in
            try tensor.withUnsafeBufferPointer { try w.write(UnsafeRawBufferPointer($0)) }
        }
    }

    /// Writes `values` as '<i4' with `shape`.
    public static func write(int32 values: [Int32], shape: [Int], to url: URL) throws {
        guard let count = checkedElementCount(shape), count == values.count else {
            throw NPYError.invalidArgument(file: url.path, message: "shape \(shape) does not hold \(values.count) values")
        }
        try write(descr: "<i4", shape: shape, to: url) { w in
            try values.map(\.littleEndian).withUnsafeBytes { try w.write($0) }
        }
    }

    /// The magic, version, length and header of an array, padded as `np.save` pads it. NumPy leaves
    /// room for the first dimension to grow to `growthDigits` digits, so the header of (n, ...)
    /// has the same length for every n — which lets `NPYRowWriter` rewrite it in place at the end.
    static func header(descr: String, shape: [Int]) -> [UInt8] {
        let shapeRepr = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeRepr), }"
        if let first = shape.first { header += String(repeating: " ", count: max(0, growthDigits - String(first).count)) }
        var bytes = Array(header.utf8)
        var version: UInt8 = 1
        var prefixLength = magic.count + 2 + 2
        var padding = alignment - (prefixLength + bytes.count + 1) % alignment
        if bytes.count + 1 + padding > Int(UInt16.max) {
            version = 2
            prefixLength = magic.count + 2 + 4
            padding = alignment - (prefixLength + bytes.count + 1) % alignment
        }
        bytes += [UInt8](repeating: 0x20, count: padding) + [0x0A]
        var out = magic + [version, 0]
        let length = UInt32(bytes.count)
        out += version == 1 ? [UInt8(length & 0xFF), UInt8(length >> 8)] : (0..<4).map { UInt8((length >> (8 * $0)) & 0xFF) }
        return out + bytes
    }

    private static func write(descr: String, shape: [Int], to url: URL, data: (AtomicFileWriter) throws -> Void) throws {
        let out = header(descr: descr, shape: shape)
        do {
            try AtomicFileWriter.write(to: url) { w in
                try w.write(out)
                try data(w)
            }
        } catch let e as FileIOFailure {
            throw NPYError.io(file: url.path, message: e.message)
        }
    }
}

/// A float32 .npy of shape (rows, rowShape...) written block by block while the number of rows is
/// not yet known, so that embedding any number of inputs needs memory for one batch only. The
/// header goes first with 0 rows and is rewritten in place by `finish()` (same length: see
/// `NPY.header`); the file is atomic like every output (temporary file, fsync, rename), so an
/// interrupted run leaves no half-written array. A FIFO or device cannot be rewritten: there the
/// rows are kept in memory and written at `finish()`.
public final class NPYRowWriter {
    public let url: URL
    public let rowShape: [Int]
    public private(set) var rows = 0
    private let writer: AtomicFileWriter
    private let rowCount: Int
    private var spooled: [Float] = []

    public init(url: URL, rowShape: [Int]) throws {
        guard let count = checkedElementCount(rowShape), count > 0 else {
            throw NPYError.invalidArgument(file: url.path, message: "row shape \(rowShape) holds no values")
        }
        self.url = url
        self.rowShape = rowShape
        self.rowCount = count
        do {
            writer = try AtomicFileWriter(destination: url)
            if writer.isSeekable { try writer.write(NPY.header(descr: "<f4", shape: [0] + rowShape)) }
        } catch let e as FileIOFailure {
            throw NPYError.io(file: url.path, message: e.message)
        }
    }

    /// Appends the rows of `block`, whose shape must be (n, rowShape...).
    public func append(_ block: Tensor) throws {
        guard block.rank == rowShape.count + 1, Array(block.shape.dropFirst()) == rowShape else {
            throw NPYError.invalidArgument(file: url.path, message: "rows of shape \(Array(block.shape.dropFirst())), expected \(rowShape)")
        }
        do {
            try block.withUnsafeBufferPointer { values in
                if writer.isSeekable { try writer.write(UnsafeRawBufferPointer(values)) } else { spooled += values }
            }
        } catch let e as FileIOFailure {
            throw NPYError.io(file: url.path, message: e.message)
        }
        rows += block.shape[0]
    }

    /// Writes the final header and puts the file in place.
    public func finish() throws {
        do {
            let header = NPY.header(descr: "<f4", shape: [rows] + rowShape)
            if writer.isSeekable {
                try header.withUnsafeBytes { try writer.write($0, atOffset: 0) }
            } else {
                try writer.write(header)
                try spooled.withUnsafeBytes { try writer.write($0) }
            }
            try writer.commit()
        } catch let e as FileIOFailure {
            throw NPYError.io(file: url.path, message: e.message)
        }
    }
}
