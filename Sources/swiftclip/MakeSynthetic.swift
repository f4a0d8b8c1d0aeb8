import ArgumentParser
import CLIPData
import Foundation

struct MakeSynthetic: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "make-synthetic",
        abstract: "Write a learnable synthetic image–caption set: coloured shapes with captions that describe them.",
        discussion: """
        OUTPUT/train.csv (tab-separated 'filepath' and 'caption' columns, paths relative to the CSV unless \
        --absolute-paths) with OUTPUT/train/*.png; a held-out split from another seed as OUTPUT/val.csv and as an \
        image folder OUTPUT/val/<colour>/*.png for zero-shot evaluation, with OUTPUT/classnames.txt and \
        OUTPUT/templates.txt (`swiftclip eval --dataset folder --data OUTPUT/val --classnames … --templates …`).
        """)

    @Option(name: .long, help: "Training samples.") var samples: Int = 100
    @Option(name: .long, help: "Held-out samples.") var valSamples: Int = 60
    @Option(name: .long, help: "Image side in pixels.") var imageSize: Int = 224
    @Option(name: .long, help: "Seed of the training split (the held-out split uses seed + 1).") var seed: UInt64 = 0
    @Option(name: .long, help: "Output folder.") var output: String
    @Flag(name: .long, help: "Write absolute image paths in the CSVs (open_clip_train resolves relative ones from its working directory).")
    var absolutePaths = false

    func validate() throws {
        guard (1...1_000_000).contains(samples) else { throw ValidationError("--samples must be in 1...1000000, got \(samples)") }
        guard (1...1_000_000).contains(valSamples) else { throw ValidationError("--val-samples must be in 1...1000000, got \(valSamples)") }
        guard (8...1024).contains(imageSize) else { throw ValidationError("--image-size must be in 8...1024, got \(imageSize)") }
        guard seed < UInt64.max else { throw ValidationError("--seed must be below \(UInt64.max)") }
    }

    func run() throws {
        try runReportingErrors {
            let root = URL(fileURLWithPath: output)
            let fm = FileManager.default
            try fm.createDirectory(at: root.appendingPathComponent("train"), withIntermediateDirectories: true)
            try fm.createDirectory(at: root.appendingPathComponent("val"), withIntermediateDirectories: true)
            let path = { (relative: String) in absolutePaths ? root.appendingPathComponent(relative).standardizedFileURL.path : relative }

            let train = try SyntheticShapes(seed: seed, count: samples, imageSize: imageSize)
            var csv = "filepath\tcaption\n"
            let progress = Progress(label: "make-synthetic train", total: samples)
            for i in 0..<samples {
                let s = train.sample(i)
                let name = "train/\(String(format: "%06d", i)).png"
                try write(PNGEncoder.encode(s.image), to: root.appendingPathComponent(name))
                csv += "\(path(name))\t\(s.caption)\n"
                progress.update(i + 1)
            }
            try write(Data(csv.utf8), to: root.appendingPathComponent("train.csv"))

            let held = try SyntheticShapes(seed: seed + 1, count: valSamples, imageSize: imageSize)
            var valCSV = "filepath\tcaption\n"
            for colour in SyntheticShapes.classNames {
                try fm.createDirectory(at: root.appendingPathComponent("val/\(colour)"), withIntermediateDirectories: true)
            }
            for i in 0..<valSamples {
                let s = held.sample(i)
                let name = "val/\(SyntheticShapes.classNames[s.colour])/\(String(format: "%06d", i)).png"
                try write(PNGEncoder.encode(s.image), to: root.appendingPathComponent(name))
                valCSV += "\(path(name))\t\(s.caption)\n"
            }
            try write(Data(valCSV.utf8), to: root.appendingPathComponent("val.csv"))
            // An image folder's labels are its sub-folders in sorted order.
            try write(Data((SyntheticShapes.classNames.sorted().joined(separator: "\n") + "\n").utf8),
                      to: root.appendingPathComponent("classnames.txt"))
            try write(Data((SyntheticShapes.templates.joined(separator: "\n") + "\n").utf8),
                      to: root.appendingPathComponent("templates.txt"))
            print("make-synthetic: \(samples) training and \(valSamples) held-out samples (\(imageSize)×\(imageSize)) in \(root.path)")
        }
    }

    func write(_ data: Data, to url: URL) throws {
        do { try data.write(to: url) } catch {
            throw ValidationError("\(url.path): cannot write (\(error.localizedDescription))")
        }
    }
}
