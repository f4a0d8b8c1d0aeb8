// gzip (RFC 1952) and DEFLATE (RFC 1951) decompression, so the tokenizer can read
// `bpe_simple_vocab_16e6.txt.gz` as open_clip ships it without linking zlib.
// Decoding is table-free and canonical-Huffman based (as in zlib's "puff"): small, and fast
// enough for a 1.3 MB file read once.

import CLIPEngine

public enum GzipError: Error, CustomStringConvertible, Equatable {
    case notGzip
    case unsupportedMethod(UInt8)
    case truncated
    case invalidBlockType
    case invalidStoredLength
    case invalidHuffmanCode(String)
    case invalidDistance
    case checksumMismatch(expected: UInt32, actual: UInt32)
    case sizeMismatch(expected: UInt32, actual: UInt32)
    /// The data inflates past the caller's limit (a gzip bomb, or not the expected file).
    case outputTooLarge(limit: Int)

    public var description: String {
        switch self {
        case .notGzip: return "not a gzip stream (bad magic bytes)"
        case .unsupportedMethod(let m): return "unsupported gzip compression method \(m)"
        case .truncated: return "gzip stream is truncated"
        case .invalidBlockType: return "invalid DEFLATE block type"
        case .invalidStoredLength: return "stored DEFLATE block length check failed"
        case .invalidHuffmanCode(let what): return "invalid Huffman code: \(what)"
        case .invalidDistance: return "DEFLATE back-reference points before the start of the output"
        case .checksumMismatch(let e, let a):
            return "gzip CRC-32 mismatch (header says \(hex(e)), data gives \(hex(a)))"
        case .sizeMismatch(let e, let a): return "gzip size mismatch (trailer says \(e), data gives \(a))"
        case .outputTooLarge(let limit): return "decompresses to more than \(limit) bytes, the limit"
        }
    }

    private func hex(_ v: UInt32) -> String { "0x" + String(v, radix: 16) }
}

/// Decompresses a gzip file (all members, as `gzip.open(...).read()` does) and checks each
/// member's CRC-32 and size. Output beyond `maximumBytes` stops the inflation with
/// `GzipError.outputTooLarge`, so a small bomb costs no more than the limit.
public func gunzip(_ data: [UInt8], maximumBytes: Int = Int.max) throws -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(min(data.count * 4, maximumBytes))
    var pos = 0
    repeat {
        let start = out.count
        pos = try gzipHeaderEnd(data, from: pos)
        var inflater = Inflater(data, start: pos, limit: maximumBytes)
        try inflater.inflate(into: &out)
        pos = inflater.bytePosition
        guard pos + 8 <= data.count else { throw GzipError.truncated }
        let le32 = { (p: Int) -> UInt32 in
            UInt32(data[p]) | UInt32(data[p + 1]) << 8 | UInt32(data[p + 2]) << 16 | UInt32(data[p + 3]) << 24
        }
        let member = Array(out[start...])
        let crc = crc32(member)
        if crc != le32(pos) { throw GzipError.checksumMismatch(expected: le32(pos), actual: crc) }
        let size = UInt32(truncatingIfNeeded: member.count)
        if size != le32(pos + 4) { throw GzipError.sizeMismatch(expected: le32(pos + 4), actual: size) }
        pos += 8
        // Python's gzip skips zero padding after the last member.
        while pos < data.count && data[pos] == 0 { pos += 1 }
    } while pos < data.count
    return out
}

/// Parses a gzip member header (RFC 1952 §2.3) and returns the offset of its DEFLATE data.
private func gzipHeaderEnd(_ d: [UInt8], from start: Int) throws -> Int {
    guard d.count >= start + 10 else { throw start == 0 && d.count < 2 ? GzipError.notGzip : GzipError.truncated }
    guard d[start] == 0x1F, d[start + 1] == 0x8B else { throw GzipError.notGzip }
    guard d[start + 2] == 8 else { throw GzipError.unsupportedMethod(d[start + 2]) }
    let flags = d[start + 3]
    var p = start + 10
    if flags & 0x04 != 0 {  // FEXTRA
        guard p + 2 <= d.count else { throw GzipError.truncated }
        p += 2 + (Int(d[p]) | Int(d[p + 1]) << 8)
    }
    for flag: UInt8 in [0x08, 0x10] where flags & flag != 0 {  // FNAME, FCOMMENT: zero-terminated
        while p < d.count && d[p] != 0 { p += 1 }
        p += 1
    }
    if flags & 0x02 != 0 { p += 2 }  // FHCRC
    guard p <= d.count else { throw GzipError.truncated }
    return p
}

/// A canonical Huffman code: symbol counts per code length and symbols ordered by code.
private struct Huffman {
    var counts = [Int](repeating: 0, count: 16)
    var symbols: [Int]

    init(lengths: ArraySlice<Int>) throws {
        symbols = [Int](repeating: 0, count: lengths.count)
        for len in lengths { counts[len] += 1 }
        counts[0] = 0
        var left = 1
        for len in 1..<16 {
            left <<= 1
            left -= counts[len]
            if left < 0 { throw GzipError.invalidHuffmanCode("over-subscribed code lengths") }
        }
        var offsets = [Int](repeating: 0, count: 16)
        for len in 1..<15 { offsets[len + 1] = offsets[len] + counts[len] }
        for (symbol, len) in lengths.enumerated() where len != 0 {
            symbols[offsets[len]] = symbol
            offsets[len] += 1
        }
    }
}

private struct Inflater {
    let input: [UInt8]
    var pos: Int
    var bitBuffer: UInt32 = 0
    var bitCount = 0
    /// Most bytes the whole output may hold.
    let limit: Int

    init(_ input: [UInt8], start: Int, limit: Int) {
        self.input = input
        pos = start
        self.limit = limit
    }

