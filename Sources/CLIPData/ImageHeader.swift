import Foundation

extension ImageDecoder {
    /// Width and height as a JPEG's or PNG's header states them, read without decoding or
    /// allocating pixels (a server checks a client's image against its own pixel cap with this
    /// before it decodes anything). nil when the data is not a JPEG or PNG or ends before the size:
    /// decoding such data fails with the precise reason.
    public static func headerDimensions(_ data: Data) -> (width: Int, height: Int)? {
        data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) -> (width: Int, height: Int)? in
            func be16(_ i: Int) -> Int { Int(bytes[i]) << 8 | Int(bytes[i + 1]) }
            func be32(_ i: Int) -> Int { be16(i) << 16 | be16(i + 2) }
            switch sniff(bytes) {
            case .png:
                // Signature (8), IHDR length (4) and type (4), then width and height (big-endian).
                guard bytes.count >= 24, Array(bytes[12..<16]) == Array("IHDR".utf8) else { return nil }
                return (be32(16), be32(20))
            case .jpeg:
                // Markers after SOI until a start-of-frame (SOF0–SOF15 but DHT C4, JPG C8, DAC CC):
                // length, precision, height, width. The first frame is the one libjpeg decodes.
                var i = 2
                while i + 3 < bytes.count {
                    guard bytes[i] == 0xFF else { return nil }
                    let marker = bytes[i + 1]
                    if marker == 0xFF { i += 1; continue }   // fill byte
                    if marker == 0x01 || (0xD0...0xD8).contains(marker) { i += 2; continue }   // no length
                    if marker == 0xD9 || marker == 0xDA { return nil }   // end of image or scan data before any frame
                    let length = be16(i + 2)
                    if (0xC0...0xCF).contains(marker), ![0xC4, 0xC8, 0xCC].contains(marker) {
                        guard i + 8 < bytes.count, length >= 7 else { return nil }
                        return (be16(i + 7), be16(i + 5))
                    }
                    guard length >= 2 else { return nil }
                    i += 2 + length
                }
                return nil
            case .other:
                return nil
            }
        }
    }
}
