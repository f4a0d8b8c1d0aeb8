import CLIPData
import CLIPEngine
import Foundation
import XCTest

/// Tests/CLIPEvaluationTests/Fixtures, written by tools/reference/make_eval_fixtures.py.
let evalFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

func temporaryFolder() throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("swiftclip-eval-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

func assertThrows<E: Error & CustomStringConvertible>(_ type: E.Type, containing parts: [String], file: StaticString = #filePath,
                                                      line: UInt = #line, _ body: () throws -> Void) {
    do {
        try body()
        XCTFail("no error", file: file, line: line)
    } catch let e as E {
        for p in parts { XCTAssertTrue(e.description.contains(p), "'\(e)' lacks '\(p)'", file: file, line: line) }
    } catch {
        XCTFail("unexpected error \(error)", file: file, line: line)
    }
}

final class CIFARTests: XCTestCase {
    func testPythonAndBinaryDistributionsAgree() throws {
        let py = try CIFARDataset.load(.cifar10, at: evalFixtures)
        let bin = try CIFARDataset.load(.cifar10, at: evalFixtures.appendingPathComponent("cifar-10-batches-bin"))
        XCTAssertEqual(py.file.lastPathComponent, "test_batch")
        XCTAssertEqual(bin.file.lastPathComponent, "test_batch.bin")
        XCTAssertEqual(py.count, 50)
        XCTAssertEqual(py.labels, bin.labels)
        XCTAssertEqual(py.pixels, bin.pixels)
        XCTAssertEqual(Set(py.labels), Set(0..<10))
        XCTAssertEqual(py.classNames, CIFARClassNames.cifar10)
        XCTAssertEqual(py.fileClassNames, CIFARClassNames.cifar10)
        XCTAssertEqual(bin.fileClassNames, CIFARClassNames.cifar10)
        // Planes -> interleaved RGB: pixel (row 0, col 1) is bytes 1, 1025, 2049 of the record.
        let img = try py.image(at: 3)
        let rec = Array(py.pixels[(3 * 3072)..<(4 * 3072)])
        XCTAssertEqual(Array(img.pixels[3..<6]), [rec[1], rec[1025], rec[2049]])
    }

    func testCIFAR100BothDistributionsFineLabels() throws {
        let py = try CIFARDataset.load(.cifar100, at: evalFixtures)
        let bin = try CIFARDataset.load(.cifar100, at: evalFixtures.appendingPathComponent("cifar-100-binary"))
        XCTAssertEqual(py.labels, [0, 99, 42, 7])
        XCTAssertEqual(bin.labels, [0, 99, 42, 7])
        XCTAssertEqual(py.pixels, bin.pixels)
        XCTAssertEqual(py.fileClassNames?[42], "fine_42")
        XCTAssertEqual(py.classNames.count, 100)
        XCTAssertEqual(py.classNames[1], "aquarium fish")
    }

    func testPickleVariantsOfPython3ReadTheSame() throws {
        let reference = try CIFARDataset.load(.cifar10, at: evalFixtures)
        for name in ["test_batch_p2py3", "test_batch_p4"] {
            let d = try CIFARDataset.loadPython(.cifar10, test: evalFixtures.appendingPathComponent("pickle_variants/\(name)"), meta: nil)
            XCTAssertEqual(d.labels, Array(reference.labels.prefix(4)), name)
            XCTAssertEqual(d.pixels, Array(reference.pixels.prefix(4 * 3072)), name)
        }
    }

    func testBuiltInNamesAndTemplates() {
        XCTAssertEqual(CIFARClassNames.templates.count, 18)
        XCTAssertTrue(CIFARClassNames.templates.allSatisfy { $0.contains("{}") })
        XCTAssertEqual(Set(CIFARClassNames.cifar100).count, 100)
        XCTAssertEqual(CIFARClassNames.cifar10.count, 10)
    }

    func testMissingDatasetSaysWhereToPutIt() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        assertThrows(DatasetError.self, containing: [dir.path, "cifar-100-python/{test,meta}", "cifar-100-binary/test.bin"]) {
            _ = try CIFARDataset.load(.cifar100, at: dir)
        }
    }

    func testTruncatedRecordAndBadLabelInBinaryFiles() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = try Data(contentsOf: evalFixtures.appendingPathComponent("cifar-10-batches-bin/test_batch.bin"))
        let truncated = dir.appendingPathComponent("test_batch.bin")
        try good.prefix(3073 * 2 + 100).write(to: truncated)
        assertThrows(DatasetError.self, containing: [truncated.path, "record 2", "truncated"]) {
            _ = try CIFARDataset.loadBinary(.cifar10, test: truncated, names: nil)
        }
        var bad = [UInt8](good.prefix(3073 * 3))
        bad[3073 * 2] = 10
        try Data(bad).write(to: truncated)
        assertThrows(DatasetError.self, containing: [truncated.path, "record 2", "label 10", "0..<10"]) {
            _ = try CIFARDataset.loadBinary(.cifar10, test: truncated, names: nil)
        }
        let c100 = try Data(contentsOf: evalFixtures.appendingPathComponent("cifar-100-binary/test.bin"))
        var bad100 = [UInt8](c100)
        bad100[3074 * 3 + 1] = 100
        let f = dir.appendingPathComponent("test.bin")
        try Data(bad100).write(to: f)
        assertThrows(DatasetError.self, containing: [f.path, "record 3", "label 100", "0..<100"]) {
            _ = try CIFARDataset.loadBinary(.cifar100, test: f, names: nil)
        }
    }

    /// A protocol 2 pickle written by hand, the CIFAR shape: {b'data': ndarray (1, 3072) u1, b'labels': [label]}.
    func handPickle(label: UInt8, dataBytes: Int = 3072) -> [UInt8] {
        func s(_ t: String) -> [UInt8] { [0x55, UInt8(t.utf8.count)] + Array(t.utf8) }
        var p: [UInt8] = [0x80, 0x02, 0x7D, 0x28] + s("data")
        p += Array("cnumpy.core.multiarray\n_reconstruct\n".utf8) + Array("cnumpy\nndarray\n".utf8)
        p += [0x4B, 0x00, 0x85] + s("b") + [0x87, 0x52]
        p += [0x28, 0x4B, 0x01, 0x4B, 0x01, 0x4D, 0x00, 0x0C, 0x86] + Array("cnumpy\ndtype\n".utf8) + s("u1") + [0x89, 0x88, 0x87, 0x52]
        p += [0x28, 0x4B, 0x03] + s("|") + [0x4E, 0x4E, 0x4E, 0x4A, 0xFF, 0xFF, 0xFF, 0xFF, 0x4A, 0xFF, 0xFF, 0xFF, 0xFF, 0x4B, 0x00, 0x74, 0x62]
        p += [0x89, 0x54] + withUnsafeBytes(of: UInt32(dataBytes).littleEndian, Array.init) + (0..<dataBytes).map { UInt8($0 % 251) }
        p += [0x74, 0x62] + s("labels") + [0x5D, 0x4B, label, 0x61, 0x75, 0x2E]
        return p
    }

    func testHandWrittenPickleAndItsMalformedVersions() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let f = dir.appendingPathComponent("test_batch")
        try Data(handPickle(label: 7)).write(to: f)
        let d = try CIFARDataset.loadPython(.cifar10, test: f, meta: nil)
        XCTAssertEqual(d.labels, [7])
        XCTAssertEqual(d.pixels[300], UInt8(300 % 251))

        try Data(handPickle(label: 12)).write(to: f)
        assertThrows(DatasetError.self, containing: [f.path, "record 0", "label 12"]) { _ = try CIFARDataset.loadPython(.cifar10, test: f, meta: nil) }

        // Cut inside the BINSTRING's bytes: the error names the offset of the cut argument.
        let full = handPickle(label: 1)
        try Data(full.prefix(400)).write(to: f)
        assertThrows(PickleError.self, containing: [f.path, "bad pickle at byte", "runs past the end"]) {
            _ = try CIFARDataset.loadPython(.cifar10, test: f, meta: nil)
        }
        // An opcode this reader refuses (INST, which would import and call).
        var bad = full
        bad[2] = 0x69
        try Data(bad).write(to: f)
        assertThrows(PickleError.self, containing: ["bad pickle at byte 2", "unsupported opcode 0x69"]) {
            _ = try CIFARDataset.loadPython(.cifar10, test: f, meta: nil)
        }
        // Shape that does not match the bytes.
        try Data(handPickle(label: 1, dataBytes: 3000)).write(to: f)
        assertThrows(DatasetError.self, containing: [f.path, "truncated"]) { _ = try CIFARDataset.loadPython(.cifar10, test: f, meta: nil) }
        // Not a pickle at all; no STOP.
        try Data("hello".utf8).write(to: f)
        assertThrows(PickleError.self, containing: ["bad pickle at byte 0"]) { _ = try CIFARDataset.loadPython(.cifar10, test: f, meta: nil) }
        XCTAssertThrowsError(try Pickle.load([0x80, 0x02, 0x7D]))  // no STOP
        XCTAssertThrowsError(try Pickle.load([0x80, 0x02, 0x68, 0x05, 0x2E]))  // BINGET of nothing
    }
}

