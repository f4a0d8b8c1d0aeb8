import CLIPEngine
import CLIPNN
import Foundation
import XCTest

final class SafetensorsTests: XCTestCase {
    /// A safetensors file from parts: header text, data bytes, and optionally a forged length.
    private func write(header: String, data: [UInt8] = [], length: UInt64? = nil, named name: String = "t.safetensors") throws -> URL {
        let h = Array(header.utf8)
        let bytes = littleEndianBytes([length ?? UInt64(h.count)]) + h + data
        let url = try makeTemporaryFolder(self).appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url
    }

    private func entry(_ key: String, _ dtype: String, _ shape: [Int], _ begin: Int, _ end: Int) -> String {
        "\"\(key)\":{\"dtype\":\"\(dtype)\",\"shape\":\(shape),\"data_offsets\":[\(begin),\(end)]}"
    }

    // MARK: round trips

    func testRoundTripAwkwardShapesAndMetadata() throws {
        var rng = SeededGenerator(seed: 0x5AFE)
        var tensors: [String: Tensor] = [:]
        for (i, shape) in awkwardShapes.enumerated() { tensors["t\(i).w\(shape.count)"] = Tensor.random(shape: shape, in: -3...3, using: &rng) }
        tensors["name with \"quotes\", \\ and ü"] = Tensor.random(shape: [2, 2], using: &rng)
        let metadata = ["format": "pt", "note": "line\nbreak \"quoted\" \u{1} ✓"]
        let folder = try makeTemporaryFolder(self)
        let url = folder.appendingPathComponent("model.safetensors")
        try Safetensors.write(tensors, metadata: metadata, to: url)

        let f = try SafetensorsFile.read(url)
        XCTAssertEqual(f.keys, tensors.keys.sorted())
        XCTAssertEqual(f.metadata, metadata)
        for (key, t) in tensors {
            XCTAssertEqual(f.info(key)?.dtype, "F32")
            XCTAssertEqual(f.info(key)?.shape, t.shape)
            let back = try f.tensor(key)
            XCTAssertEqual(back.shape, t.shape, key)
            XCTAssertEqual(bits(back.scalars), bits(t.scalars), key)
        }
        // Header length is a multiple of 8 and the data fills the rest of the file exactly.
        let bytes = try [UInt8](Data(contentsOf: url))
        let n = Int(bytes[0..<8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
        XCTAssertEqual(n % 8, 0)
        XCTAssertEqual(bytes.count - 8 - n, tensors.values.reduce(0) { $0 + $1.count * 4 })
        XCTAssertEqual(bytes[8 + n - 1] == 0x20 || bytes[8 + n - 1] == UInt8(ascii: "}"), true)
        // Atomic writing leaves no temporary file behind.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["model.safetensors"])
    }

    func testWriteReplacesAtomicallyAndFailsCleanly() throws {
        let folder = try makeTemporaryFolder(self)
        let url = folder.appendingPathComponent("w.safetensors")
        var rng = SeededGenerator(seed: 3)
        try Safetensors.write(["a": Tensor.random(shape: [4], using: &rng)], to: url)
        let replacement = Tensor.random(shape: [2, 3], using: &rng)
        try Safetensors.write(["b": replacement], to: url)
        let f = try SafetensorsFile.read(url)
        XCTAssertEqual(f.keys, ["b"])
        XCTAssertEqual(bits(try f.tensor("b").scalars), bits(replacement.scalars))

        // Reserved key: refused before touching the destination.
        let before = try Data(contentsOf: url)
        assertThrows(SafetensorsError.self, { try Safetensors.write(["__metadata__": replacement], to: url) }) {
            if case .invalidArgument = $0 { return true } else { return false }
        }
        XCTAssertEqual(try Data(contentsOf: url), before)
        // Missing folder: an I/O error naming the file, and nothing created.
        let nowhere = folder.appendingPathComponent("missing/x.safetensors")
        let message = assertThrows(SafetensorsError.self, { try Safetensors.write(["a": replacement], to: nowhere) }) {
            if case .io = $0 { return true } else { return false }
        }
        XCTAssertTrue(message.contains(nowhere.path), message)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["w.safetensors"])
    }

    // MARK: dtype decoding against hand-computed bit patterns

    func testFloat16Decoding() throws {
        let cases: [(UInt16, Float)] = [
            (0x0000, 0), (0x8000, -0.0), (0x0001, 0x1p-24), (0x8001, -0x1p-24), (0x03FF, 1023 * 0x1p-24),
            (0x0400, 0x1p-14), (0x3C00, 1), (0xC000, -2), (0x3555, 0x1.554p-2), (0x7BFF, 65504),
            (0x7C00, .infinity), (0xFC00, -.infinity),
        ]
        let n = cases.count
        let url = try write(header: "{" + entry("h", "F16", [n + 1], 0, 2 * (n + 1)) + "}",
                            data: littleEndianBytes(cases.map(\.0) + [0x7E00]))
        let got = try SafetensorsFile.read(url).tensor("h").scalars
        XCTAssertEqual(bits(Array(got[0..<n])), bits(cases.map(\.1)))
        XCTAssertTrue(got[n].isNaN)
    }

    func testBFloat16Decoding() throws {
        let cases: [(UInt16, Float)] = [
            (0x0000, 0), (0x8000, -0.0), (0x3F80, 1), (0xC040, -3), (0x4049, 3.140625),
            (0x0001, Float(bitPattern: 0x0001_0000)), (0x0080, 0x1p-126), (0x7F7F, Float(bitPattern: 0x7F7F_0000)),
            (0x7F80, .infinity), (0xFF80, -.infinity),
        ]
        let n = cases.count
        let url = try write(header: "{" + entry("b", "BF16", [1, n + 1], 0, 2 * (n + 1)) + "}",
                            data: littleEndianBytes(cases.map(\.0) + [0x7FC0]))
        let t = try SafetensorsFile.read(url).tensor("b")
        XCTAssertEqual(t.shape, [1, n + 1])
        XCTAssertEqual(bits(Array(t.scalars[0..<n])), bits(cases.map(\.1)))
        XCTAssertTrue(t.scalars[n].isNaN)
        XCTAssertEqual(Float(bitPattern: 0x0001_0000), 0x1p-133) // the subnormal above
    }

    func testOtherDtypesAndUnalignedOffsets() throws {
        // U8 [2] at 0..<2, then F32 [2] at the unaligned offset 2..<10, F64, I32, I64, BOOL, F8.
        var data: [UInt8] = [7, 255]
        data += littleEndianBytes([Float(1.5).bitPattern, Float(-2.25).bitPattern])
        data += littleEndianBytes([Double(0.1).bitPattern, Double(-1e300).bitPattern])
        data += littleEndianBytes([Int32(-5), Int32.max])
        data += littleEndianBytes([Int64(-1) << 40])
        data += [0, 1, 2]
        data += [0x38, 0xB8, 0x01, 0x7F, 0x7E] // e4m3: 1, -1, 2^-9, NaN, 448
        data += [0x3C, 0x7C, 0x01]             // e5m2: 1, inf, 2^-16
        let header = "{" + [
            entry("u8", "U8", [2], 0, 2), entry("f32", "F32", [2], 2, 10), entry("f64", "F64", [2], 10, 26),
            entry("i32", "I32", [2], 26, 34), entry("i64", "I64", [], 34, 42), entry("bool", "BOOL", [3], 42, 45),
            entry("e4m3", "F8_E4M3", [5], 45, 50), entry("e5m2", "F8_E5M2", [3], 50, 53),
        ].joined(separator: ",") + "}"
        let f = try SafetensorsFile.read(try write(header: header, data: data))
        XCTAssertEqual(try f.tensor("u8").scalars, [7, 255])
        XCTAssertEqual(try f.tensor("f32").scalars, [1.5, -2.25])
        XCTAssertEqual(try f.tensor("f64").scalars, [Float(0.1), -.infinity])
        XCTAssertEqual(try f.tensor("i32").scalars, [-5, Float(Int32.max)])
        XCTAssertEqual(try f.tensor("i64").scalars, [-0x1p40])
        XCTAssertEqual(try f.tensor("bool").scalars, [0, 1, 1])
        let e4m3 = try f.tensor("e4m3").scalars
        XCTAssertEqual([e4m3[0], e4m3[1], e4m3[2], e4m3[4]], [1, -1, 0x1p-9, 448])
        XCTAssertTrue(e4m3[3].isNaN)
        XCTAssertEqual(try f.tensor("e5m2").scalars, [1, .infinity, 0x1p-16])
        XCTAssertEqual(f.info("i64")?.shape, [])
    }

    // MARK: malformed files

    func testShortFileAndAbsurdHeaderLength() throws {
        let folder = try makeTemporaryFolder(self)
        for size in [0, 5, 7] {
            let url = folder.appendingPathComponent("short\(size)")
            try Data(repeating: 0, count: size).write(to: url)
            let message = assertThrows(SafetensorsError.self, { _ = try SafetensorsFile.read(url) }) {
                $0 == .fileTooShort(file: url.path, size: size)
            }
            XCTAssertTrue(message.contains(url.path))
        }
        for length: UInt64 in [3, 200_000_000, UInt64.max, 1 << 63] {
            let url = try write(header: "{}", length: length)
            assertThrows(SafetensorsError.self, { _ = try SafetensorsFile.read(url) }) {
                $0 == .invalidHeaderLength(file: url.path, length: length, fileSize: 10)
            }
        }
        // A header over the 100 MB limit is refused even when the file is that long.
        let url = try write(header: "{}", length: 100_000_001)
        let handle = try FileHandle(forWritingTo: url)
        try handle.truncate(atOffset: 8 + 100_000_001) // sparse: no 100 MB written
        try handle.close()
        assertThrows(SafetensorsError.self, { _ = try SafetensorsFile.read(url) }) {
            if case .invalidHeaderLength(_, 100_000_001, _) = $0 { return true } else { return false }
        }
        // Exactly-empty header object with nothing else is a valid empty file.
        XCTAssertEqual(try SafetensorsFile.read(try write(header: "{}")).keys, [])
    }

    func testHeaderThatIsNotAJSONObject() throws {
        let cases: [(String, Int?)] = [
            ("{\"a\": ", nil), ("", nil), ("[1, 2]", 8), ("\"text\"", 8), ("{\"a\":{}} trailing", nil),
            ("{'a': 1}", 9), ("{\"a\":1,}", nil), ("{\"a\":1,\"a\":2}", 15), ("{\"a\":\"\\x\"}", nil),
            ("{\"a\":tru}", nil), ("\u{FEFF}{}", 8), (String(repeating: "[", count: 100_000), nil), ("{\"\\ud800\":1}", nil),
        ]
        for (header, offset) in cases {
            let url = try write(header: header)
            assertThrows(SafetensorsError.self, { _ = try SafetensorsFile.read(url) }) {
                guard case .invalidHeader(url.path, let o, _) = $0 else { return false }
                return offset == nil || o == offset
            }
        }
        // Invalid UTF-8 inside a string.
        let bad = littleEndianBytes([UInt64(6)]) + [UInt8(ascii: "\""), 0xFF, 0xFE, UInt8(ascii: "\""), 0x20, 0x20]
        let url = try makeTemporaryFolder(self).appendingPathComponent("utf8")
        try Data(bad).write(to: url)
        assertThrows(SafetensorsError.self, { _ = try SafetensorsFile.read(url) }) {
            if case .invalidHeader(_, 8, _) = $0 { return true } else { return false }
        }
    }

    func testMalformedEntries() throws {
        let data = [UInt8](repeating: 1, count: 16)
        let cases: [(String, (SafetensorsError) -> Bool)] = [
            ("{\"w\":{\"shape\":[4],\"data_offsets\":[0,16]}}", { $0.isEntryError("w", "dtype") }),
            ("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,16]}}", { $0.isEntryError("w", "shape") }),
            ("{\"w\":{\"dtype\":\"F32\",\"shape\":[4]}}", { $0.isEntryError("w", "data_offsets") }),
            ("{\"w\":[1]}", { $0.isEntryError("w", "object") }),
            ("{\"w\":{\"dtype\":3,\"shape\":[4],\"data_offsets\":[0,16]}}", { $0.isEntryError("w", "dtype") }),
            ("{" + entry("w", "F4", [4], 0, 16) + "}", { if case .unknownDtype(_, "w", "F4") = $0 { return true } else { return false } }),
            ("{" + entry("w", "f32", [4], 0, 16) + "}", { if case .unknownDtype(_, "w", "f32") = $0 { return true } else { return false } }),
            ("{\"w\":{\"dtype\":\"F32\",\"shape\":[-1,4],\"data_offsets\":[0,16]}}", { $0.isEntryError("w", "negative") }),
            ("{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,16]}}", { $0.isEntryError("w", "not an integer") }),
            ("{\"w\":{\"dtype\":\"F32\",\"shape\":[4e0],\"data_offsets\":[0,16]}}", { $0.isEntryError("w", "not an integer") }),
            ("{\"w\":{\"dtype\":\"F32\",\"shape\":[\"4\"],\"data_offsets\":[0,16]}}", { $0.isEntryError("w", "not an integer") }),
            ("{\"w\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,16]}}", { $0.isEntryError("w", "list") }),
            ("{\"w\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,16]}}", { $0.isEntryError("w", "not an integer") }),
            ("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0]}}", { $0.isEntryError("w", "2 values") }),
            ("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,0]}}", { $0.isEntryError("w", "before") }),
            ("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[-4,12]}}", { $0.isEntryError("w", "negative") }),
            ("{" + entry("w", "F32", [4611686018427387904, 4611686018427387904, 0], 0, 0) + "}", { $0.isEntryError("w", "too large") }),
            ("{" + entry("w", "F64", [1 << 61], 0, 0) + "}", { $0.isEntryError("w", "too large") }),
            ("{" + entry("w", "F32", [2, 2], 0, 12) + "}", {
                $0 == .sizeMismatch(file: $0.file, key: "w", shape: [2, 2], dtype: "F32", expectedBytes: 16, actualBytes: 12)
            }),
            ("{" + entry("w", "F32", [2, 3], 0, 24) + "}", { $0 == .truncated(file: $0.file, key: "w", begin: 0, end: 24, available: 16) }),
            ("{" + entry("w", "F32", [1], 16, 20) + "}", { $0 == .truncated(file: $0.file, key: "w", begin: 16, end: 20, available: 16) }),
            ("{\"__metadata__\":{\"k\":1}}", { $0.isEntryError("__metadata__", "strings") }),
            ("{\"__metadata__\":[]}", { $0.isEntryError("__metadata__", "object") }),
        ]
        for (header, matches) in cases {
            let url = try write(header: header, data: data)
            let message = assertThrows(SafetensorsError.self, { _ = try SafetensorsFile.read(url) }, matches: matches)
            XCTAssertTrue(message.contains(url.path), message)
        }
        let url = try write(header: "{" + entry("w", "F32", [2, 3], 0, 24) + "}", data: data)
        let message = assertThrows(SafetensorsError.self, { _ = try SafetensorsFile.read(url) }) { _ in true }
        XCTAssertEqual(message, "\(url.path): truncated: tensor 'w' needs bytes 0..<24 but the data section has only 16 bytes")
    }

    func testMissingKeyAndMissingFile() throws {
        let f = try SafetensorsFile.read(try write(header: "{" + entry("w", "F32", [1], 0, 4) + "}", data: [0, 0, 128, 63]))
        XCTAssertEqual(try f.tensor("w").scalars, [1])
        assertThrows(SafetensorsError.self, { _ = try f.tensor("v") }) { $0 == .keyNotFound(file: f.url.path, key: "v") }
        let missing = URL(fileURLWithPath: "/nonexistent/folder/x.safetensors")
        let message = assertThrows(SafetensorsError.self, { _ = try SafetensorsFile.read(missing) }) {
            if case .io(missing.path, _) = $0 { return true } else { return false }
        }
        XCTAssertTrue(message.contains("No such file"), message)
        assertThrows(SafetensorsError.self, { _ = try SafetensorsFile.read(URL(fileURLWithPath: NSTemporaryDirectory())) }) {
            if case .io = $0 { return true } else { return false }
        }
    }

    /// Hostile input: random corruptions of a valid file must throw or read, never trap.
    func testRandomCorruptionNeverTraps() throws {
        var rng = SeededGenerator(seed: 99)
        let folder = try makeTemporaryFolder(self)
        let good = folder.appendingPathComponent("good.safetensors")
        try Safetensors.write(["a": Tensor.random(shape: [3, 4], using: &rng), "b": Tensor.random(shape: [5], using: &rng),
                               "c": Tensor.random(shape: [], using: &rng)], metadata: ["m": "v"], to: good)
        let original = try [UInt8](Data(contentsOf: good))
        let headerLength = Int(original[0]) | Int(original[1]) << 8
        let (readable, rejected) = try readCorruptions(of: original, at: folder.appendingPathComponent("bad.safetensors"),
                                                       rejecting: SafetensorsError.self, syntax: "{}[]\",:-0123456789e.",
                                                       in: 8..<(8 + headerLength), using: &rng) { url in
            let f = try SafetensorsFile.read(url)
            for key in f.keys { _ = try f.tensor(key) }
        }
        XCTAssertGreaterThan(rejected, 500)
        XCTAssertGreaterThan(readable, 50)
    }
}

extension SafetensorsError {
    var file: String {
        switch self {
        case let .io(f, _), let .fileTooShort(f, _), let .invalidHeaderLength(f, _, _), let .invalidHeader(f, _, _),
             let .invalidEntry(f, _, _), let .unknownDtype(f, _, _), let .sizeMismatch(f, _, _, _, _, _),
             let .truncated(f, _, _, _, _), let .keyNotFound(f, _), let .invalidArgument(f, _):
            return f
        }
    }

    func isEntryError(_ key: String, _ words: String) -> Bool {
        guard case .invalidEntry(_, key, let message) = self else { return false }
        return message.contains(words)
    }
}
