import CLIPEngine
import CLIPNN
import Foundation
import XCTest

/// Reads files written by Python (tools/reference/make_io_fixtures.py) and, on request, writes
/// files for Python to check (see that script's --check-swift-written).
final class IOInteropTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    func testReadsSafetensorsWrittenByPython() throws {
        let f = try SafetensorsFile.read(Self.fixtures.appendingPathComponent("python_written.safetensors"))
        XCTAssertEqual(f.keys, ["bf16", "f16", "f16_special", "f32", "i64", "scalar"])
        XCTAssertEqual(f.metadata, ["format": "pt", "writer": "make_io_fixtures"])
        XCTAssertEqual(f.info("f32")?.dtype, "F32")
        XCTAssertEqual(f.info("f32")?.shape, [2, 3])
        XCTAssertEqual(f.info("bf16")?.dtype, "BF16")
        XCTAssertEqual(f.info("f16")?.dtype, "F16")
        XCTAssertEqual(f.info("scalar")?.shape, [])
        XCTAssertNil(f.info("missing"))

        func check(_ key: String, _ shape: [Int], _ formula: (Int) -> Float) throws {
            let t = try f.tensor(key)
            XCTAssertEqual(t.shape, shape, key)
            XCTAssertEqual(t.scalars, (0..<t.count).map(formula), key)
        }
        try check("f32", [2, 3]) { Float($0) * 0.5 - 1 }
        try check("f16", [8]) { Float($0) * 0.25 - 1 }
        try check("bf16", [2, 2]) { Float($0) * 1.5 - 2 }
        try check("i64", [5]) { Float($0 - 2) }
        try check("scalar", []) { _ in 3.25 }
        let special = try f.tensor("f16_special").scalars
        XCTAssertEqual(special.map(\.bitPattern), [0, -0.0, .infinity, -.infinity, 0x1p-24, 65504].map { Float($0).bitPattern })
    }

    func testReadsNPYWrittenByPython() throws {
        func read(_ name: String) throws -> NPYArray { try NPY.read(Self.fixtures.appendingPathComponent("python_written_\(name).npy")) }
        let f4 = try read("f4")
        XCTAssertEqual(f4.dtype, "<f4")
        XCTAssertEqual(f4.shape, [3, 4])
        XCTAssertEqual(try f4.floatTensor().scalars, (0..<12).map { Float($0) * 0.25 - 1 })
        let f8 = try read("f8")
        XCTAssertEqual(f8.dtype, "<f8")
        XCTAssertEqual(try f8.floatTensor().scalars, (0..<6).map { Float($0) / 8 })
        XCTAssertThrowsError(try f8.intValues())
        let i4 = try read("i4")
        XCTAssertEqual(i4.dtype, "<i4")
        XCTAssertEqual(try i4.intValues(), Array(-3..<3))
        XCTAssertEqual(try i4.floatTensor().scalars, (-3..<3).map(Float.init))
        let i8 = try read("i8")
        XCTAssertEqual(i8.dtype, "<i8")
        XCTAssertEqual(try i8.intValues(), (0..<4).map { ($0 - 2) << 40 })
        XCTAssertEqual(try i8.floatTensor().scalars, (0..<4).map { Float(($0 - 2) << 40) })
        let u1 = try read("u1")
        XCTAssertEqual(u1.dtype, "|u1")
        XCTAssertEqual(u1.shape, [2, 3])
        XCTAssertEqual(try u1.intValues(), Array(250..<256))
        let f2 = try read("f2")
        XCTAssertEqual(f2.dtype, "<f2")
        XCTAssertEqual(try f2.floatTensor().scalars, [0, 0.5, 1, 1.5])
        assertThrows(NPYError.self, { _ = try f2.intValues() }) {
            if case .notInteger(_, 1, "0.5") = $0 { return true } else { return false }
        }
        let scalar = try read("scalar")
        XCTAssertEqual(scalar.shape, [])
        XCTAssertEqual(try scalar.floatTensor().scalars, [-7.5])
    }

    /// With SWIFTCLIP_IO_INTEROP_DIR set, writes files that
    /// `tools/reference/make_io_fixtures.py --check-swift-written DIR` verifies with Python.
    func testWritesFilesForPythonToCheck() throws {
        guard let dir = ProcessInfo.processInfo.environment["SWIFTCLIP_IO_INTEROP_DIR"] else {
            throw XCTSkip("set SWIFTCLIP_IO_INTEROP_DIR to write files for the Python check")
        }
        let out = URL(fileURLWithPath: dir)
        func arange(_ shape: [Int], _ f: (Int) -> Float) throws -> Tensor {
            try Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map(f))
        }
        try Safetensors.write([
            "a": try arange([2, 3, 4]) { Float($0) * 0.5 - 3 },
            "scalar": try arange([]) { _ in 1.25 },
            "empty": try arange([0, 3]) { _ in 0 },
        ], metadata: ["k": "v", "quote\"d": "ü"], to: out.appendingPathComponent("swift_written.safetensors"))
        try NPY.write(try arange([3, 5]) { Float($0) * 0.25 - 2 }, to: out.appendingPathComponent("swift_written_f4.npy"))
        try NPY.write(try arange([]) { _ in 1.25 }, to: out.appendingPathComponent("swift_written_scalar.npy"))
        try NPY.write(try arange([0, 2]) { _ in 0 }, to: out.appendingPathComponent("swift_written_empty.npy"))
        try NPY.write(int32: (0..<6).map { Int32($0 - 3) }, shape: [2, 3], to: out.appendingPathComponent("swift_written_i4.npy"))
    }

    /// Benchmark, not a test: with SWIFTCLIP_IO_BENCH set, times writing and loading a
    /// convnext_v2_tiny-sized (~369 MB) F32 file and prints the figures; with
    /// SWIFTCLIP_IO_BENCH=/path/to/file.safetensors, times loading that file instead.
    func testManualLargeFileTiming() throws {
        guard let bench = ProcessInfo.processInfo.environment["SWIFTCLIP_IO_BENCH"] else {
            throw XCTSkip("set SWIFTCLIP_IO_BENCH=1 (or to a .safetensors path) to time a large safetensors file")
        }
        if bench.hasSuffix(".safetensors") {
            for run in 0..<3 {
                let start = Date()
                let loaded = try SafetensorsFile.read(URL(fileURLWithPath: bench)).tensors()
                let seconds = Date().timeIntervalSince(start)
                let floats = loaded.values.reduce(0) { $0 + $1.count }
                print("safetensors: run \(run): \(bench): \(loaded.count) tensors, \(floats) values in \(String(format: "%.3f", seconds)) s")
            }
            return
        }
        var rng = SeededGenerator(seed: 7)
        var tensors: [String: Tensor] = [:]
        for i in 0..<90 { tensors["layer\(i).weight"] = Tensor.random(shape: [1024, 1000], using: &rng) }
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("swiftclip-bench-\(UUID()).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        var start = Date()
        try Safetensors.write(tensors, to: url)
        let writeTime = Date().timeIntervalSince(start)
        for run in 0..<3 {
            start = Date()
            let file = try SafetensorsFile.read(url)
            let loaded = try file.tensors()
            let seconds = Date().timeIntervalSince(start)
            XCTAssertEqual(loaded.count, 90)
            print("safetensors: run \(run): loaded 90 tensors, 368.6 MB in \(String(format: "%.3f", seconds)) s (write \(String(format: "%.3f", writeTime)) s)")
        }
    }
}

