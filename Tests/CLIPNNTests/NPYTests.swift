import CLIPEngine
import CLIPNN
import Foundation
import XCTest

final class NPYTests: XCTestCase {
    /// A .npy file from parts: header dictionary text (padded like NumPy unless `pad` is false),
    /// format version and data bytes.
    private func write(header: String, version: UInt8 = 1, data: [UInt8] = [], pad: Bool = true,
                       magic: [UInt8] = [0x93] + Array("NUMPY".utf8)) throws -> URL {
        var h = Array(header.utf8)
        let prefix = magic.count + 2 + (version == 1 ? 2 : 4)
        if pad { h += [UInt8](repeating: 0x20, count: 63 - (prefix + h.count) % 64) + [0x0A] }
        let length = version == 1 ? littleEndianBytes([UInt16(h.count)]) : littleEndianBytes([UInt32(h.count)])
        let url = try makeTemporaryFolder(self).appendingPathComponent("a.npy")
        try Data(magic + [version, 0] + length + h + data).write(to: url)
        return url
    }

    private func dict(_ descr: String, _ shape: String, fortran: String = "False") -> String {
        "{'descr': '\(descr)', 'fortran_order': \(fortran), 'shape': \(shape), }"
    }

    private func read(_ url: URL) throws -> NPYArray { try NPY.read(url) }

    // MARK: round trips

