import CLIPEngine
import CLIPNN
import Foundation
import XCTest

/// Outputs replace only regular files: links are followed, devices and FIFOs written in place,
/// anything else refused; every error names the destination.
final class OutputFileTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("outputs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func fileType(_ path: String) -> mode_t {
        var info = stat()
        return lstat(path, &info) == 0 ? info.st_mode & S_IFMT : 0
    }

    func testSymlinkIsFollowedAndKept() throws {
        let real = dir.appendingPathComponent("real.npy"), link = dir.appendingPathComponent("link.npy")
        try Data("old".utf8).write(to: real)
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: real)
        try NPY.write(Tensor(repeating: 2, shape: [3]), to: link)
        XCTAssertEqual(fileType(link.path), S_IFLNK)
        XCTAssertEqual(try NPY.read(real).floatTensor().scalars, [2, 2, 2])
        // A dangling link cannot be followed: an error naming it, nothing created.
        let dangling = dir.appendingPathComponent("dangling.npy")
        try FileManager.default.createSymbolicLink(atPath: dangling.path, withDestinationPath: dir.appendingPathComponent("nowhere").path)
        XCTAssertThrowsError(try NPY.write(Tensor(zeros: [1]), to: dangling)) { XCTAssertTrue("\($0)".contains(dangling.path), "\($0)") }
    }

    func testDevicesAreWrittenInPlaceAndDirectoriesRefused() throws {
        // Private device nodes (mknod, when allowed; else /dev's, which only root could replace) keep a
        // regression from replacing the machine's /dev/null or /dev/full.
        let null = dir.appendingPathComponent("null")
        let nullNode = mknod(null.path, S_IFCHR | 0o666, dev_t(0x103) /* makedev(1, 3): /dev/null */) == 0 ? null.path : "/dev/null"
        try NPY.write(Tensor(zeros: [4]), to: URL(fileURLWithPath: nullNode))
        XCTAssertEqual(fileType(nullNode), S_IFCHR)
        let full = dir.appendingPathComponent("full")
        let node = mknod(full.path, S_IFCHR | 0o666, dev_t(0x107) /* makedev(1, 7): /dev/full */) == 0 ? full.path : "/dev/full"
        XCTAssertThrowsError(try NPY.write(Tensor(zeros: [4]), to: URL(fileURLWithPath: node))) { e in
            XCTAssertTrue("\(e)".contains(node) && "\(e)".contains("No space left on device"), "\(e)")
        }
        XCTAssertEqual(fileType(node), S_IFCHR, "the device node is not replaced")
        XCTAssertThrowsError(try NPY.write(Tensor(zeros: [1]), to: dir)) { e in
            XCTAssertTrue("\(e)".contains("directory"), "\(e)")
        }
        let missing = dir.appendingPathComponent("no/such/x.npy")
        XCTAssertThrowsError(try NPY.write(Tensor(zeros: [1]), to: missing)) { e in
            XCTAssertTrue("\(e)".contains("does not exist"), "\(e)")
        }
        // The writer's own error names the destination (what callers without a wrapper print).
        XCTAssertThrowsError(try AtomicFileWriter.write(to: dir) { _ in }) { e in
            XCTAssertEqual("\(e)", "\(dir.path): output is a directory; refusing to replace it")
        }
    }

    func testFIFOIsWrittenInPlace() throws {
        let fifo = dir.appendingPathComponent("pipe")
        XCTAssertEqual(mkfifo(fifo.path, 0o600), 0)
        final class Box: @unchecked Sendable { var data = Data() }
        let box = Box(), done = DispatchSemaphore(value: 0)
        Thread { box.data = FileHandle(forReadingAtPath: fifo.path)?.readDataToEndOfFile() ?? Data(); done.signal() }.start()
        try AtomicFileWriter.write(to: fifo) { w in try w.write(Array("through the pipe".utf8)) }
        XCTAssertEqual(done.wait(timeout: .now() + 10), .success)
        XCTAssertEqual(String(decoding: box.data, as: UTF8.self), "through the pipe")
        XCTAssertEqual(fileType(fifo.path), S_IFIFO)
    }

    func testJSONSyntaxErrorsHaveAPosition() {
        XCTAssertNil(JSONSyntax.firstError(in: Data(#"{"a": [1, 2]}"#.utf8)))
        XCTAssertEqual(JSONSyntax.firstError(in: Data("{\n  \"a\": [1,}".utf8))?.hasPrefix("line 2, column 11"), true,
                       JSONSyntax.firstError(in: Data("{\n  \"a\": [1,}".utf8)) ?? "")
        XCTAssertEqual(JSONSyntax.firstError(in: Data()), "the file is empty")
        XCTAssertTrue(JSONSyntax.firstError(in: Data(String(repeating: "[", count: 10_000).utf8))?.contains("nested deeper") ?? false)
    }

    func testNonFiniteInitialisationIsAnError() {
        let b = WeightBuilder(source: nil)
        XCTAssertThrowsError(try b.root.parameter("w", shape: [2], initializer: .uniform(bound: .infinity))) { e in
            XCTAssertTrue("\(e)".contains("'w'") && "\(e)".contains("not finite"), "\(e)")
        }
        XCTAssertThrowsError(try b.root.parameter("v", shape: [1 << 40, 1 << 30], initializer: .zeros))
    }
}
