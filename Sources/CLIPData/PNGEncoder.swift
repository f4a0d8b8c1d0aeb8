import CLIPEngine
import Foundation

/// Writes 8-bit RGB PNGs without compression (deflate "stored" blocks): exact, dependency-free and
/// fast, for generated data sets. Any PNG reader (Pillow, libpng) decodes them.
public enum PNGEncoder {
    public static func encode(_ image: RGBImage) -> Data {
        var out = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        var header = Data()
        header.appendBigEndian(UInt32(image.width))
        header.appendBigEndian(UInt32(image.height))
        header.append(contentsOf: [8, 2, 0, 0, 0])   // 8 bits, RGB, deflate, adaptive filters, no interlace
        appendChunk("IHDR", header, to: &out)

        // Raw scanlines, each with filter type 0 (none).
        let stride = image.width * 3
        var raw = [UInt8]()
        raw.reserveCapacity((stride + 1) * image.height)
        for y in 0..<image.height {
            raw.append(0)
            raw.append(contentsOf: image.pixels[(y * stride)..<((y + 1) * stride)])
        }
        var zlib = Data([0x78, 0x01])
        var offset = 0
        repeat {
            let length = min(65_535, raw.count - offset)
            let final: UInt8 = offset + length == raw.count ? 1 : 0
            zlib.append(final)
            zlib.append(contentsOf: [UInt8(length & 0xFF), UInt8(length >> 8), UInt8(~length & 0xFF), UInt8((~length >> 8) & 0xFF)])
            zlib.append(contentsOf: raw[offset..<(offset + length)])
            offset += length
        } while offset < raw.count
        zlib.appendBigEndian(adler32(raw))
        appendChunk("IDAT", zlib, to: &out)
        appendChunk("IEND", Data(), to: &out)
        return out
    }

    static func appendChunk(_ type: String, _ data: Data, to out: inout Data) {
        out.appendBigEndian(UInt32(data.count))
        let typed = Data(type.utf8) + data
        out.append(typed)
        out.appendBigEndian(crc32(typed))
    }

    static func adler32(_ bytes: [UInt8]) -> UInt32 {
        var a: UInt32 = 1, b: UInt32 = 0
        for chunk in stride(from: 0, to: bytes.count, by: 5552) {
            for byte in bytes[chunk..<min(chunk + 5552, bytes.count)] { a += UInt32(byte); b += a }
            a %= 65_521; b %= 65_521
        }
        return b << 16 | a
    }
}

extension Data {
    mutating func appendBigEndian(_ value: UInt32) {
        append(contentsOf: [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)])
    }
}
