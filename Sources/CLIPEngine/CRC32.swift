/// CRC-32 (IEEE 802.3, reflected, as zlib, gzip, PNG and zip compute it): the one copy for the
/// gzip reader, the PNG writer and the zip reader/writer.
public struct CRC32 {
    public private(set) var value: UInt32 = 0

    public init(value: UInt32 = 0) { self.value = value }

    /// Continues the checksum over `bytes`.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        var c = ~value
        for b in bytes { c = crc32Table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        value = ~c
    }

    public mutating func update<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
        var c = ~value
        for b in bytes { c = crc32Table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        value = ~c
    }
}

/// The CRC-32 of `bytes`, continuing from `seed` (a previous result).
public func crc32<S: Sequence>(_ bytes: S, seed: UInt32 = 0) -> UInt32 where S.Element == UInt8 {
    var c = CRC32(value: seed)
    c.update(bytes)
    return c.value
}

private let crc32Table: [UInt32] = (0..<256).map { n -> UInt32 in
    var c = UInt32(n)
    for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
    return c
}
