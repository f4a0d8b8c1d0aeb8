import CLIPEngine
import CLIPNN
import Foundation
import XCTest

/// The torch zip reader against files written by torch.save itself
/// (tools/reference/make_checkpoint_fixtures.py), and the writer against the reader.
final class TorchCheckpointTests: XCTestCase {
    let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/torch")

    func expected(_ key: String) throws -> Tensor {
        try SafetensorsFile.read(dir.appendingPathComponent("expected.safetensors")).tensor(key)
    }

    func tensor(_ v: TorchValue?, _ what: String) throws -> TorchTensor {
        guard case .tensor(let t)? = v else { XCTFail("\(what) is not a tensor"); throw TensorError.invalidArgument(what) }
        return t
    }

    func testFloatTypesDecodeExactly() throws {
        for (file, storage) in [("fp32", "FloatStorage"), ("fp16", "HalfStorage"), ("bf16", "BFloat16Storage")] {
            let weights = try WeightFiles.open(dir.appendingPathComponent(file + ".pt"))
            XCTAssertEqual(weights.allKeys, ["a", "b", "scalar"], file)
            for key in weights.allKeys {
                let t = try XCTUnwrap(try weights.tensor(forKey: key))
                let e = try expected("\(file)/\(key)")
                XCTAssertEqual(t.shape, e.shape, "\(file)/\(key)")
                XCTAssertEqual(t.scalars, e.scalars, "\(file)/\(key)")
            }
            let checkpoint = try TorchCheckpoint.read(dir.appendingPathComponent(file + ".pt"))
            XCTAssertEqual(try tensor(checkpoint.root["a"], "a").storageType, storage)
        }
    }

    func testViewsWithOffsetsStridesAndSharedStorage() throws {
        let c = try TorchCheckpoint.read(dir.appendingPathComponent("views.pt"))
        let base = try tensor(c.root["base"], "base"), t = try tensor(c.root["t"], "t"), slice = try tensor(c.root["slice"], "slice")
        XCTAssertEqual(t.strides, [1, 6])
        XCTAssertEqual(slice.storageOffset, 5)
        XCTAssertEqual(slice.strides, [3])
        XCTAssertEqual(Set([base.storageKey, t.storageKey, slice.storageKey]).count, 1, "one shared storage")
        for (key, value) in [("base", base), ("t", t), ("slice", slice)] {
            let decoded = try value.decode()
            XCTAssertEqual(decoded.shape, try expected("views/" + key).shape, key)
            XCTAssertEqual(decoded.scalars, try expected("views/" + key).scalars, key)
        }
        guard case .list(let nested)? = c.root["nested"], nested.count == 2, case .tuple(let tuple) = nested[1] else {
            return XCTFail("nested: \(String(describing: c.root["nested"]))")
        }
        XCTAssertEqual(try tensor(nested[0]["x"], "x").decode().scalars, try expected("views/nested/0/x").scalars)
        guard tuple.count == 5, case .int(1) = tuple[0], case .float(2.5) = tuple[1], case .string("s") = tuple[2],
              case .none = tuple[3], case .bool(true) = tuple[4] else { return XCTFail("tuple: \(tuple)") }
    }

