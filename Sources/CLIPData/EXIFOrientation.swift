import Foundation

/// A JPEG's EXIF orientation (tag 0x0112 of IFD0 in the APP1 "Exif" segment): how a viewer turns
/// the stored pixels to show the photo upright, 1–8, applied as Pillow's `ImageOps.exif_transpose`
/// applies it. Phones often store a portrait photo as landscape pixels with orientation 6.
///
/// Embeddings do not use it: open_clip's `preprocess(Image.open(p))` does not turn images, and the
/// index stays equal to it. What a person looks at does: the server's thumbnails are turned, as a
/// browser turns the full image it is sent.
public enum EXIFOrientation {
    /// The orientation of `data` when it is a JPEG with one, else 1 (also for anything malformed:
    /// every read is bounds-checked, nothing past the first scan is looked at).
    public static func read(jpeg data: Data) -> Int {
        data.withUnsafeBytes { read(jpeg: $0) }
    }

    static func read(jpeg b: UnsafeRawBufferPointer) -> Int {
        guard b.count >= 4, b[0] == 0xFF, b[1] == 0xD8 else { return 1 }
        var i = 2
        while i + 4 <= b.count {
            guard b[i] == 0xFF else { return 1 }
            let marker = b[i + 1]
            if marker == 0xFF { i += 1; continue }                    // fill byte
            if marker == 0x01 || (0xD0...0xD8).contains(marker) { i += 2; continue } // no length
            if marker == 0xDA || marker == 0xD9 { return 1 }          // first scan, or the end
            let length = Int(b[i + 2]) << 8 | Int(b[i + 3])
            guard length >= 2, i + 2 + length <= b.count else { return 1 }
            let payload = UnsafeRawBufferPointer(rebasing: b[(i + 4)..<(i + 2 + length)])
            if marker == 0xE1, payload.count > 6, Array(payload.prefix(6)) == Array("Exif\0\0".utf8) {
                return tiffOrientation(UnsafeRawBufferPointer(rebasing: payload[6...])) ?? 1
            }
            i += 2 + length
        }
        return 1
    }

    /// Tag 0x0112 of the TIFF structure's first IFD (SHORT, or LONG from some writers).
    private static func tiffOrientation(_ t: UnsafeRawBufferPointer) -> Int? {
        guard t.count >= 8 else { return nil }
        let little: Bool
        switch (t[0], t[1]) {
        case (0x49, 0x49): little = true
        case (0x4D, 0x4D): little = false
        default: return nil
        }
        func u16(_ at: Int) -> Int? {
            guard at >= 0, at + 2 <= t.count else { return nil }
            return little ? Int(t[at]) | Int(t[at + 1]) << 8 : Int(t[at]) << 8 | Int(t[at + 1])
        }
        func u32(_ at: Int) -> Int? {
            guard let lo = u16(little ? at : at + 2), let hi = u16(little ? at + 2 : at) else { return nil }
            return hi << 16 | lo
        }
        guard u16(2) == 42, let ifd = u32(4), let count = u16(ifd) else { return nil }
        for e in 0..<count {
            let entry = ifd + 2 + 12 * e
            guard let tag = u16(entry), let type = u16(entry + 2) else { return nil }
            guard tag == 0x0112 else { continue }
            let value = type == 4 ? u32(entry + 8) : type == 3 ? u16(entry + 8) : nil
            guard let value, (1...8).contains(value) else { return nil }
            return value
        }
        return nil
    }

    /// `image` turned upright for `orientation` (Pillow's transposes: 2 mirror, 3 rotate 180°,
    /// 4 flip, 5 transpose, 6 rotate 90° clockwise, 7 transverse, 8 rotate 90° counter-clockwise);
    /// 1 and unknown values leave it as it is.
    public static func apply(_ orientation: Int, to image: RGBImage) -> RGBImage {
        guard (2...8).contains(orientation) else { return image }
        let w = image.width, h = image.height
        let swaps = orientation >= 5
        let ow = swaps ? h : w, oh = swaps ? w : h
        var out = [UInt8](repeating: 0, count: ow * oh * 3)
        image.pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        // The stored pixel shown at (ox, oy).
                        let (sx, sy): (Int, Int)
                        switch orientation {
                        case 2: (sx, sy) = (w - 1 - ox, oy)
                        case 3: (sx, sy) = (w - 1 - ox, h - 1 - oy)
                        case 4: (sx, sy) = (ox, h - 1 - oy)
                        case 5: (sx, sy) = (oy, ox)
                        case 6: (sx, sy) = (oy, h - 1 - ox)
                        case 7: (sx, sy) = (w - 1 - oy, h - 1 - ox)
                        default: (sx, sy) = (w - 1 - oy, ox)
                        }
                        let s = (sy * w + sx) * 3, d = (oy * ow + ox) * 3
                        dst[d] = src[s]; dst[d + 1] = src[s + 1]; dst[d + 2] = src[s + 2]
                    }
                }
            }
        }
        return RGBImage(width: ow, height: oh, pixels: out)
    }
}
