import CLIPEngine
import Foundation
import XCTest

final class CheckedAllocationTests: XCTestCase {
    func testCheckedShapeThrowsOnOverflowNegativeAndRefusedAllocations() throws {
        XCTAssertThrowsError(try Tensor(checkedShape: [1 << 40, 1 << 40])) { e in
            XCTAssertEqual(e as? TensorError, .allocationFailed(shape: [1 << 40, 1 << 40], bytes: nil))
        }
        XCTAssertThrowsError(try Tensor(checkedShape: [-1, 4]))
        // 4 TiB: more than this machine's memory and swap, so the allocator refuses; a thrown error, not fatalError.
        XCTAssertThrowsError(try Tensor(checkedShape: [1 << 40])) { e in
            XCTAssertTrue("\(e)".contains("out of memory"), "\(e)")
        }
        let t = try Tensor(checkedShape: [2, 3])
        XCTAssertEqual(t.count, 6)
    }

    func testMemoryBudgetComparesNeededWithAvailable() throws {
        XCTAssertEqual(MemoryBudget.parseByteCount("4G"), 4 << 30)
        XCTAssertEqual(MemoryBudget.parseByteCount("512m"), 512 << 20)
        XCTAssertEqual(MemoryBudget.parseByteCount("123"), 123)
        XCTAssertNil(MemoryBudget.parseByteCount("-1"))
        XCTAssertNil(MemoryBudget.parseByteCount("lots"))
        XCTAssertGreaterThan(MemoryBudget.available().bytes, 1 << 20)
        XCTAssertNoThrow(try MemoryBudget.require(1 << 20, for: "a small thing"))
        XCTAssertThrowsError(try MemoryBudget.require(Int.max / 2, for: "a huge thing")) { e in
            let m = try? XCTUnwrap(e as? InsufficientMemory)
            XCTAssertEqual(m?.neededBytes, Int.max / 2)
            XCTAssertTrue("\(e)".hasPrefix("a huge thing needs about"), "\(e)")
            XCTAssertTrue("\(e)".contains("is available"), "\(e)")
        }
        XCTAssertThrowsError(try MemoryBudget.require(nil, for: "an overflowing thing")) { e in
            XCTAssertTrue("\(e)".contains("overflows"), "\(e)")
        }
        setenv(MemoryBudget.environmentVariable, "1M", 1)
        defer { unsetenv(MemoryBudget.environmentVariable) }
        XCTAssertEqual(MemoryBudget.available().bytes, 1 << 20)
        XCTAssertThrowsError(try MemoryBudget.require(2 << 20, for: "two MiB"))
        XCTAssertNil(checkedFloatBytes([1 << 62, 2]))
        XCTAssertEqual(checkedFloatBytes([2, 3]), 24)
    }
}

final class InputFileTests: XCTestCase {
    func testNonRegularFilesAndBadPathsAreNamedWithTheReason() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("inputfile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func reason(_ path: String, maximumBytes: Int = InputFile.defaultMaximumBytes) -> String {
            do { _ = try InputFile.read(path, maximumBytes: maximumBytes); return "read" } catch let e as InputFileError {
                XCTAssertEqual(e.path, path)
                return e.reason
            } catch { return "\(error)" }
        }
        XCTAssertEqual(reason(""), "empty path")
        XCTAssertEqual(reason(dir.path), "is a directory, not a regular file")
        XCTAssertEqual(reason("/dev/zero"), "is a character device, not a regular file")
        XCTAssertEqual(reason(dir.appendingPathComponent("missing").path), "no such file")
        let fifo = dir.appendingPathComponent("fifo").path
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        XCTAssertEqual(reason(fifo), "is a FIFO (named pipe), not a regular file", "and it does not wait for a writer")
        let loop = dir.appendingPathComponent("loop").path
        try FileManager.default.createSymbolicLink(atPath: loop, withDestinationPath: loop)
        XCTAssertTrue(reason(loop).contains("symbolic links"))
        let file = dir.appendingPathComponent("f.txt")
        try Data("hello".utf8).write(to: file)
        XCTAssertEqual(try InputFile.read(file.path), Data("hello".utf8))
        XCTAssertEqual(reason(file.path, maximumBytes: 4), "is 5 bytes, over the limit of 4 bytes")
        XCTAssertEqual("\(InputFileError(path: "", reason: "empty path"))", "(empty path): empty path")
    }
}