    func testMaliciousPickleIsRefusedAndNothingRuns() throws {
        let marker = "/tmp/swiftclip-pickle-executed"
        try? FileManager.default.removeItem(atPath: marker)
        let url = dir.appendingPathComponent("malicious.pt")
        XCTAssertThrowsError(try TorchCheckpoint.read(url)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("refused global 'posix.system'") || text.contains("refused global 'os.system'"), text)
            XCTAssertTrue(text.contains(url.path), text)
        }
        XCTAssertThrowsError(try WeightFiles.open(url))
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker), "the pickle's command ran")
    }

    func testOtherGlobalsAreRefusedByName() throws {
        // A pickle naming builtins.eval (and one calling an unlisted torch function) in a real archive.
        for (module, name) in [("builtins", "eval"), ("torch", "load"), ("__main__", "Model")] {
            var p = PickleWriter()
            p.global(module, name); p.mark(); p.string("1"); p.tuple(); p.reduce(); p.stop()
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("swiftclip-evil-\(UUID().uuidString).pt")
            defer { try? FileManager.default.removeItem(at: url) }
            try ZipWriter.write([.init(name: "evil/data.pkl", bytes: p.bytes)], to: url)
            XCTAssertThrowsError(try TorchCheckpoint.read(url)) { error in
                XCTAssertTrue("\(error)".contains("'\(module).\(name)'"), "\(error)")
            }
        }
    }

    func testCompressedLegacyAndTruncatedFilesAreClearErrors() throws {
        XCTAssertThrowsError(try TorchCheckpoint.read(dir.appendingPathComponent("deflated.pt"))) { error in
            XCTAssertTrue("\(error)".contains("compressed"), "\(error)")
        }
        XCTAssertThrowsError(try WeightFiles.open(dir.appendingPathComponent("legacy.pt"))) { error in
            XCTAssertTrue("\(error)".contains("legacy"), "\(error)")
        }
        let data = try Data(contentsOf: dir.appendingPathComponent("fp32.pt"))
        let cut = FileManager.default.temporaryDirectory.appendingPathComponent("swiftclip-cut-\(UUID().uuidString).pt")
        defer { try? FileManager.default.removeItem(at: cut) }
        for n in stride(from: 0, to: data.count, by: 13) {
            try data.prefix(n).write(to: cut)
            XCTAssertThrowsError(try TorchWeights(url: cut), "prefix \(n)") { error in
                XCTAssertTrue("\(error)".contains(cut.path), "\(error)")
            }
        }
    }

    func testMissingOrShortStorageEntryIsNamed() throws {
        // torch's own fp32.pt with one storage entry left out, then cut short.
        let archive = try ZipArchive(url: dir.appendingPathComponent("fp32.pt"))
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("swiftclip-nostorage-\(UUID().uuidString).pt")
        defer { try? FileManager.default.removeItem(at: url) }
        for variant in ["missing", "short"] {
            let sources = try archive.entries.compactMap { e -> ZipWriter.Source? in
                var bytes = [UInt8](try archive.bytes(of: e.name))
                if e.name == "fp32/data/0" {
                    if variant == "missing" { return nil }
                    bytes.removeLast(4)
                }
                return .init(name: e.name, bytes: bytes)
            }
            try ZipWriter.write(sources, to: url)
            XCTAssertThrowsError(try TorchCheckpoint.read(url), variant) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains("'a'") && text.contains("fp32/data/0") && text.contains(url.path), text)
            }
        }
    }

    func testWriterRoundTripIncludingZip64() throws {
        let a = try Tensor(shape: [2, 3], data: [1, -2, 3.5, 0, 1e-30, -7])
        let s = Tensor(repeating: 4, shape: [])
        let value: TorchSaveValue = .dict([
            (.string("epoch"), .int(3)), (.string("big"), .int(1 << 40)), (.string("neg"), .int(-5)), (.string("lr"), .float(1e-3)),
            (.string("name"), .string("run é")), (.string("flags"), .tuple([.bool(true), .none])),
            (.string("state_dict"), .orderedDict([("module.a", .tensor(a)), ("module.s", .tensor(s))])),
            (.string("state"), .dict([(.int(0), .dict([(.string("step"), .tensor(s))]))])),
            (.string("list"), .list([.int(1), .list([])])),
        ])
        for zip64 in [false, true] {
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("swiftclip-rt-\(UUID().uuidString).pt")
            defer { try? FileManager.default.removeItem(at: url) }
            try TorchCheckpointWriter.write(value, to: url, forceZip64: zip64)
            let c = try TorchCheckpoint.read(url)
            guard case .int(3)? = c.root["epoch"], case .int(1 << 40)? = c.root["big"], case .int(-5)? = c.root["neg"],
                  case .float(1e-3)? = c.root["lr"], case .string("run é")? = c.root["name"] else { return XCTFail("\(c.root)") }
            let sd = try c.stateDict()
            XCTAssertEqual(sd.map(\.key), ["a", "s"], "module. prefix removed")
            XCTAssertEqual(try sd[0].tensor.decode().scalars, a.scalars)
            XCTAssertEqual(try sd[1].tensor.decode().shape, [])
            let archive = try ZipArchive(url: url)
            for e in archive.entries {
                XCTAssertEqual(e.dataOffset % 64, 0, e.name)
                try archive.verifyChecksum(e.name)
            }
        }
    }

    func testNonTensorInStateDictIsNamed() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("swiftclip-nt-\(UUID().uuidString).pt")
        defer { try? FileManager.default.removeItem(at: url) }
        try TorchCheckpointWriter.write(.dict([(.string("state_dict"), .orderedDict([("w", .tensor(Tensor(zeros: [2]))),
                                                                                       ("n", .int(3))]))]), to: url)
        XCTAssertThrowsError(try TorchWeights(url: url)) { error in
            XCTAssertTrue("\(error)".contains("'state_dict/n': is a int, not a tensor"), "\(error)")
        }
    }
}
