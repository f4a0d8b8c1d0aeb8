import CLIPData
import CLIPDetection
import CLIPEngine
import CLIPModels
import CLIPNN
import CLIPSearch
import CLIPTokenizer
import Foundation

/// The parsers that read untrusted bytes, each as one function of the bytes, so that libFuzzer
/// (`swiftclip-fuzz`, built by scripts/fuzz.sh) and the regression tests (CLIPFuzzTests, which
/// replay the committed seeds and crashers) drive exactly the same code. A target may throw any
/// typed error; it must never trap, crash or hang.
public enum FuzzTarget: String, CaseIterable, Sendable {
    case safetensors, npy, pickle, image, tokenizer, config, csv, gzip, tar, shardlist, zip, torch, queryterms, dburl, coco

    /// Runs the target on one input. Errors are the expected outcome for most inputs.
    public func run(_ bytes: [UInt8]) throws {
        switch self {
        case .safetensors:
            let file = try SafetensorsFile.read(FuzzScratch.write(bytes, ext: "safetensors"))
            // Decode every tensor whose data is small (the header's sizes are the fuzzer's to choose).
            for key in file.keys.prefix(16) {
                if let info = file.info(key), (checkedFloatBytes(info.shape) ?? .max) <= 1 << 24 { _ = try? file.tensor(key) }
            }
        case .npy:
            let array = try NPY.read(FuzzScratch.write(bytes, ext: "npy"))
            if (checkedFloatBytes(array.shape) ?? .max) <= 1 << 24 {
                _ = try? array.floatTensor()
                _ = try? array.intValues()
            }
        case .pickle:
            let value = try Pickle.load(bytes, file: "fuzz.pkl")
            if case .dict(let d) = value, let data = d["data"] { _ = try? PickledArray(data, file: "fuzz.pkl", what: "'data'") }
            _ = try? CIFARDataset.loadPython(.cifar10, test: FuzzScratch.write(bytes, ext: "pkl"), meta: nil)
        case .image:
            ImageDecoder.warningHandler = { _, _ in }  // damaged inputs are the point; keep the log quiet
            let orientation = EXIFOrientation.read(jpeg: Data(bytes))  // the server's thumbnails read it
            let image = try ImageDecoder.decodeImage(Data(bytes), name: "fuzz-image")
            _ = image.rgb()
            _ = EXIFOrientation.apply(orientation, to: Preprocessor(imageSize: 16).resizeAndCrop(image))
            if image.width * image.height <= 1 << 20 {  // the other resize modes, where they stay fast
                _ = Preprocessor(imageSize: 12, interpolation: .bilinear, resizeMode: .longest, fillColor: 7).resizeAndCrop(image)
                _ = Preprocessor(imageSize: 9, resizeMode: .squash).resizeAndCrop(image)
            }
        case .tokenizer:
            let text = String(decoding: bytes, as: UTF8.self)
            let rows = try FuzzScratch.tokenizer().tokenize([text], contextLength: 77)
            _ = try FuzzScratch.tokenizer().decode(rows[0].map(Int.init))
        case .config:
            let config = try CLIPConfig.parse(json: Data(bytes), source: "fuzz.json")
            _ = (config.parameterCount, config.imageActivationBytes(batch: 64), config.textActivationBytes(batch: 64, length: 77))
        case .csv:
            let pairs = try CSVPairs(file: FuzzScratch.write(bytes, ext: "csv"), imageKey: "filepath", captionKey: "title", separator: "\t")
            _ = pairs.count
        case .gzip:
            _ = try gunzip(bytes, maximumBytes: 1 << 24)
        case .zip:
            let archive = try ZipArchive(url: FuzzScratch.write(bytes, ext: "zip"))
            for e in archive.entries.prefix(64) {
                precondition(e.dataOffset + e.compressedSize <= bytes.count)
                _ = try? archive.verifyChecksum(e.name)
            }
        case .torch:
            // A torch.save file: the zip, then the pickle in it (torch's policy), then its tensors.
            let checkpoint = try TorchCheckpoint.read(FuzzScratch.write(bytes, ext: "pt"))
            for (_, t) in (try? checkpoint.stateDict())?.prefix(16) ?? [] where (checkedFloatBytes(t.shape) ?? .max) <= 1 << 24 {
                _ = try? t.decode()
            }
        case .tar:
            // The bytes as one webdataset shard: grouped into samples as the loader reads it (which
            // turns every problem into a message), then member by member, where a problem throws.
            let shard = try FuzzScratch.write(bytes, ext: "tar").path
            var samples = WebDatasetSampleReader(), opened = false
            while let sample = samples.next(nextShard: { defer { opened = true }; return opened ? nil : shard }) {
                precondition(!sample.key.isEmpty && WebDatasetSample.imageExtensions.contains(sample.imageExtension))
                _ = sample.cropID
            }
            let reader = try TarReader(path: shard)
            var end = -1
            while let member = try reader.next() {
                // Members come in order, each at a block boundary, none over the size limit.
                precondition(member.offset > end && member.offset % 512 == 0 && member.offset + 512 + member.data.count <= bytes.count)
                precondition(member.data.count <= reader.maximumMemberBytes)
                end = member.offset
            }
        case .shardlist:
            // The first line is a --train-data specification; the rest, the sizes.json beside its shards.
            let text = String(decoding: bytes, as: UTF8.self)
            let (spec, sizes) = text.firstIndex(of: "\n").map { (String(text[..<$0]), text[text.index(after: $0)...]) } ?? (text, "")
            let shards = try ShardList.expand(spec)
            precondition(!shards.isEmpty && shards.count <= ShardList.maximumShards)
            let folder = try FuzzScratch.folder(named: "shards")
            let sizesURL = folder.appendingPathComponent("sizes.json")
            if sizes.isEmpty { try? FileManager.default.removeItem(at: sizesURL) } else { try Data(sizes.utf8).write(to: sizesURL) }
            let local = shards.prefix(1000).map { folder.appendingPathComponent(URL(fileURLWithPath: $0).lastPathComponent).path }
            _ = try ShardList.sampleCount(Array(local))
        case .queryterms:
            // One query argument per line (`swiftclip search` terms, rclip's syntax).
            let terms = try QueryTerm.parse(String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init))
            precondition(terms.allSatisfy { $0.weight.isFinite } && terms.contains { $0.weight != 0 })
        case .coco:
            // COCO instances JSON (train-detector, eval-detect), then scored against its own boxes
            // as detections (COCOEvaluation, as eval-detect runs it).
            let dataset = try COCODataset.load(FuzzScratch.write(bytes, ext: "json"))
            let detections = dataset.annotations.prefix(1000).map {
                COCODetection(image_id: $0.image_id, category_id: $0.category_id, bbox: $0.bbox, score: 1)
            }
            let summary = COCOEvaluation(groundTruth: dataset, detections: Array(detections)).summary()
            precondition(summary.ap == -1 || (0...1).contains(summary.ap)) // -1: no ground truth, as pycocotools
        case .dburl:
            // `--db`: a file path, sqlite:PATH or postgresql://; a parsed URL prints without its password.
            let text = String(decoding: bytes, as: UTF8.self)
            if case .postgres(let url) = try IndexLocation(parsing: text) {
                precondition((1...65535).contains(url.port) && !url.host.isEmpty && !url.database.isEmpty)
                if let p = url.password, p.count > 3 { precondition(!url.description.contains(p) || url.description.contains("***")) }
            }
        }
    }

    /// The target named by `SWIFTCLIP_FUZZ_TARGET`, for the libFuzzer entry point.
    public static var fromEnvironment: FuzzTarget? {
        ProcessInfo.processInfo.environment["SWIFTCLIP_FUZZ_TARGET"].flatMap(FuzzTarget.init(rawValue:))
    }
}

/// A per-process scratch file for the targets whose parsers read files, and the tokenizer loaded once.
enum FuzzScratch {
    static let folder: String = {
        var info = stat()
        return stat("/dev/shm", &info) == 0 ? "/dev/shm" : NSTemporaryDirectory()
    }()

    static func write(_ bytes: [UInt8], ext: String) throws -> URL {
        let url = URL(fileURLWithPath: folder).appendingPathComponent("swiftclip-fuzz-\(getpid()).\(ext)")
        try Data(bytes).write(to: url)
        return url
    }

    /// A per-process scratch folder (created once).
    static func folder(named name: String) throws -> URL {
        let url = URL(fileURLWithPath: folder).appendingPathComponent("swiftclip-fuzz-\(getpid())-\(name)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    private static let loaded = Result(catching: { try CLIPTokenizer(vocabularyURL: CLIPTokenizer.defaultVocabularyURL()) })
    static func tokenizer() throws -> CLIPTokenizer { try loaded.get() }
}
