import ArgumentParser
import CLIPModels
import CLIPNN
import Foundation

struct Preprocess: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decode and preprocess images as open_clip's eval transform does -> float32 .npy (N, 3, S, S).",
        discussion: "Unreadable files are reported on stderr and skipped; the exit status is 1 if any failed.")

    @Option(name: .long, help: "Model (its image_size sets S) — built-in name or JSON config.") var model: String
    @Option(name: .long, help: "Output .npy file.") var output: String
    @Argument(help: "Image files (JPEG, PNG).") var images: [String]

    func validate() throws {
        guard !images.isEmpty else { throw ValidationError("give at least one image") }
        try requireNonEmptyPaths([(output, "--output")] + images.map { ($0, "image argument") })
        guard !model.isEmpty else { throw ValidationError("--model: empty name or path") }
    }

    func run() throws {
        try runReportingErrors {
            let config = try ModelRegistry.config(named: model)
            let inputs = try ImageInputs(images, imageSize: config.vision.imageSize)
            try inputs.reportFailures()
            try NPY.write(inputs.tensor!, to: URL(fileURLWithPath: output))
            FileHandle.standardError.write(Data("wrote \(inputs.rowNames.count) of \(images.count) images to \(output)\n".utf8))
            if !inputs.failures.isEmpty { throw ExitCode.failure }
        }
    }
}
