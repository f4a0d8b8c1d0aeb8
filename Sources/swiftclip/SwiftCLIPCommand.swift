import ArgumentParser
import CLIPEngine
import Foundation

@main
struct SwiftCLIPCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swiftclip",
        abstract: "CLIP image–text models (ConvNeXt-V2, ViT) in Swift: train, embed, classify, evaluate, benchmark, export to ONNX.",
        subcommands: [Info.self, Tokenize.self, Preprocess.self, EmbedImage.self, EmbedText.self, Classify.self, Eval.self, Bench.self, BenchTrain.self,
                      ExportONNX.self, MakeSynthetic.self, MakeShards.self, Train.self, Convert.self,
                      Heatmap.self, MakeSyntheticScenes.self, TrainDetector.self, Detect.self, EvalDetect.self,
                      IndexCommand.self, SearchCommand.self, BenchSearch.self, Serve.self])
}

/// Options every model-using command shares.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "Built-in model name (convnext_v2_tiny, ViT-B-32, …) or path to an open_clip JSON config.")
    var model: String

    @Option(name: .long, help: "open_clip weights: .safetensors or a torch .bin/.pt/.pth (read by content). Without it, weights are initialised randomly from --seed.")
    var weights: String?

    @Option(name: .long, help: "Seed for random initialisation when no --weights are given.")
    var seed: UInt64 = 0

    @Option(name: .long, help: "Threads for the kernels (default: all cores).")
    var threads: Int?

    /// Checks the options and applies --threads to the engine's pool (before any command runs).
    mutating func validate() throws {
        guard !model.isEmpty else { throw ValidationError("--model: empty name or path") }
        try requireNonEmptyPaths([(weights, "--weights")])
        if let threads {
            guard (1...4096).contains(threads) else { throw ValidationError("--threads must be in 1...4096, got \(threads)") }
            Parallel.threadCount = threads
        }
    }

    var weightsURL: URL? { weights.map { URL(fileURLWithPath: $0) } }
}

extension Precision: ExpressibleByArgument {}

/// `--precision`, for the commands that run inference (embed-image, embed-text, classify, eval).
struct PrecisionOption: ParsableArguments {
    @Option(name: .long, help: "fp32, bf16 or int8: the format the GEMM weights are stored and multiplied in (docs/precision.md).")
    var precision: Precision = .fp32
}

/// "fp32,bf16" -> [.fp32, .bf16]; an unknown or repeated item is a usage error.
func parsePrecisions(_ text: String, option: String = "--precision") throws -> [Precision] {
    let items = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
    let list = try items.map { item -> Precision in
        guard let p = Precision(rawValue: item) else {
            throw ValidationError("\(option) must be comma-separated fp32, bf16, int8; got '\(text)' (item '\(item)')")
        }
        return p
    }
    guard Set(list).count == list.count else { throw ValidationError("\(option): '\(text)' names a precision twice") }
    return list
}

/// Turns a library error into a one-line message and a non-zero exit, instead of a trap.
func runReportingErrors(_ body: () throws -> Void) throws {
    do { try body() } catch let error as ExitCode {
        throw error
    } catch let error as ValidationError {
        throw error
    } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode.failure
    }
}

/// Progress on stderr, only when it is a terminal.
struct Progress {
    let label: String
    let total: Int
    let enabled = isatty(STDERR_FILENO) == 1

    func update(_ done: Int) {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\(label) \(done)/\(total)".utf8))
        if done == total { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
