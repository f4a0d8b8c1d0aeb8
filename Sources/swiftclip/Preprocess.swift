import ArgumentParser
import CLIPData
import CLIPEvaluation
import CLIPModels
import CLIPNN
import Foundation

struct Preprocess: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decode and preprocess images as open_clip's eval transform does -> float32 .npy (N, 3, S, S).",
        discussion: "Unreadable files are reported on stderr and skipped; the exit status is 1 if any failed. OUT.rows.txt names the input of each row.")

    @Option(name: .long, help: "Model (its image_size sets S) — built-in name or JSON config.") var model: String
    @Option(name: .long, help: "Output .npy file.") var output: String
    @OptionGroup var source: ImageSourceOptions

    func validate() throws {
        try requireNonEmptyPaths([(output, "--output")])
        guard !model.isEmpty else { throw ValidationError("--model: empty name or path") }
    }

    func run() throws {
        try runReportingErrors {
            let config = try ModelRegistry.config(named: model)
            let size = config.vision.imageSize
            let inputs = try ImageInputs(source.paths(), preprocessor: Preprocessor(model: config), batchSize: 32)
            let pixels = try NPYRowWriter(url: URL(fileURLWithPath: output), rowShape: [3, size, size])
            let names = try RowNamesFile(output: output)
            let failed = try inputs.forEachBatch(label: "preprocessing images") { batch, rowNames in
                try pixels.append(batch)
                try names.append(rowNames)
            }
            try pixels.finish()
            try names.commit()
            FileHandle.standardError.write(Data("wrote \(pixels.rows) images of \(inputs.total) inputs to \(output)\n".utf8))
            if failed > 0 { throw ExitCode.failure }
        }
    }
}