    /// Offset of the first byte after the DEFLATE stream (bits left over are discarded).
    var bytePosition: Int { pos }

    mutating func bits(_ n: Int) throws -> Int {
        while bitCount < n {
            guard pos < input.count else { throw GzipError.truncated }
            bitBuffer |= UInt32(input[pos]) << UInt32(bitCount)
            pos += 1
            bitCount += 8
        }
        let v = Int(bitBuffer & ((1 << UInt32(n)) - 1))
        bitBuffer >>= UInt32(n)
        bitCount -= n
        return v
    }

    mutating func decode(_ h: Huffman) throws -> Int {
        var code = 0, first = 0, index = 0
        for len in 1..<16 {
            code |= try bits(1)
            let count = h.counts[len]
            if code - count < first { return h.symbols[index + (code - first)] }
            index += count
            first += count
            first <<= 1
            code <<= 1
        }
        throw GzipError.invalidHuffmanCode("no symbol for code")
    }

    mutating func inflate(into out: inout [UInt8]) throws {
        var last = 0
        repeat {
            last = try bits(1)
            switch try bits(2) {
            case 0: try stored(into: &out)
            case 1: try codes(Inflater.fixed.lit, Inflater.fixed.dist, into: &out)
            case 2:
                let (lit, dist) = try dynamicTables()
                try codes(lit, dist, into: &out)
            default: throw GzipError.invalidBlockType
            }
        } while last == 0
        // Drop the partial byte: the next member or the trailer starts on a byte boundary.
        bitBuffer = 0
        bitCount = 0
    }

    mutating func stored(into out: inout [UInt8]) throws {
        bitBuffer = 0
        bitCount = 0
        guard pos + 4 <= input.count else { throw GzipError.truncated }
        let len = Int(input[pos]) | Int(input[pos + 1]) << 8
        let nlen = Int(input[pos + 2]) | Int(input[pos + 3]) << 8
        guard len == (~nlen & 0xFFFF) else { throw GzipError.invalidStoredLength }
        pos += 4
        guard pos + len <= input.count else { throw GzipError.truncated }
        guard len <= limit - out.count else { throw GzipError.outputTooLarge(limit: limit) }
        out.append(contentsOf: input[pos..<(pos + len)])
        pos += len
    }

    static let lengthBase = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
                             35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258]
    static let lengthExtra = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
                              3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
    static let distBase = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193,
                           257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145,
                           8193, 12289, 16385, 24577]
    static let distExtra = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6,
                            7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]

    static let fixed: (lit: Huffman, dist: Huffman) = {
        var lengths = [Int](repeating: 8, count: 288)
        for i in 144..<256 { lengths[i] = 9 }
        for i in 256..<280 { lengths[i] = 7 }
        // The fixed codes are complete by construction.
        let lit = try! Huffman(lengths: lengths[...])
        let dist = try! Huffman(lengths: [Int](repeating: 5, count: 30)[...])
        return (lit, dist)
    }()

    mutating func codes(_ lit: Huffman, _ dist: Huffman, into out: inout [UInt8]) throws {
        while true {
            let symbol = try decode(lit)
            if symbol < 256 {
                guard out.count < limit else { throw GzipError.outputTooLarge(limit: limit) }
                out.append(UInt8(symbol))
            } else if symbol == 256 {
                return
            } else {
                let li = symbol - 257
                guard li < 29 else { throw GzipError.invalidHuffmanCode("length symbol \(symbol)") }
                let length = Inflater.lengthBase[li] + (try bits(Inflater.lengthExtra[li]))
                let di = try decode(dist)
                guard di < 30 else { throw GzipError.invalidHuffmanCode("distance symbol \(di)") }
                let distance = Inflater.distBase[di] + (try bits(Inflater.distExtra[di]))
                guard distance <= out.count else { throw GzipError.invalidDistance }
                guard length <= limit - out.count else { throw GzipError.outputTooLarge(limit: limit) }
                var from = out.count - distance
                for _ in 0..<length {  // byte by byte: the copy may overlap its own output
                    out.append(out[from])
                    from += 1
                }
            }
        }
    }

    mutating func dynamicTables() throws -> (Huffman, Huffman) {
        let nlen = try bits(5) + 257
        let ndist = try bits(5) + 1
        let ncode = try bits(4) + 4
        guard nlen <= 286, ndist <= 30 else { throw GzipError.invalidHuffmanCode("too many lengths") }
        let order = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]
        var codeLengths = [Int](repeating: 0, count: 19)
        for i in 0..<ncode { codeLengths[order[i]] = try bits(3) }
        let lencode = try Huffman(lengths: codeLengths[...])

        var lengths = [Int](repeating: 0, count: nlen + ndist)
        var i = 0
        while i < nlen + ndist {
            let symbol = try decode(lencode)
            if symbol < 16 {
                lengths[i] = symbol
                i += 1
                continue
            }
            var value = 0, repeatCount: Int
            switch symbol {
            case 16:
                guard i > 0 else { throw GzipError.invalidHuffmanCode("repeat with no previous length") }
                value = lengths[i - 1]
                repeatCount = 3 + (try bits(2))
            case 17: repeatCount = 3 + (try bits(3))
            default: repeatCount = 11 + (try bits(7))
            }
            guard i + repeatCount <= nlen + ndist else { throw GzipError.invalidHuffmanCode("too many lengths") }
            for _ in 0..<repeatCount {
                lengths[i] = value
                i += 1
            }
        }
        guard lengths[256] != 0 else { throw GzipError.invalidHuffmanCode("no end-of-block code") }
        return (try Huffman(lengths: lengths[0..<nlen]), try Huffman(lengths: lengths[nlen...]))
    }
}
