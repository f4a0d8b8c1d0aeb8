import CLIPData
import Foundation
import XCTest

final class EXIFOrientationTests: XCTestCase {
    /// Each orientation turns a 3 × 2 image as Pillow 12's `ImageOps.exif_transpose` does: the
    /// expected grids were printed by Pillow (`Image.transpose` with exif_transpose's table) for the
    /// image whose pixel (x, y) is y·3 + x.
    func testTransposesEqualPillows() {
        let pillow: [Int: [[UInt8]]] = [
            1: [[0, 1, 2], [3, 4, 5]],
            2: [[2, 1, 0], [5, 4, 3]],
            3: [[5, 4, 3], [2, 1, 0]],
            4: [[3, 4, 5], [0, 1, 2]],
            5: [[0, 3], [1, 4], [2, 5]],
            6: [[3, 0], [4, 1], [5, 2]],
            7: [[5, 2], [4, 1], [3, 0]],
            8: [[2, 5], [1, 4], [0, 3]],
        ]
        // Channels differ, so a swapped channel order shows too.
        func rgb(_ v: UInt8) -> [UInt8] { [v, v + 10, v + 20] }
        let image = RGBImage(width: 3, height: 2, pixels: (0..<6).flatMap { rgb(UInt8($0)) })
        for (orientation, rows) in pillow.sorted(by: { $0.key < $1.key }) {
            let turned = EXIFOrientation.apply(orientation, to: image)
            XCTAssertEqual([turned.width, turned.height], [rows[0].count, rows.count], "orientation \(orientation)")
            let expected: [UInt8] = rows.flatMap { $0 }.flatMap(rgb)
            XCTAssertEqual(turned.pixels, expected, "orientation \(orientation)")
        }
        XCTAssertEqual(EXIFOrientation.apply(9, to: image), image)
    }

    /// An APP1 "Exif" segment with tag 0x0112 (another tag before it), little- and big-endian, SHORT
    /// and LONG, put after the SOI of a fixture JPEG: read back; the pixels are unchanged.
    func testOrientationIsReadFromTheEXIFSegment() throws {
        let jpeg = try Data(contentsOf: Fixtures.folder.appendingPathComponent("flower.jpg"))
        let pixels = try ImageDecoder.decode(jpeg, name: "flower.jpg")
        XCTAssertEqual(EXIFOrientation.read(jpeg: jpeg), 1, "the fixture has no orientation")
        for little in [true, false] {
            for type in [3, 4] {
                for orientation in 1...8 {
                    let tagged = withEXIF(jpeg, orientation: orientation, little: little, type: type)
                    XCTAssertEqual(EXIFOrientation.read(jpeg: tagged), orientation, "little \(little) type \(type)")
                    if orientation == 6 { XCTAssertEqual(try ImageDecoder.decode(tagged, name: "tagged"), pixels) }
                }
            }
        }
        // Malformed or absent: 1, never a crash, whatever prefix of the data is given.
        let tagged = withEXIF(jpeg, orientation: 6, little: true, type: 3)
        for n in 0..<80 { XCTAssertTrue([1, 6].contains(EXIFOrientation.read(jpeg: tagged.prefix(n)))) }
        XCTAssertEqual(EXIFOrientation.read(jpeg: withEXIF(jpeg, orientation: 9, little: true, type: 3)), 1)
        var badMagic = tagged
        badMagic[2 + 4 + 6 + 2] = 0x2B // TIFF's 42 → 43
        XCTAssertEqual(EXIFOrientation.read(jpeg: badMagic), 1)
        var badLength = tagged
        badLength[4] = 0xFF // the APP1 segment claims more bytes than there are
        badLength[5] = 0xFF
        XCTAssertEqual(EXIFOrientation.read(jpeg: badLength.prefix(200)), 1)
        XCTAssertEqual(EXIFOrientation.read(jpeg: try Data(contentsOf: Fixtures.folder.appendingPathComponent("exact_64x100.png"))), 1)
        XCTAssertEqual(EXIFOrientation.read(jpeg: Data()), 1)
    }

    /// `jpeg` with an APP1 Exif segment after its SOI: IFD0 holds Make (0x010F) then Orientation.
    private func withEXIF(_ jpeg: Data, orientation: Int, little: Bool, type: Int) -> Data {
        func u16(_ v: Int) -> [UInt8] { little ? [UInt8(v & 0xFF), UInt8(v >> 8)] : [UInt8(v >> 8), UInt8(v & 0xFF)] }
        func u32(_ v: Int) -> [UInt8] { little ? u16(v & 0xFFFF) + u16(v >> 16) : u16(v >> 16) + u16(v & 0xFFFF) }
        var tiff: [UInt8] = (little ? [0x49, 0x49] : [0x4D, 0x4D]) + u16(42) + u32(8)
        tiff += u16(2)                                                // two entries
        tiff += u16(0x010F) + u16(2) + u32(4) + [0x41, 0x42, 0x43, 0] // Make "ABC", inline
        tiff += u16(0x0112) + u16(type) + u32(1) + (type == 3 ? u16(orientation) + [0, 0] : u32(orientation))
        tiff += u32(0)                                                // no next IFD
        let payload = Array("Exif\0\0".utf8) + tiff
        let segment: [UInt8] = [0xFF, 0xE1, UInt8((payload.count + 2) >> 8), UInt8((payload.count + 2) & 0xFF)] + payload
        return Data(jpeg.prefix(2)) + Data(segment) + Data(jpeg.dropFirst(2))
    }
}