final class FolderAndCSVTests: XCTestCase {
    func testImageFolderOrderLabelsAndClassNames() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fm = FileManager.default
        let png = evalFixtures.appendingPathComponent("retrieval/img_00.png")
        for (folder, file) in [("dog", "b.png"), ("dog", "a.PNG"), ("cat", "z.png"), ("cat/sub", "a.png"), ("Zebra", "x.jpg.png")] {
            try fm.createDirectory(at: dir.appendingPathComponent(folder), withIntermediateDirectories: true)
            try fm.copyItem(at: png, to: dir.appendingPathComponent("\(folder)/\(file)"))
        }
        try Data("notes".utf8).write(to: dir.appendingPathComponent("dog/readme.txt"))
        var d = try ImageFolderDataset(root: dir)
        XCTAssertEqual(d.classNames, ["Zebra", "cat", "dog"])  // code-point order, as Python sorts
        XCTAssertEqual(d.files.map { $0.path.replacingOccurrences(of: dir.path + "/", with: "") },
                       ["Zebra/x.jpg.png", "cat/z.png", "cat/sub/a.png", "dog/a.PNG", "dog/b.png"])
        XCTAssertEqual(d.labels, [0, 1, 1, 2, 2])
        XCTAssertEqual(try d.image(at: 0).width, 40)
        let names = dir.appendingPathComponent("names.txt")
        try Data("zebra\ncat\n\ndog\n".utf8).write(to: names)
        try d.overrideClassNames(readLines(names), source: names.path)
        XCTAssertEqual(d.classNames, ["zebra", "cat", "dog"])
        try Data("one\ntwo\n".utf8).write(to: names)
        assertThrows(DatasetError.self, containing: [names.path, "2 class names", "3 classes"]) {
            try d.overrideClassNames(readLines(names), source: names.path)
        }
        assertThrows(DatasetError.self, containing: ["one sub-folder per class"]) {
            _ = try ImageFolderDataset(root: dir.appendingPathComponent("nope"))
        }
    }

    /// --classnames that lists exactly the folder names in another order keeps each folder's own
    /// name (by position, every class would get another's prompts); any other list goes by
    /// position, torchvision's rule, and says so.
    func testClassNamesMatchByNameOnlyWhenTheyAreTheFolderNames() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let png = evalFixtures.appendingPathComponent("retrieval/img_00.png")
        for folder in ["cat", "dog", "bird"] {
            try FileManager.default.createDirectory(at: dir.appendingPathComponent(folder), withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: png, to: dir.appendingPathComponent("\(folder)/1.png"))
        }
        var d = try ImageFolderDataset(root: dir)
        XCTAssertEqual(d.classNames, ["bird", "cat", "dog"])
        XCTAssertEqual(try d.overrideClassNames(["dog", "bird", "cat"], source: "names.txt"), .byName)
        XCTAssertEqual(d.classNames, ["bird", "cat", "dog"])
        XCTAssertEqual(d.labels, [0, 1, 2])
        XCTAssertEqual(try d.overrideClassNames(["bird", "cat", "dog"], source: "names.txt"), .sameOrder)
        XCTAssertEqual(d.classNames, ["bird", "cat", "dog"])
        XCTAssertEqual(try d.overrideClassNames(["a dog", "a bird", "a cat"], source: "names.txt"), .byPosition)
        XCTAssertEqual(d.classNames, ["a dog", "a bird", "a cat"])
        // Partly the folder names, or a name twice: by position.
        var e = try ImageFolderDataset(root: dir)
        XCTAssertEqual(try e.overrideClassNames(["dog", "cat", "fish"], source: "names.txt"), .byPosition)
        XCTAssertEqual(e.classNames, ["dog", "cat", "fish"])
        var f = try ImageFolderDataset(root: dir)
        XCTAssertEqual(try f.overrideClassNames(["dog", "dog", "cat"], source: "names.txt"), .byPosition)
    }

    func testCSVQuotingRelativePathsAndErrors() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let f = dir.appendingPathComponent("pairs.csv")
        try Data("id,filepath,title\r\n1,a.png,\"a cat, on a mat\"\n\n2,/abs/b.png,\"said \"\"hi\"\"\nover two lines\"\n".utf8).write(to: f)
        let p = try CSVPairs(file: f, separator: ",")
        XCTAssertEqual(p.captions, ["a cat, on a mat", "said \"hi\"\nover two lines"])
        XCTAssertEqual(p.images.map(\.path), [dir.appendingPathComponent("a.png").path, "/abs/b.png"])

        let tsv = try CSVPairs(file: evalFixtures.appendingPathComponent("retrieval/data.csv"))
        XCTAssertEqual(tsv.count, 12)
        XCTAssertEqual(tsv.captions[0], "a photo of a airplane number 0")

        assertThrows(DatasetError.self, containing: ["\(f.path):1", "column 'caption'", "'title'"]) {
            _ = try CSVPairs(file: f, captionKey: "caption", separator: ",")
        }
        try Data("filepath,title\na.png,cat\nb.png\n".utf8).write(to: f)
        assertThrows(DatasetError.self, containing: ["\(f.path):3", "column 'title'", "1 field"]) {
            _ = try CSVPairs(file: f, separator: ",")
        }
        try Data("filepath,title\na.png,\"open\n".utf8).write(to: f)
        assertThrows(DatasetError.self, containing: ["\(f.path):2", "never closed"]) { _ = try CSVPairs(file: f, separator: ",") }
        assertThrows(DatasetError.self, containing: ["missing.csv"]) { _ = try CSVPairs(file: dir.appendingPathComponent("missing.csv")) }
    }
}
