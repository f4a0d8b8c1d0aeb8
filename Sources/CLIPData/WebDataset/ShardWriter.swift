import CLIPEngine
import Foundation

/// Writes image–caption pairs as webdataset tar shards the way img2dataset lays them out:
/// `OUTPUT/00000.tar`, `00001.tar`, … of `samplesPerShard` samples each, every sample the members
/// `KEY.jpg` (or `.png`: the file's bytes as they are, the extension from what they hold),
/// `KEY.txt` (the caption) and `KEY.json` (key, caption, source file); KEY is the pair's row index
/// as nine digits, so each sample keeps its crop seed (`WebDatasetSample.cropID`). Beside them
/// `sizes.json` (shard name → samples), which `--dataset-type webdataset` reads when
/// `--train-num-samples` is not given. Each shard is written to a temporary name, fsynced and
/// renamed. An image that does not decode is left out with a message naming the file and row.
public enum ShardWriter {
    public struct Summary {
        public let shards: [URL]
        public let samples: Int
        public let skipped: [String]
    }

    public static func write(_ pairs: CSVPairs, to folder: URL, samplesPerShard: Int,
                             progress: (Int) -> Void = { _ in }) throws -> Summary {
        guard samplesPerShard >= 1 else { throw TensorError.invalidArgument("samples per shard must be at least 1, got \(samplesPerShard)") }
        let fm = FileManager.default
        do { try fm.createDirectory(at: folder, withIntermediateDirectories: true) } catch {
            throw DatasetError.missing(path: folder.path, expected: "a folder for the shards (\(error.localizedDescription))")
        }
        var shards: [URL] = [], sizes: [String: Int] = [:], skipped: [String] = []
        var writer: TarWriter?, inShard = 0, samples = 0
        func finishShard() throws {
            guard let w = writer else { return }
            try w.finish()
            let final = folder.appendingPathComponent(String(format: "%05d.tar", shards.count))
            if fm.fileExists(atPath: final.path) { try fm.removeItem(at: final) }
            try fm.moveItem(atPath: w.path, toPath: final.path)
            sizes[final.lastPathComponent] = inShard
            shards.append(final)
            writer = nil
            inShard = 0
        }
        for i in 0..<pairs.count {
            let data: Data, ext: String
            do {
                data = try InputFile.read(pairs.images[i].path, maximumBytes: ImageDecoder.maximumFileBytes)
                _ = try ImageDecoder.decode(data, name: pairs.images[i].path)
                ext = data.starts(with: [0x89, 0x50, 0x4E, 0x47]) ? "png" : "jpg"
            } catch {
                skipped.append("\(pairs.describe(i)): \(error); left out")
                progress(i + 1)
                continue
            }
            if writer == nil {
                writer = try TarWriter(path: folder.appendingPathComponent(String(format: ".%05d.tar.partial", shards.count)).path)
            }
            let key = String(format: "%09d", i)
            let json = try JSONSerialization.data(withJSONObject: ["key": key, "caption": pairs.captions[i], "source": pairs.images[i].path],
                                                  options: [.sortedKeys])
            try writer!.add(name: "\(key).\(ext)", data: data)
            try writer!.add(name: "\(key).txt", data: Data(pairs.captions[i].utf8))
            try writer!.add(name: "\(key).json", data: json)
            inShard += 1
            samples += 1
            if inShard == samplesPerShard { try finishShard() }
            progress(i + 1)
        }
        try finishShard()
        guard samples > 0 else {
            throw DatasetError.malformed(file: pairs.file.path, message: "no readable image among its \(pairs.count) rows; no shard written")
        }
        let sizesData = try JSONSerialization.data(withJSONObject: sizes, options: [.sortedKeys, .prettyPrinted])
        do { try sizesData.write(to: folder.appendingPathComponent("sizes.json"), options: .atomic) } catch {
            throw DatasetError.missing(path: folder.appendingPathComponent("sizes.json").path, expected: "a writable file (\(error.localizedDescription))")
        }
        return Summary(shards: shards, samples: samples, skipped: skipped)
    }
}
