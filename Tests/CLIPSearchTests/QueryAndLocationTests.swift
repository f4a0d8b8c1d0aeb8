import CLIPSearch
import XCTest

final class QueryAndLocationTests: XCTestCase {
    func testRclipTermSyntax() throws {
        XCTAssertEqual(try QueryTerm.parse("a red car"), QueryTerm(.text("a red car"), weight: 1))
        XCTAssertEqual(try QueryTerm.parse("+2:snow"), QueryTerm(.text("snow"), weight: 2))
        XCTAssertEqual(try QueryTerm.parse("-dog"), QueryTerm(.text("dog"), weight: -1))
        XCTAssertEqual(try QueryTerm.parse("+dog"), QueryTerm(.text("dog"), weight: 1))
        XCTAssertEqual(try QueryTerm.parse("-0.5:cat"), QueryTerm(.text("cat"), weight: -0.5))
        XCTAssertEqual(try QueryTerm.parse(":-1 is a number"), QueryTerm(.text("-1 is a number"), weight: 1))
        XCTAssertEqual(try QueryTerm.parse("+3:image:q.jpg"), QueryTerm(.image(path: "q.jpg"), weight: 3))
        // rclip's image queries: paths from /, ./ or ../ that name an image, and file:// URLs.
        XCTAssertEqual(try QueryTerm.parse("./cat.JPG"), QueryTerm(.image(path: "./cat.JPG"), weight: 1))
        XCTAssertEqual(try QueryTerm.parse("-0.5:../a b/dog.png"), QueryTerm(.image(path: "../a b/dog.png"), weight: -0.5))
        XCTAssertEqual(try QueryTerm.parse("+file:///tmp/q.jpeg"), QueryTerm(.image(path: "/tmp/q.jpeg"), weight: 1))
        XCTAssertEqual(try QueryTerm.parse("/r/pics funny cat"), QueryTerm(.text("/r/pics funny cat"), weight: 1))
        XCTAssertEqual(try QueryTerm.parse("a cat.jpg"), QueryTerm(.text("a cat.jpg"), weight: 1))
        assertSearchError(try QueryTerm.parse("file://"), contains: ["no path"])
        // A colon that does not follow a number belongs to the text.
        XCTAssertEqual(try QueryTerm.parse("-time: 12:30"), QueryTerm(.text("time: 12:30"), weight: -1))
        assertSearchError(try QueryTerm.parse("+2:"), contains: ["+2:", "empty text"])
        assertSearchError(try QueryTerm.parse("-1e39:x"), contains: ["finite"])
        assertSearchError(try QueryTerm.parse("image:"), contains: ["no path"])
        assertSearchError(try QueryTerm.parse(["+0:cat"]), contains: ["non-zero weight"])
    }

    func testDatabaseLocations() throws {
        XCTAssertEqual(try IndexLocation(parsing: "photos.sqlite"), .sqlite(path: "photos.sqlite"))
        XCTAssertEqual(try IndexLocation(parsing: "sqlite:/tmp/a.db"), .sqlite(path: "/tmp/a.db"))
        XCTAssertEqual(try IndexLocation(parsing: "sqlite:///tmp/a.db"), .sqlite(path: "/tmp/a.db"))
        guard case .postgres(let url) = try IndexLocation(parsing: "postgresql://clip:p%40ss@db.local:5433/photos?sslmode=disable&m=16") else {
            return XCTFail("not parsed as PostgreSQL")
        }
        XCTAssertEqual(url.user, "clip")
        XCTAssertEqual(url.password, "p@ss")
        XCTAssertEqual(url.host, "db.local")
        XCTAssertEqual(url.port, 5433)
        XCTAssertEqual(url.database, "photos")
        XCTAssertEqual(url.options, ["sslmode": "disable", "m": "16"])
        XCTAssertFalse(url.description.contains("p@ss"), "the password is not printed")
        guard case .postgres(let v6) = try IndexLocation(parsing: "postgres://[::1]/db") else { return XCTFail() }
        XCTAssertEqual(v6.host, "::1")
        XCTAssertEqual(v6.port, 5432)
        XCTAssertEqual(v6.user, "postgres")
        assertSearchError(try IndexLocation(parsing: "postgresql://host:99999/db"), contains: ["99999", "1...65535"])
        assertSearchError(try IndexLocation(parsing: "postgresql://host"), contains: ["no database"])
        assertSearchError(try IndexLocation(parsing: "mysql://host/db"), contains: ["unknown scheme 'mysql'"])
        assertSearchError(try IndexLocation(parsing: ""), contains: ["empty"])
        assertSearchError(try IndexLocation(parsing: "postgresql://u:secret@host:x/db"), contains: ["port 'x'"])
        XCTAssertThrowsError(try IndexLocation(parsing: "postgresql://u:secret@host:x/db")) { XCTAssertFalse("\($0)".contains("secret")) }
    }
}
