import ArgumentParser
import CLIPData
import Foundation

/// `swiftclip make-shards`: a CSV dataset as webdataset tar shards (img2dataset's layout).
struct MakeShards: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "make-shards",
        abstract: "Write an open_clip CSV dataset as webdataset tar shards (KEY.jpg/png, KEY.txt, KEY.json; sizes.json).",
        discussion: """
        OUTPUT/00000.tar, 00001.tar, … hold --samples-per-shard samples each, keyed by the CSV row (nine digits); \
        train on them with --dataset-type webdataset --train-data 'OUTPUT/{00000..0000N}.tar'. Images are stored \
        as their files' bytes; one that does not decode is left out with a warning naming it.
        """)

    @Option(name: .customLong("train-data"), help: "The CSV (open_clip's CsvDataset format).") var trainData: String
    @Option(help: "Folder for the shards (created).") var output: String
    @Option(name: .customLong("samples-per-shard")) var samplesPerShard = 1000
    @Option(name: .customLong("csv-separator"), help: "CSV field separator (default: tab).") var csvSeparator = "\t"
    @Option(name: .customLong("csv-img-key")) var csvImgKey = "filepath"
    @Option(name: .customLong("csv-caption-key")) var csvCaptionKey = "title"

    func validate() throws {
        guard (1...10_000_000).contains(samplesPerShard) else {
            throw ValidationError("--samples-per-shard must be in 1...10000000, got \(samplesPerShard)")
        }
        try requireNonEmptyPaths([(trainData, "--train-data"), (output, "--output")])
    }

    func run() throws {
        try runReportingErrors {
            let pairs = try CSVPairs(file: URL(fileURLWithPath: trainData), imageKey: csvImgKey, captionKey: csvCaptionKey,
                                     separator: csvSeparator == "\\t" ? "\t" : csvSeparator)
            let progress = Progress(label: "make-shards", total: pairs.count)
            let summary = try ShardWriter.write(pairs, to: URL(fileURLWithPath: output), samplesPerShard: samplesPerShard,
                                                progress: { progress.update($0) })
            for s in summary.skipped { FileHandle.standardError.write(Data("warning: \(s)\n".utf8)) }
            let last = String(format: "%05d", summary.shards.count - 1)
            print("make-shards: \(summary.samples) samples in \(summary.shards.count) shard(s) in \(output)"
                  + (summary.skipped.isEmpty ? "" : "; \(summary.skipped.count) unreadable image(s) left out"))
            print("train with: --dataset-type webdataset --train-data '\(URL(fileURLWithPath: output).path)/{00000..\(last)}.tar'")
        }
    }
}