    func testFloatRoundTripAwkwardShapes() throws {
        var rng = SeededGenerator(seed: 0x4E50)
        let folder = try makeTemporaryFolder(self)
        for (i, shape) in awkwardShapes.enumerated() {
            let t = Tensor.random(shape: shape, in: -5...5, using: &rng)
            let url = folder.appendingPathComponent("t\(i).npy")
            try NPY.write(t, to: url)
            let a = try NPY.read(url)
            XCTAssertEqual(a.dtype, "<f4")
            XCTAssertEqual(a.shape, shape)
            let back = try a.floatTensor()
            XCTAssertEqual(back.shape, shape)
            XCTAssertEqual(bits(back.scalars), bits(t.scalars), "\(shape)")
            // Like NumPy: v1.0, header ends in '\n', data starts at a multiple of 64.
            let bytes = try [UInt8](Data(contentsOf: url))
            XCTAssertEqual(bytes[6], 1)
            let dataStart = 10 + (Int(bytes[8]) | Int(bytes[9]) << 8)
            XCTAssertEqual(dataStart % 64, 0)
            XCTAssertEqual(bytes[dataStart - 1], 0x0A)
            XCTAssertEqual(bytes.count - dataStart, t.count * 4)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path).count, awkwardShapes.count)
    }

    /// The exact bytes `np.save(np.zeros((2, 3), np.float32))` and `np.save(np.float32(0))` write.
    func testHeaderBytesMatchNumPy() throws {
        let folder = try makeTemporaryFolder(self)
        for (shape, text) in [([2, 3], "(2, 3)"), ([], "()"), ([5], "(5,)")] {
            let url = folder.appendingPathComponent("z.npy")
            try NPY.write(Tensor(zeros: shape), to: url)
            let bytes = try [UInt8](Data(contentsOf: url))
            let growth = shape.isEmpty ? "" : String(repeating: " ", count: 20)
            var header = "{'descr': '<f4', 'fortran_order': False, 'shape': \(text), }" + growth
            header += String(repeating: " ", count: 64 - (10 + header.utf8.count + 1) % 64) + "\n"
            XCTAssertEqual(Array(bytes[10..<(10 + header.utf8.count)]), Array(header.utf8), text)
        }
    }

    /// Rows appended in blocks give byte for byte the file `NPY.write` gives for the whole array
    /// (the 0-row header rewritten in place has the same length), for any row count, and nothing
    /// appears at the destination before `finish()`.
    func testRowWriterEqualsWholeArrayWrite() throws {
        var rng = SeededGenerator(seed: 0x5257)
        let folder = try makeTemporaryFolder(self)
        for (rows, rowShape) in [(1, [7]), (37, [3, 2, 5]), (1000, [1])] {
            let whole = Tensor.random(shape: [rows] + rowShape, in: -2...2, using: &rng)
            let expected = folder.appendingPathComponent("whole.npy"), streamed = folder.appendingPathComponent("streamed.npy")
            try NPY.write(whole, to: expected)
            try? FileManager.default.removeItem(at: streamed)
            let writer = try NPYRowWriter(url: streamed, rowShape: rowShape)
            var start = 0
            while start < rows {
                let end = min(rows, start + Int.random(in: 1...40, using: &rng))
                try writer.append(whole.slice(rows: start..<end))
                start = end
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: streamed.path), "nothing in place before finish")
            try writer.finish()
            XCTAssertEqual(try Data(contentsOf: streamed), try Data(contentsOf: expected), "\(rows) rows of \(rowShape)")
        }
        let writer = try NPYRowWriter(url: folder.appendingPathComponent("bad.npy"), rowShape: [4])
        XCTAssertThrowsError(try writer.append(Tensor(zeros: [2, 5]))) { XCTAssertTrue("\($0)".contains("expected [4]"), "\($0)") }
    }

    func testInt32RoundTrip() throws {
        let folder = try makeTemporaryFolder(self)
        var rng = SeededGenerator(seed: 5)
        let values = (0..<30).map { _ in Int32.random(in: .min ... .max, using: &rng) } + [Int32.min, Int32.max, 0, -1]
        let url = folder.appendingPathComponent("i.npy")
        try NPY.write(int32: values, shape: [2, 17], to: url)
        let a = try NPY.read(url)
        XCTAssertEqual(a.dtype, "<i4")
        XCTAssertEqual(a.shape, [2, 17])
        XCTAssertEqual(try a.intValues(), values.map(Int.init))
        XCTAssertEqual(try a.floatTensor().scalars, values.map(Float.init))
        try NPY.write(int32: [42], shape: [], to: url)
        XCTAssertEqual(try NPY.read(url).intValues(), [42])
        assertThrows(NPYError.self, { try NPY.write(int32: [1, 2, 3], shape: [2, 2], to: url) }) {
            if case .invalidArgument(url.path, _) = $0 { return true } else { return false }
        }
        XCTAssertEqual(try NPY.read(url).intValues(), [42]) // untouched
    }

    func testVersions2And3AndOtherDtypes() throws {
        let v2 = try write(header: dict("<f8", "(2,)"), version: 2, data: littleEndianBytes([Double(1.5).bitPattern, Double(-3).bitPattern]))
        XCTAssertEqual(try read(v2).floatTensor().scalars, [1.5, -3])
        assertThrows(NPYError.self, { _ = try read(v2).intValues() }) {
            if case .notInteger(_, 0, "1.5") = $0 { return true } else { return false }
        }
        let v3 = try write(header: dict("<i2", "(3,)"), version: 3, data: littleEndianBytes([Int16(-7), 300, Int16.min]))
        XCTAssertEqual(try read(v3).intValues(), [-7, 300, Int(Int16.min)])
        // Python 2 wrote long integers as 3L; '|b1' bools; fortran_order True on 1-D data is C order too.
        let py2 = try write(header: "{'descr': '|b1', 'fortran_order': True, 'shape': (3L,), }", data: [1, 0, 1])
        XCTAssertEqual(try read(py2).floatTensor().scalars, [1, 0, 1])
        let u8 = try write(header: dict("<u8", "(2,)"), data: littleEndianBytes([UInt64(7), UInt64.max]))
        XCTAssertEqual(try read(u8).floatTensor().scalars, [7, Float(UInt64.max)])
        assertThrows(NPYError.self, { _ = try read(u8).intValues() }) {
            if case .notInteger(_, 1, "18446744073709551615") = $0 { return true } else { return false }
        }
        let f4 = try write(header: dict("<f4", "(3,)"), data: littleEndianBytes([Float(2).bitPattern, Float(-0.0).bitPattern, Float(2.5).bitPattern]))
        assertThrows(NPYError.self, { _ = try read(f4).intValues() }) {
            if case .notInteger(_, 2, "2.5") = $0 { return true } else { return false }
        }
        // The public shape may be changed to another shape of the same size, not of another size.
        var a = try read(f4)
        a.shape = [3, 1]
        XCTAssertEqual(try a.floatTensor().shape, [3, 1])
        a.shape = [4]
        assertThrows(NPYError.self, { _ = try a.floatTensor() }) {
            if case .truncated(_, 16, 12) = $0 { return true } else { return false }
        }
    }

    // MARK: malformed files

    func testMalformedFiles() throws {
        let four = littleEndianBytes([Float(1).bitPattern, Float(2).bitPattern, Float(3).bitPattern, Float(4).bitPattern])
        let cases: [(URL, (NPYError) -> Bool)] = [
            (try write(header: dict("<f4", "(4,)"), data: four, magic: Array("\u{93}NUMPX".utf8)), { if case .badMagic = $0 { return true }; return false }),
            (try write(header: dict("<f4", "(4,)"), data: four, magic: Array("PK\u{3}\u{4}xy".utf8)), { if case .badMagic = $0 { return true }; return false }),
            (try write(header: dict("<f4", "(4,)"), version: 4, data: four), { if case .unsupportedVersion(_, 4, 0) = $0 { return true }; return false }),
            (try write(header: dict("<f4", "(2, 3)"), data: four), { if case .truncated(_, 24, 16) = $0 { return true }; return false }),
            (try write(header: dict("<f4", "(3,)"), data: four), { if case .trailingData(_, 12, 16) = $0 { return true }; return false }),
            (try write(header: dict("<f4", "(2, 2)", fortran: "True"), data: four), { if case .fortranOrder = $0 { return true }; return false }),
            (try write(header: dict(">f4", "(4,)"), data: four), { $0.isDtypeError(">f4", "big-endian") }),
            (try write(header: dict("|O", "(2,)"), data: four), { $0.isDtypeError("|O", "object") }),
            (try write(header: dict("<U4", "(1,)"), data: four), { $0.isDtypeError("<U4", "supported") }),
            (try write(header: dict("<c8", "(2,)"), data: four), { $0.isDtypeError("<c8", "supported") }),
            (try write(header: dict("", "(2,)"), data: four), { $0.isDtypeError("", "empty") }),
            (try write(header: "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (4,), }", data: four), { $0.isDtypeError("a list of 1", "structured") }),
            (try write(header: dict("<f4", "(-1, 4)"), data: four), { $0.isHeaderError("shape") }),
            (try write(header: dict("<f4", "(2.0, 2)"), data: four), { $0.isHeaderError("shape") }),
            (try write(header: dict("<f4", "4"), data: four), { $0.isHeaderError("tuple") }),
            (try write(header: dict("<f4", "(4,)", fortran: "0"), data: four), { $0.isHeaderError("fortran_order") }),
            (try write(header: dict("<f4", "(4611686018427387904, 4611686018427387904, 0)"), data: four), { $0.isHeaderError("shape") }),
            (try write(header: dict("<f8", "(4611686018427387904,)"), data: four), { if case .truncated = $0 { return true }; return false }),
            (try write(header: "{'descr': '<f4', 'shape': (4,), }", data: four), { $0.isHeaderError("keys") }),
            (try write(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'x': 1}", data: four), { $0.isHeaderError("keys") }),
            (try write(header: "['<f4', False, (4,)]", data: four), { $0.isHeaderError("dictionary") }),
            (try write(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (4,)", data: four), { $0.isHeaderError("end of text") }),
            (try write(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (4,) } junk", data: four), { $0.isHeaderError("after") }),
            (try write(header: "{'descr': '<f4', 'fortran_order': false, 'shape': (4,) }", data: four), { $0.isHeaderError("unexpected character") }),
        ]
        for (url, matches) in cases {
            let message = assertThrows(NPYError.self, { _ = try NPY.read(url) }, matches: matches)
            XCTAssertTrue(message.contains(url.path), message)
        }
        // The header length runs past the end of the file; a file too short for the preamble.
        let folder = try makeTemporaryFolder(self)
        let cut = folder.appendingPathComponent("cut.npy")
        try Data([0x93] + Array("NUMPY".utf8) + [1, 0, 0xFF, 0x00] + Array("{'descr'".utf8)).write(to: cut)
        assertThrows(NPYError.self, { _ = try NPY.read(cut) }) { $0 == .truncated(file: cut.path, expectedBytes: 265, availableBytes: 18) }
        try Data([0x93] + Array("NUMPY".utf8) + [1]).write(to: cut)
        assertThrows(NPYError.self, { _ = try NPY.read(cut) }) { $0 == .truncated(file: cut.path, expectedBytes: 10, availableBytes: 7) }
        try Data().write(to: cut)
        assertThrows(NPYError.self, { _ = try NPY.read(cut) }) { $0 == .badMagic(file: cut.path) }
        let missing = folder.appendingPathComponent("missing.npy")
        assertThrows(NPYError.self, { _ = try NPY.read(missing) }) { if case .io(missing.path, _) = $0 { return true }; return false }
        // Syntax errors give the byte offset in the file.
        let bad = try write(header: "{'descr' '<f4'}", pad: false)
        assertThrows(NPYError.self, { _ = try NPY.read(bad) }) { if case .invalidHeader(_, 19, _) = $0 { return true }; return false }
    }

    /// Hostile input: random corruptions of a valid file must throw or read, never trap.
    func testRandomCorruptionNeverTraps() throws {
        var rng = SeededGenerator(seed: 123)
        let folder = try makeTemporaryFolder(self)
        let url = folder.appendingPathComponent("x.npy")
        try NPY.write(Tensor.random(shape: [3, 5], using: &rng), to: url)
        let original = try [UInt8](Data(contentsOf: url))
        let (readable, rejected) = try readCorruptions(of: original, at: url, rejecting: NPYError.self,
                                                       syntax: "{}()[]',:-0123456789TF<|f", in: 8..<64, using: &rng) { url in
            let a = try NPY.read(url)
            _ = try a.floatTensor()
            _ = try? a.intValues()
        }
        XCTAssertGreaterThan(rejected, 500)
        XCTAssertGreaterThan(readable, 40)
    }
}

extension NPYError {
    func isDtypeError(_ descr: String, _ words: String) -> Bool {
        guard case .unsupportedDtype(_, descr, let reason) = self else { return false }
        return reason.contains(words)
    }

    func isHeaderError(_ words: String) -> Bool {
        guard case .invalidHeader(_, _, let message) = self else { return false }
        return message.contains(words)
    }
}