// MARK: - Helpers shared by the I/O tests

/// A fresh folder for one test, removed with it.
func makeTemporaryFolder(_ test: XCTestCase) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("swiftclip-io-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}

/// Asserts that `body` throws an `E` accepted by `matches`, and returns its description.
@discardableResult
func assertThrows<E: Error>(_ type: E.Type, _ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line,
                            matches: (E) -> Bool) -> String {
    do {
        try body()
        XCTFail("expected \(E.self), nothing was thrown", file: file, line: line)
    } catch let e as E {
        XCTAssertTrue(matches(e), "unexpected error: \(e)", file: file, line: line)
        return "\(e)"
    } catch {
        XCTFail("expected \(E.self), got \(error)", file: file, line: line)
    }
    return ""
}

/// Byte-exact comparison of Float values (NaN payloads and signed zeros included).
func bits(_ values: [Float]) -> [UInt32] { values.map(\.bitPattern) }

func littleEndianBytes<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
    values.flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } }
}

/// Hostile input: writes 1500 random corruptions of `original` to `url` (truncations, random
/// bytes anywhere, header-syntax characters from `alphabet` within `range`) and runs `read` on
/// each. Every failure must be an `E`; a trap would crash the test run. Returns the counts.
func readCorruptions<E: Error>(of original: [UInt8], at url: URL, rejecting _: E.Type, syntax alphabet: String, in range: Range<Int>,
                               using rng: inout SeededGenerator, read: (URL) throws -> Void) throws -> (readable: Int, rejected: Int) {
    var (readable, rejected) = (0, 0)
    for _ in 0..<1500 {
        var bytes = original
        switch Int.random(in: 0..<3, using: &rng) {
        case 0:
            bytes.removeLast(Int.random(in: 1...bytes.count, using: &rng))
        case 1:
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
        default:
            bytes[Int.random(in: range, using: &rng)] = Array(alphabet.utf8).randomElement(using: &rng)!
        }
        try Data(bytes).write(to: url)
        do {
            try read(url)
            readable += 1
        } catch is E {
            rejected += 1
        }
    }
    return (readable, rejected)
}

/// Awkward shapes for round trips: scalar, zero-size, odd sizes, many dimensions.
let awkwardShapes: [[Int]] = [[], [1], [7], [0], [3, 0], [2, 0, 3], [3, 5, 7], [1, 1, 1, 13], [2, 3, 1, 5, 1], [257]]
