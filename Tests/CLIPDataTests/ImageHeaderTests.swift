import CLIPData
import Foundation
import XCTest

/// `ImageDecoder.headerDimensions`: the size a header states, without decoding.
final class ImageHeaderTests: XCTestCase {
    /// Every image fixture (baseline, progressive, CMYK, grey, 16-bit, palette…): the size Pillow reports.
    func testHeaderDimensionsAreTheSizePillowReports() throws {
        XCTAssertGreaterThan(Fixtures.manifest.images.count, 20)
        for fixture in Fixtures.manifest.images {
            let size = ImageDecoder.headerDimensions(try Data(contentsOf: Fixtures.url(fixture.file)))
            XCTAssertEqual(size?.width, fixture.width, fixture.file)
            XCTAssertEqual(size?.height, fixture.height, fixture.file)
        }
    }

    /// A header's claim is read as stated (nothing allocated for it); what is not a JPEG or PNG, or
    /// ends before its size, gives nil.
    func testClaimsAreReadAndUnreadableHeadersGiveNil() throws {
        var png = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13]) + Data("IHDR".utf8)
        for v in [UInt32(50_000), UInt32(40_000)] { png += withUnsafeBytes(of: v.bigEndian) { Data($0) } }
        XCTAssertEqual(ImageDecoder.headerDimensions(png)?.width, 50_000)
        XCTAssertEqual(ImageDecoder.headerDimensions(png)?.height, 40_000)
        XCTAssertNil(ImageDecoder.headerDimensions(png.prefix(20)))
        // SOI, an APP0 segment, then SOF0 claiming 60000 × 65000 (height first).
        let jpeg = Data([0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x4A, 0x46, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0xFD, 0xE8, 0xEA, 0x60, 0x03])
        XCTAssertEqual(ImageDecoder.headerDimensions(jpeg)?.width, 60_000)
        XCTAssertEqual(ImageDecoder.headerDimensions(jpeg)?.height, 65_000)
        XCTAssertNil(ImageDecoder.headerDimensions(jpeg.prefix(12)), "ends inside the frame header")
        let photo = try Data(contentsOf: Fixtures.url("china.jpg"))
        XCTAssertNil(ImageDecoder.headerDimensions(photo.prefix(40)), "ends before the frame header")
        XCTAssertNil(ImageDecoder.headerDimensions(Data("GIF89a".utf8) + Data(count: 20)))
        XCTAssertNil(ImageDecoder.headerDimensions(Data()))
        XCTAssertNil(ImageDecoder.headerDimensions(Data([0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02])), "scan data before any frame")
    }
}
