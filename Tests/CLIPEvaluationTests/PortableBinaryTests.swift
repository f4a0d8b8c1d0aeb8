import XCTest
import Foundation
import CLIPNN

/// The release binary on CPUs without AVX-512 (an AVX2 Haswell) and without AVX at all (Nehalem),
/// emulated by Debian's qemu-user: it must not die of an illegal instruction (the bf16/int8 GEMMs
/// included: `--precision` bf16 and int8 run too), and must give the native run's embeddings
/// (other kernels round differently: equal within 1e-5 relative in fp32).
final class PortableBinaryTests: XCTestCase {
    let binary = repoRoot.appendingPathComponent(".build/release/swiftclip").path
    let fixtures = repoRoot.appendingPathComponent("Tests/CLIPModelsTests/Fixtures/convnext_v2_atto")

    func qemu() throws -> String {
        for path in ["/usr/bin/qemu-x86_64", "/usr/local/bin/qemu-x86_64"] where FileManager.default.isExecutableFile(atPath: path) {
            return path
        }
        let message = "qemu-x86_64 not found (scripts/setup.sh installs Debian's qemu-user)"
        if ProcessInfo.processInfo.environment["CI"].map({ !$0.isEmpty && $0 != "0" && $0 != "false" }) ?? false {
            XCTFail(message)
        }
        throw XCTSkip(message)
    }

    /// Runs `command`; returns (status, stderr). OPENBLAS_CORETYPE (pinned to Haswell on these
    /// machines) is removed for emulated runs: a real CPU of that kind has no such pin.
    func run(_ command: [String], emulated: Bool) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        var env = ProcessInfo.processInfo.environment
        env["SWIFTCLIP_ISA"] = nil
        if emulated { env["OPENBLAS_CORETYPE"] = nil }
        process.environment = env
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: e, as: UTF8.self))
    }

    func testEmbeddingsUnderHaswellAndNehalemEqualTheNativeRunInEveryPrecision() throws {
        #if !arch(x86_64)
        throw XCTSkip("x86-64 only")
        #endif
        let qemu = try qemu()
        let config = fixtures.appendingPathComponent("config.json").path
        let weights = fixtures.appendingPathComponent("model.safetensors").path
        let image = repoRoot.appendingPathComponent("Tests/CLIPDataTests/Fixtures/china.jpg").path
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("swiftclip-qemu-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }

        func embed(_ prefix: [String], _ tag: String, _ precision: String) throws -> (image: [Float], text: [Float]) {
            let imageOut = dir.appendingPathComponent("\(tag)-\(precision)-image.npy").path
            let textOut = dir.appendingPathComponent("\(tag)-\(precision)-text.npy").path
            let emulated = !prefix.isEmpty
            let i = try run(prefix + [binary, "embed-image", "--model", config, "--weights", weights, "--precision", precision,
                                      "--output", imageOut, image], emulated: emulated)
            XCTAssertEqual(i.0, 0, "\(tag) \(precision) embed-image: \(i.1)")
            // The fixture's tokens: its tiny config has a 1,000-word vocabulary.
            let t = try run(prefix + [binary, "embed-text", "--model", config, "--weights", weights, "--precision", precision,
                                      "--output", textOut, "--tokens", fixtures.appendingPathComponent("tokens.npy").path],
                            emulated: emulated)
            XCTAssertEqual(t.0, 0, "\(tag) \(precision) embed-text: \(t.1)")
            return (try NPY.read(URL(fileURLWithPath: imageOut)).floatTensor().scalars, try NPY.read(URL(fileURLWithPath: textOut)).floatTensor().scalars)
        }
        func relative(_ got: [Float], _ want: [Float]) -> Double {
            let norm = want.map { Double($0) * Double($0) }.reduce(0, +).squareRoot()
            return zip(got, want).map { Double($0 - $1) * Double($0 - $1) }.reduce(0, +).squareRoot() / norm
        }
        // bf16 and int8 take other kernels on these CPUs (no AVX512_BF16/VNNI: the widening ones),
        // and a rounding or quantisation step lands one unit apart wherever the fp32 values before
        // it differ in the last bits; so those runs must agree with the native run better than
        // that precision agrees with fp32 (a bound the precision itself sets, not a guess).
        let nativeFP32 = try embed([], "native", "fp32")
        for precision in ["fp32", "bf16", "int8"] {
            let native = precision == "fp32" ? nativeFP32 : try embed([], "native", precision)
            for cpu in ["Haswell", "Nehalem"] {
                let emulated = try embed([qemu, "-cpu", cpu], cpu, precision)
                for (what, got, want, fp32) in [("image", emulated.image, native.image, nativeFP32.image),
                                                ("text", emulated.text, native.text, nativeFP32.text)] {
                    XCTAssertEqual(got.count, want.count, "\(cpu) \(what)")
                    let bound = precision == "fp32" ? 1e-5 : relative(want, fp32)
                    XCTAssertLessThan(relative(got, want), bound, "\(cpu) \(precision) \(what) embeddings differ from the native run")
                }
            }
        }
    }
}
