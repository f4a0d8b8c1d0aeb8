import CLIPSearch
import Foundation
import XCTest

let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let imageFixtures = repoRoot.appendingPathComponent("Tests/CLIPDataTests/Fixtures")
/// A ViT of one layer, 16-dimensional embeddings, 64-pixel images: fast enough to embed hundreds.
let tinyModelConfig = repoRoot.appendingPathComponent("Tests/CLIPEvaluationTests/Fixtures/model/config.json").path
let vocabulary = repoRoot.appendingPathComponent("assets/bpe_simple_vocab_16e6.txt.gz")

/// A temporary folder of real image files, removed by `cleanUp`.
final class PhotoFolder {
    let url: URL
    var path: String { url.path }

    init(_ name: String = "photos") throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("swiftclip-search-\(UUID().uuidString)/\(name)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    var parent: URL { url.deletingLastPathComponent() }

    /// Copies a fixture image to `relative` (folders made as needed).
    @discardableResult
    func add(_ fixture: String, as relative: String, trailer: String = "") throws -> String {
        let dest = url.appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: dest.deletingLastPathComponent(), withIntermediateDirectories: true)
        var data = try Data(contentsOf: imageFixtures.appendingPathComponent(fixture))
        // Bytes after a JPEG's end marker or PNG's IEND are ignored by decoders but change the hash.
        data.append(Data(trailer.utf8))
        try? FileManager.default.removeItem(at: dest)
        try data.write(to: dest)
        return IndexPaths.canonical(dest.path)
    }

    func write(_ bytes: Data, as relative: String) throws {
        let dest = url.appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: dest.deletingLastPathComponent(), withIntermediateDirectories: true)
        try bytes.write(to: dest)
    }

    func remove(_ relative: String) throws { try FileManager.default.removeItem(at: url.appendingPathComponent(relative)) }

    func move(_ from: String, _ to: String) throws {
        try FileManager.default.moveItem(at: url.appendingPathComponent(from), to: url.appendingPathComponent(to))
    }

    func cleanUp() {
        _ = try? FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: parent.path)
        try? FileManager.default.removeItem(at: parent)
    }
}

func tinyModel(seed: UInt64 = 1) throws -> IndexModel {
    try IndexModel(model: tinyModelConfig, weights: nil, seed: seed, vocabulary: vocabulary)
}

func assertSearchError(_ body: @autoclosure () throws -> Any, contains parts: [String], file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertThrowsError(try body(), file: file, line: line) { error in
        XCTAssertTrue(error is SearchError, "not a SearchError: \(type(of: error)) \(error)", file: file, line: line)
        for part in parts { XCTAssertTrue("\(error)".contains(part), "expected '\(part)' in: \(error)", file: file, line: line) }
    }
}
