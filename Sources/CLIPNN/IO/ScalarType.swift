import CLIPEngine
import Foundation

/// Element types found in weight and array files, decoded to Float32 (and to Int for indices).
/// Both safetensors and .npy store them little-endian; this code assumes a little-endian host
/// (x86-64, arm64).
enum ScalarType: Equatable, Sendable {
    case f64, f32, f16, bf16, f8e4m3, f8e5m2
    case i64, i32, i16, i8
    case u64, u32, u16, u8
    case bool

    var byteSize: Int {
        switch self {
        case .f64, .i64, .u64: return 8
        case .f32, .i32, .u32: return 4
        case .f16, .bf16, .i16, .u16: return 2
        case .f8e4m3, .f8e5m2, .i8, .u8, .bool: return 1
        }
    }

    var isFloatingPoint: Bool {
        switch self {
        case .f64, .f32, .f16, .bf16, .f8e4m3, .f8e5m2: return true
        default: return false
        }
    }
}

#if _endian(big)
#error("SwiftCLIP's file I/O assumes a little-endian host")
#endif

// MARK: - Scalar bit conversions

/// IEEE half → single, exact (subnormals, ±0, ±inf and NaN included).
@inline(__always) func floatFromHalf(_ bits: UInt16) -> Float { Float(Float16(bitPattern: bits)) }

/// bfloat16 is the upper half of a float32: exact by shifting.
@inline(__always) func floatFromBFloat16(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

/// float8 e5m2 is the upper byte of an IEEE half.
@inline(__always) func floatFromF8E5M2(_ bits: UInt8) -> Float { floatFromHalf(UInt16(bits) << 8) }

/// float8 e4m3fn (bias 7, no infinities, S.1111.111 is NaN).
@inline(__always) func floatFromF8E4M3(_ bits: UInt8) -> Float {
    let sign: Float = bits & 0x80 != 0 ? -1 : 1
    let e = Int((bits >> 3) & 0xF), m = Float(bits & 7)
    if e == 15 && bits & 7 == 7 { return .nan }
    if e == 0 { return sign * m * 0x1p-9 }
    return sign * (1 + m / 8) * Float(sign: .plus, exponent: e - 7, significand: 1)
}

// MARK: - Bulk decoding

/// Elements per chunk below which decoding stays on the calling thread.
private let parallelDecodeThreshold = 1 << 20

/// Decodes `count` little-endian elements of `type` at `source` (any alignment) into `destination`.
/// Large arrays are split over the engine's threads: decoding a mapped file is bound by page
/// faults and memory bandwidth, which a second core helps with.
func decodeFloats(_ type: ScalarType, from source: UnsafeRawPointer, count: Int, into destination: UnsafeMutablePointer<Float>) {
    if count >= parallelDecodeThreshold {
        Parallel.forEachChunk(count, workPerItem: 1) { range in
            decodeFloatRange(type, source, destination, range)
        }
    } else {
        decodeFloatRange(type, source, destination, 0..<count)
    }
}

private func decodeFloatRange(_ type: ScalarType, _ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ range: Range<Int>) {
    @inline(__always) func map<T>(_: T.Type, _ f: (T) -> Float) {
        let size = MemoryLayout<T>.size
        for i in range { dst[i] = f(src.loadUnaligned(fromByteOffset: i * size, as: T.self)) }
    }
    switch type {
    case .f32:
        UnsafeMutableRawPointer(dst + range.lowerBound)
            .copyMemory(from: src + range.lowerBound * 4, byteCount: range.count * 4)
    case .f64: map(Double.self) { Float($0) }
    case .f16: map(UInt16.self, floatFromHalf)
    case .bf16: map(UInt16.self, floatFromBFloat16)
    case .f8e4m3: map(UInt8.self, floatFromF8E4M3)
    case .f8e5m2: map(UInt8.self, floatFromF8E5M2)
    case .i64: map(Int64.self) { Float($0) }
    case .i32: map(Int32.self) { Float($0) }
    case .i16: map(Int16.self) { Float($0) }
    case .i8: map(Int8.self) { Float($0) }
    case .u64: map(UInt64.self) { Float($0) }
    case .u32: map(UInt32.self) { Float($0) }
    case .u16: map(UInt16.self) { Float($0) }
    case .u8: map(UInt8.self) { Float($0) }
    case .bool: map(UInt8.self) { $0 != 0 ? 1 : 0 }
    }
}

/// Why an element could not become an `Int`.
struct IntegerConversionFailure: Error {
    let index: Int
    let value: String
}

/// Decodes elements to `Int`. Floating-point elements must be finite and integral; unsigned
/// 64-bit elements must fit in `Int`.
func decodeInts(_ type: ScalarType, from source: UnsafeRawPointer, count: Int) throws -> [Int] {
    var out = [Int]()
    out.reserveCapacity(count)
    func each<T>(_: T.Type, _ f: (T) -> Int?, describe: (T) -> String = { "\($0)" }) throws {
        let size = MemoryLayout<T>.size
        for i in 0..<count {
            let v = source.loadUnaligned(fromByteOffset: i * size, as: T.self)
            guard let n = f(v) else { throw IntegerConversionFailure(index: i, value: describe(v)) }
            out.append(n)
        }
    }
    /// Floating-point storage `T` whose elements widen exactly to Double through `widen`.
    func floats<T>(_: T.Type, _ widen: @escaping (T) -> Double) throws {
        try each(T.self, { Int(exactly: widen($0)) }, describe: { "\(widen($0))" })
    }
    switch type {
    case .f64: try floats(Double.self) { $0 }
    case .f32: try floats(Float.self) { Double($0) }
    case .f16: try floats(UInt16.self) { Double(floatFromHalf($0)) }
    case .bf16: try floats(UInt16.self) { Double(floatFromBFloat16($0)) }
    case .f8e4m3: try floats(UInt8.self) { Double(floatFromF8E4M3($0)) }
    case .f8e5m2: try floats(UInt8.self) { Double(floatFromF8E5M2($0)) }
    case .i64: try each(Int64.self) { Int($0) }
    case .i32: try each(Int32.self) { Int($0) }
    case .i16: try each(Int16.self) { Int($0) }
    case .i8: try each(Int8.self) { Int($0) }
    case .u64: try each(UInt64.self) { Int(exactly: $0) }
    case .u32: try each(UInt32.self) { Int($0) }
    case .u16: try each(UInt16.self) { Int($0) }
    case .u8, .bool: try each(UInt8.self) { Int($0) }
    }
    return out
}

/// Decodes `count` elements into a new tensor of `shape` (whose element count the caller checked).
func decodeTensor(_ type: ScalarType, from source: UnsafeRawPointer?, shape: [Int], count: Int) -> Tensor {
    let t = Tensor(uninitializedShape: shape)
    if count > 0, let source { decodeFloats(type, from: source, count: count, into: t.storage.pointer) }
    return t
}
