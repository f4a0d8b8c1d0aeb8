import CLIPEngine
import CLIPNN
import Foundation
import XCTest

/// Issue 9's cases through the release binary, as a user meets them: each ends in exit status 1
/// (64 for a usage error) with one line naming the file, key or option — never a signal.
final class ReliabilityCLITests: XCTestCase {
    let binary = repoRoot.appendingPathComponent(".build/release/swiftclip")
    let fixtures = repoRoot.appendingPathComponent("Tests/CLIPEvaluationTests/Fixtures")
    var tmp: URL!

    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("swiftclip-reliability-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    var tinyModel: String { fixtures.appendingPathComponent("model/config.json").path }
    var image: String { repoRoot.appendingPathComponent("Tests/CLIPDataTests/Fixtures/gray4_31x17.png").path }

    /// Runs swiftclip (through /bin/sh when `shellPrefix` is given, e.g. a ulimit) and returns status and stderr.
    func run(_ arguments: [String], environment: [String: String] = [:], shellPrefix: String? = nil) throws -> (status: Int32, stderr: String) {
        let p = Process()
        if let shellPrefix {
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", shellPrefix + "; exec \"$0\" \"$@\"", binary.path] + arguments
        } else {
            p.executableURL = binary
            p.arguments = arguments
        }
        p.currentDirectoryURL = repoRoot
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let err = Pipe()
        p.standardOutput = FileHandle.nullDevice
        p.standardError = err
        try p.run()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationReason, .exit, "swiftclip \(arguments) died by a signal")
        return (p.terminationStatus, String(decoding: e, as: UTF8.self))
    }

    /// Asserts the exit status and that stderr holds each of `parts`, and no raw Foundation error.
    func expect(_ arguments: [String], status: Int32 = 1, _ parts: [String], environment: [String: String] = [:],
                shellPrefix: String? = nil, file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try run(arguments, environment: environment, shellPrefix: shellPrefix)
        XCTAssertEqual(r.status, status, "\(arguments): \(r.stderr)", file: file, line: line)
        for part in parts { XCTAssertTrue(r.stderr.contains(part), "\(arguments): expected '\(part)' in: \(r.stderr)", file: file, line: line) }
        for raw in ["NSCocoaErrorDomain", "FileIOFailure(", "Fatal error", "Code="] {
            XCTAssertFalse(r.stderr.contains(raw), "\(arguments): raw error in: \(r.stderr)", file: file, line: line)
        }
    }

    /// The tiny fixture config with `vision_cfg` / `text_cfg` fields replaced.
    func config(vision: [String: Any] = [:], text: [String: Any] = [:], top: [String: Any] = [:], base: String? = nil) throws -> String {
        var c = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: base ?? tinyModel))) as! [String: Any]
        var v = c["vision_cfg"] as! [String: Any], t = c["text_cfg"] as! [String: Any]
        v.merge(vision) { $1 }; t.merge(text) { $1 }
        c["vision_cfg"] = v; c["text_cfg"] = t
        c.merge(top) { $1 }
        let url = tmp.appendingPathComponent("config-\(UUID().uuidString).json")
        try JSONSerialization.data(withJSONObject: c).write(to: url)
        return url.path
    }

    func rawConfig(_ text: String) throws -> String {
        let url = tmp.appendingPathComponent("raw-\(UUID().uuidString).json")
        try Data(text.utf8).write(to: url)
        return url.path
    }

    // MARK: the nine crash causes

    func testCrash1HugeMLPRatio() throws {
        for ratio in ["1e300", "9223372036854775808"] {
            for tower in ["vision_cfg", "text_cfg"] {
                let path = try rawConfig(#"{"embed_dim": 16, "vision_cfg": {"image_size": 64, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16}, "text_cfg": {"width": 32, "heads": 2, "layers": 1}}"#
                    .replacingOccurrences(of: "\"\(tower)\": {", with: "\"\(tower)\": {\"mlp_ratio\": \(ratio), "))
                try expect(["info", "--model", path], ["\(tower).mlp_ratio", path])
            }
        }
    }

    func testCrash2TinyMLPRatioInInfoAndEmbeds() throws {
        for ratio in [0.01, 1e-300] {
            let path = try config(vision: ["mlp_ratio": ratio])
            try expect(["info", "--model", path], ["vision_cfg.mlp_ratio"])
            try expect(["embed-image", "--model", path, "--output", tmp.appendingPathComponent("x.npy").path, image], ["vision_cfg.mlp_ratio"])
            let textPath = try config(text: ["mlp_ratio": ratio])
            try expect(["embed-text", "--model", textPath, "--output", tmp.appendingPathComponent("t.npy").path, "a cat"], ["text_cfg.mlp_ratio"])
        }
    }

    func testCrash3ImageSizePairOverflow() throws {
        let path = try rawConfig(#"{"embed_dim": 16, "vision_cfg": {"image_size": [4611686018427387904, 4611686018427387904], "layers": 1, "width": 32, "head_width": 16, "patch_size": 16}, "text_cfg": {"width": 32, "heads": 2, "layers": 1}}"#)
        try expect(["info", "--model", path], ["vision_cfg.image_size"])
    }

    func testCrash4HugeFieldsAndAModelTooLargeForTheMachine() throws {
        let big = 999_999_999
        for (vision, text, top, key) in [([:], ["layers": big], [:], "text_cfg.layers"), ([:], ["context_length": big], [:], "text_cfg.context_length"),
                                         ([:], ["vocab_size": big], [:], "text_cfg.vocab_size"), ([:], [:], ["embed_dim": big], "embed_dim"),
                                         (["layers": big], [:], [:], "vision_cfg.layers"), (["width": 70_000], [:], [:], "vision_cfg.width"),
                                         (["image_size": 70_000], [:], [:], "vision_cfg.image_size"), (["mlp_ratio": 1e9], [:], [:], "vision_cfg.mlp_ratio")]
            as [([String: Any], [String: Any], [String: Any], String)] {
            try expect(["info", "--model", try config(vision: vision, text: text, top: top)], [key])
        }
        // Within the bounds but too large for this machine: the estimate, with both numbers.
        let wide = try config(vision: ["width": 32_768, "head_width": 64, "layers": 1_024])
        try expect(["info", "--model", wide], ["needs about", "available"])
        // convnextv2_huge (658 M parameters) under a 4 GB address-space limit and under the variable.
        let huge = try rawConfig(#"{"embed_dim": 1024, "vision_cfg": {"timm_model_name": "convnextv2_huge", "image_size": 224}, "text_cfg": {"width": 1024, "heads": 16, "layers": 24}}"#)
        try expect(["info", "--model", huge], ["needs about", "but only", "RLIMIT_AS"], shellPrefix: "ulimit -v 4194304")
        try expect(["info", "--model", huge], ["needs about", "SWIFTCLIP_MEMORY_LIMIT"], environment: ["SWIFTCLIP_MEMORY_LIMIT": "4G"])
    }

    func testCrash5PreprocessHugeImageSize() throws {
        let convnext = try rawConfig(#"{"embed_dim": 16, "vision_cfg": {"timm_model_name": "convnextv2_atto", "image_size": 30001}, "text_cfg": {"width": 32, "heads": 2, "layers": 1}}"#)
        try expect(["preprocess", "--model", convnext, "--output", tmp.appendingPathComponent("x.npy").path, image], ["vision_cfg.image_size"])
        let vit = try config(vision: ["image_size": 999_999_984, "patch_size": 16])
        try expect(["preprocess", "--model", vit, "--output", tmp.appendingPathComponent("x.npy").path, image], ["vision_cfg.image_size"])
        // The largest allowed size with more images than fit: the batch estimate.
        let big = try config(vision: ["image_size": 16_384, "patch_size": 16])
        try expect(["preprocess", "--model", big, "--output", tmp.appendingPathComponent("x.npy").path, image, image],
                   ["needs about", "images of 16384×16384"], environment: ["SWIFTCLIP_MEMORY_LIMIT": "1G"])
    }

    func testCrash6TokenizeContextLength() throws {
        try expect(["tokenize", "--context-length", "1000000000", "a cat"], status: 64, ["--context-length"])
        try expect(["tokenize", "--context-length", "1", "a cat"], status: 64, ["--context-length"])
    }

    /// detect's region options are checked before anything loads, naming the option.
    func testDetectRegionOptionsRefused() throws {
        let common = ["detect", "--model", tinyModel, "--detector", "det.safetensors", "--labels", "a,b", "image.png"]
        for (args, part) in [(["--encoded-regions=-1"], "--encoded-regions"), (["--encoded-regions", "5000"], "--encoded-regions"),
                             (["--region-embedding", "box"], "--region-embedding"), (["--region-size", "8"], "--region-size")] {
            try expect(common + args, status: 64, [part])
        }
    }

    func testCrash7And8BenchOptions() throws {
        for args in [["--batch-sizes", "100000"], ["--batch-sizes", "1000000000000"], ["--batch-sizes", "1,,2"], ["--batch-sizes", "0"],
                     ["--warmup=-1"], ["--repeats=-1"], ["--repeats=0"], ["--tower", "text", "--text-length=-1"],
                     ["--tower", "text", "--text-length", "0"], ["--tower", "text", "--text-length", "1000000"],
                     ["--passes", "sideways"], ["--passes", ","], ["--tower", "text", "--passes", "per-thread"]] {
            try expect(["bench", "--model", tinyModel] + args, status: 64, [args.last!.hasPrefix("--") ? String(args.last!.prefix { $0 != "=" }) : args[args.count - 2]])
        }
        // Above the model's context but inside the option's bounds: still a usage error naming it.
        try expect(["bench", "--model", tinyModel, "--tower", "text", "--text-length", "78"], status: 64, ["--text-length", "77"])
        // A text tower too small for benchmark rows ([sot, …, eot]).
        try expect(["bench", "--model", try config(text: ["context_length": 1]), "--tower", "text"], ["context_length 1"])
        try expect(["bench", "--model", try config(text: ["vocab_size": 3]), "--tower", "text"], ["vocab_size 3"])
        // A batch that does not fit in memory: the estimate, not the allocator's abort.
        try expect(["bench", "--model", tinyModel, "--batch-sizes", "65536", "--repeats", "1"], ["needs about"],
                   environment: ["SWIFTCLIP_MEMORY_LIMIT": "256M"])
    }

    /// The training commands follow the same rule (issue 9, item 4).
    func testTrainingBenchOptionsAndMemory() throws {
        for args in [["--batch", "0"], ["--batch", "100000"], ["--steps=-1"], ["--warmup=-1"]] {
            try expect(["bench-train", "--model", tinyModel] + args, status: 64, [String(args[0].prefix { $0 != "=" })])
        }
        try expect(["bench-train", "--model", tinyModel, "--batch", "65536"], ["training", "needs about"],
                   environment: ["SWIFTCLIP_MEMORY_LIMIT": "256M"])
        try expect(["make-synthetic", "--output", tmp.path, "--image-size", "100000"], status: 64, ["--image-size"])
    }

    func testCrash9NestedPickle() throws {
        let dir = tmp.appendingPathComponent("cifar-100-python")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let bomb = [0x80, 0x02] + [UInt8](repeating: 0x5D, count: 50_000) + [UInt8](repeating: 0x61, count: 49_999) + [0x2E]
        try Data(bomb).write(to: dir.appendingPathComponent("test"))
        try Data(bomb).write(to: dir.appendingPathComponent("meta"))
        try expect(["eval", "--model", tinyModel, "--dataset", "cifar100", "--data", tmp.path], ["cifar-100-python/test", "nested deeper than 64"])
    }

    // MARK: the gzip bomb and outputs that are not regular files

    func testGzipBombVocabularyStopsAtTheLimit() throws {
        let bomb = tmp.appendingPathComponent("bomb.txt.gz")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "head -c 268435456 /dev/zero | gzip -1 > '\(bomb.path)'"]  // 256 MiB -> ~1 MB
        try p.run(); p.waitUntilExit()
        let start = Date()
        try expect(["tokenize", "--vocab", bomb.path, "a cat"], [bomb.path, "decompresses to more than"])
        XCTAssertLessThan(Date().timeIntervalSince(start), 10, "the limit stops inflation early")
    }

    func testOutputOntoSymlinkFIFOAndDeviceNeverReplacesThem() throws {
        let real = tmp.appendingPathComponent("real.npy"), link = tmp.appendingPathComponent("link.npy")
        try Data("old".utf8).write(to: real)
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: real)
        XCTAssertEqual(try run(["tokenize", "--output", link.path, "a cat"]).status, 0)
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: link.path), real.path, "the link stays a link")
        XCTAssertEqual(try NPY.read(real).shape, [1, 77], "the file it points to is written")

        // A device node: written in place (here /dev/full refuses with ENOSPC), never replaced. A
        // private node (mknod, when allowed) keeps the test from touching /dev if this regresses.
        let device = tmp.appendingPathComponent("full")
        let node = mknod(device.path, S_IFCHR | 0o666, dev_t(0x107) /* makedev(1, 7): /dev/full */) == 0 ? device.path : "/dev/full"
        try expect(["tokenize", "--output", node, "a cat"], [node, "No space left on device"])
        var info = stat()
        XCTAssertEqual(stat(node, &info), 0)
        XCTAssertEqual(info.st_mode & S_IFMT, S_IFCHR, "\(node) is still a character device")
        let null = tmp.appendingPathComponent("null")
        let nullNode = mknod(null.path, S_IFCHR | 0o666, dev_t(0x103) /* makedev(1, 3): /dev/null */) == 0 ? null.path : "/dev/null"
        XCTAssertEqual(try run(["tokenize", "--output", nullNode, "a cat"]).status, 0)
        XCTAssertEqual(stat(nullNode, &info), 0)
        XCTAssertEqual(info.st_mode & S_IFMT, S_IFCHR)

        // A FIFO: written in place while a reader drains it.
        let fifo = tmp.appendingPathComponent("pipe")
        XCTAssertEqual(mkfifo(fifo.path, 0o600), 0)
        final class Box: @unchecked Sendable { var data = Data() }
        let box = Box(), done = DispatchSemaphore(value: 0)
        Thread { box.data = FileHandle(forReadingAtPath: fifo.path)?.readDataToEndOfFile() ?? Data(); done.signal() }.start()
        XCTAssertEqual(try run(["tokenize", "--output", fifo.path, "a cat"]).status, 0)
        XCTAssertEqual(done.wait(timeout: .now() + 10), .success)
        XCTAssertEqual(box.data.prefix(6), Data([0x93] + Array("NUMPY".utf8)))
        XCTAssertEqual(stat(fifo.path, &info), 0)
        XCTAssertEqual(info.st_mode & S_IFMT, S_IFIFO, "the FIFO is still a FIFO")

        // A directory is refused by name.
        try expect(["tokenize", "--output", tmp.path, "a cat"], [tmp.path, "directory"])
    }

    // MARK: unclear or silent errors

    func testUnreadableInputsSayWhy() throws {
        let out = tmp.appendingPathComponent("x.npy").path
        try expect(["preprocess", "--model", tinyModel, "--output", out, "/dev/zero"], ["/dev/zero", "character device"])
        // A folder is searched for images; one with none says so.
        try expect(["preprocess", "--model", tinyModel, "--output", out, tmp.path], ["no input images", tmp.path, "hold none"])
        // An image in a folder whose name is not UTF-8 is a failed input, named, not skipped in silence.
        let named = tmp.appendingPathComponent("named")
        try FileManager.default.createDirectory(at: named, withIntermediateDirectories: true)
        let png = try Data(contentsOf: repoRoot.appendingPathComponent("Tests/CLIPDataTests/Fixtures/noise_120x90.png"))
        try png.write(to: named.appendingPathComponent("good.png"))
        let latin1 = (Array(named.path.utf8) + Array("/caf".utf8) + [0xE9] + Array(".png".utf8)).map { CChar(bitPattern: $0) } + [0]
        let fd = open(latin1, O_CREAT | O_WRONLY, 0o644)
        XCTAssertGreaterThanOrEqual(fd, 0)
        _ = png.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        defer { unlink(latin1) }
        try expect(["preprocess", "--model", tinyModel, "--output", out, named.path], [named.path + "/caf\u{FFFD}.png", "not valid UTF-8"])
        XCTAssertEqual(try NPY.read(URL(fileURLWithPath: out)).shape, [1, 3, 64, 64], "the readable image is still preprocessed")
        let loop = tmp.appendingPathComponent("loop.png")
        try FileManager.default.createSymbolicLink(atPath: loop.path, withDestinationPath: loop.path)
        try expect(["preprocess", "--model", tinyModel, "--output", out, loop.path], [loop.path, "symbolic links"])
        try expect(["info", "--model", tmp.path], [tmp.path, "directory"])
        let loopJSON = tmp.appendingPathComponent("loop.json")
        try FileManager.default.createSymbolicLink(atPath: loopJSON.path, withDestinationPath: loopJSON.path)
        try expect(["info", "--model", loopJSON.path], [loopJSON.path, "symbolic links"])
        try expect(["preprocess", "--model", tinyModel, "--output", out, ""], status: 64, ["empty path"])
        try expect(["info", "--model", ""], status: 64, ["--model"])
        try expect(["tokenize", "--vocab", tmp.path, "a"], [tmp.path, "directory"])
        try expect(["tokenize", "--vocab", tmp.appendingPathComponent("missing/v.gz").path, "a"], ["missing/v.gz", "not found"])
    }

    func testNPYInputsOfTheWrongSizeOrEmptyAreNamed() throws {
        let wrong = tmp.appendingPathComponent("wrong.npy"), empty = tmp.appendingPathComponent("empty.npy")
        try NPY.write(Tensor(zeros: [1, 3, 32, 32]), to: wrong)
        try NPY.write(Tensor(zeros: [0, 3, 64, 64]), to: empty)
        let out = tmp.appendingPathComponent("e.npy").path
        try expect(["embed-image", "--model", tinyModel, "--output", out, wrong.path], [wrong.path, "32×32", "64×64"])
        try expect(["embed-image", "--model", tinyModel, "--output", out, empty.path], [empty.path, "0 images"])
    }

    func testTokenFilesAndVocabularyMismatchAreNamed() throws {
        let tokens = tmp.appendingPathComponent("tokens.npy")
        try NPY.write(int32: [Int32](repeating: 1, count: 2 * 100), shape: [2, 100], to: tokens)
        let out = tmp.appendingPathComponent("t.npy").path
        try expect(["embed-text", "--model", tinyModel, "--tokens", tokens.path, "--output", out], [tokens.path, "100 tokens", "context_length 77"])
        let small = try config(text: ["vocab_size": 1000])
        try expect(["embed-text", "--model", small, "--output", out, "a cat"], ["vocab_size 1000", "49408"])
    }

    func testOutputFilesInMissingFoldersOrDirectoriesAreNamed() throws {
        let data = fixtures.path
        try expect(["eval", "--model", tinyModel, "--dataset", "cifar10", "--data", data, "--json", tmp.path], ["--json", tmp.path, "directory"])
        let missing = tmp.appendingPathComponent("no/such/r.json").path
        try expect(["eval", "--model", tinyModel, "--dataset", "cifar10", "--data", data, "--json", missing], ["--json", missing, "does not exist"])
        try expect(["export-onnx", "--model", tinyModel, "--tower", "text", "--output", tmp.path], [tmp.path, "directory"])
        try expect(["export-onnx", "--model", tinyModel, "--tower", "text", "--output", tmp.appendingPathComponent("no/x.onnx").path], ["does not exist"])
    }

    func testListFilesConfigJSONAndDatasets() throws {
        let data = fixtures.path
        let missing = tmp.appendingPathComponent("templates.txt").path
        try expect(["eval", "--model", tinyModel, "--dataset", "cifar10", "--data", data, "--templates", missing], ["--templates", missing, "no such file"])
        try expect(["eval", "--model", tinyModel, "--dataset", "cifar10", "--data", data, "--classnames", missing], ["--classnames", missing, "no such file"])
        let empty = tmp.appendingPathComponent("empty.txt")
        try Data().write(to: empty)
        try expect(["eval", "--model", tinyModel, "--dataset", "cifar10", "--data", data, "--templates", empty.path], ["--templates", "no entries"])

        try expect(["info", "--model", try rawConfig("{\"embed_dim\": 16,\n  \"vision_cfg\": [1,}")], ["not valid JSON", "line 2, column 20"])
        try expect(["info", "--model", try rawConfig("null")], ["top level is null"])
        try expect(["info", "--model", try rawConfig(String(repeating: "[", count: 100_000))], ["nested deeper than 64"])

        // A pickle with 0 images, and data errors without a made-up byte offset.
        let dir = tmp.appendingPathComponent("cifar-10-batches-py")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        // {'data': numpy uint8 (0, 3072), 'labels': []} as pickle protocol 2 (written by numpy 2.4).
        let zero = try Data(contentsOf: repoRoot.appendingPathComponent("Tests/CLIPFuzzTests/Regressions/pickle/zero_images_p2.pkl"))
        try zero.write(to: dir.appendingPathComponent("test_batch"))
        try FileManager.default.copyItem(at: fixtures.appendingPathComponent("cifar-10-batches-py/batches.meta"), to: dir.appendingPathComponent("batches.meta"))
        try expect(["eval", "--model", tinyModel, "--dataset", "cifar10", "--data", tmp.path], ["test_batch", "0 images"])
        let r = try run(["eval", "--model", tinyModel, "--dataset", "cifar10", "--data", tmp.path])
        XCTAssertFalse(r.stderr.contains("byte 0"), r.stderr)
    }

    func testCSVNamesTheLineAndTheImageFile() throws {
        let csv = tmp.appendingPathComponent("pairs.csv")
        try Data("filepath\ttitle\nmissing.png\ta cat\n".utf8).write(to: csv)
        try expect(["eval", "--model", tinyModel, "--dataset", "csv", "--data", csv.path],
                   ["\(csv.path):2", "filepath", tmp.appendingPathComponent("missing.png").path, "no such file"])
    }

    func testCorruptClassifierCacheIsAnErrorAndKept() throws {
        let cache = tmp.appendingPathComponent("classifier.npy")
        try Data("not a cache".utf8).write(to: cache)
        try expect(["eval", "--model", tinyModel, "--dataset", "cifar10", "--data", fixtures.path, "--classifier-cache", cache.path],
                   [cache.path, "classifier cache"])
        XCTAssertEqual(try Data(contentsOf: cache), Data("not a cache".utf8), "the file is not overwritten")
    }
}
