import CLIPServer
import Foundation
import XCTest

/// `--max-image-pixels`: an image over the cap is refused (413 `image_too_large`) from its header,
/// on every route that takes images, and one under it is served.
final class ImagePixelCapTests: XCTestCase {
    func testImagesOverTheCapAreRefusedFromTheirHeader() throws {
        var c = tinyConfiguration()
        c.maxImagePixels = 10_000
        let server = try RunningServer(c)
        defer { server.stop() }
        let client = server.client
        let small = try fixture("exact_64x100.png")            // 6,400 px
        let large = try fixture("china_gray_200x150.jpg")      // 30,000 px
        XCTAssertEqual(try client.request("POST", "/v1/embeddings/image", body: small, contentType: "image/png").status, 200)
        let refused = try client.request("POST", "/v1/embeddings/image", body: large, contentType: "image/jpeg")
        XCTAssertEqual(refused.status, 413, refused.text)
        XCTAssertEqual(refused.errorCode, "image_too_large")
        XCTAssertTrue(refused.text.contains("200x150") && refused.text.contains("--max-image-pixels"), refused.text)
        // A header claiming 50,000 × 50,000 (no pixel data behind it), and the other image routes.
        XCTAssertEqual(try client.request("POST", "/v1/embeddings/image", body: BadInputTests.pngHeader(width: 50_000, height: 50_000),
                                          contentType: "image/png").errorCode, "image_too_large")
        let (form, type) = RawHTTP.multipart([(name: "image", filename: "a.jpg", type: "image/jpeg", data: large),
                                              (name: "labels", filename: nil, type: nil, data: Data("cat,dog".utf8))])
        XCTAssertEqual(try client.request("POST", "/v1/classify", body: form, contentType: type).status, 413)
        XCTAssertEqual(try client.json("POST", "/v1/classify", ["image": small.base64EncodedString(), "labels": ["cat", "dog"]]).status, 200)
    }
}
