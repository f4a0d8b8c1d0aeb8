import ArgumentParser
import CLIPTraining
import Foundation

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert weights and checkpoints: safetensors, torch .bin/.pth state dicts, open_clip_train epoch_K.pt.",
        discussion: """
        IN is read by content (safetensors or torch's zip format; torch files are read without executing \
        anything). OUT's format: --to, or its extension (.safetensors; .bin/.pth a state dict; .pt an \
        open_clip_train checkpoint when IN is a SwiftCLIP training checkpoint, else a state dict). \
        An epoch_K.pt resumes with `python -m open_clip_train.main --resume epoch_K.pt`.
        """)

    @Argument(help: "Input: .safetensors (weights or a SwiftCLIP checkpoint), .bin/.pth/.pt.") var input: String
    @Argument(help: "Output file (written atomically).") var output: String
    @Option(name: .long, help: "safetensors, state-dict or open-clip-train (default: from OUT's extension).") var to: String?
    @Option(name: .long, help: "Model name or JSON config (open-clip-train output; default: the checkpoint's own).") var model: String?
    @Option(name: .long, help: "Run name stored in an epoch_K.pt (default: the checkpoint's run folder).") var name: String?

    func validate() throws {
        try requireNonEmptyPaths([(input, "IN"), (output, "OUT"), (model, "--model")])
        if let to, CheckpointConversion.Target(rawValue: to) == nil {
            throw ValidationError("--to must be safetensors, state-dict or open-clip-train, got '\(to)'")
        }
    }

    func run() throws {
        try runReportingErrors {
            let report = try CheckpointConversion.convert(
                URL(fileURLWithPath: input), to: URL(fileURLWithPath: output), target: to.flatMap(CheckpointConversion.Target.init),
                model: model, name: name)
            let epoch = report.epoch.map { ", epoch \($0)" } ?? ""
            print("wrote \(output): \(report.target.rawValue), \(report.tensors) tensors\(epoch)")
        }
    }
}
