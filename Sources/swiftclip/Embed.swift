import ArgumentParser
import CLIPEngine
import CLIPData
import CLIPEvaluation
import CLIPModels
import CLIPNN
import Foundation

struct InputError: Error, CustomStringConvertible {
    let description: String
}

struct EmbedImage: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed-image",
        abstract: "Image embeddings (open_clip's encode_image), written as float32 .npy (N, embed_dim).",
        discussion: """
        Each image file is read, decoded, preprocessed and embedded whole on one thread (as `index` \
        does), so memory holds one image and one forward pass per thread for any number of inputs. \
        Unreadable files are reported on stderr and skipped (exit status 1); OUT.rows.txt beside \
        OUT.npy names the input of each row, one per line.
        """)

    @OptionGroup var options: ModelOptions
    @OptionGroup var precisionOption: PrecisionOption
    @Flag(name: .long, help: "L2-normalise the embeddings.") var normalize = false
    @Option(name: .long, help: "Output .npy file.") var output: String
    @Option(name: .long, help: "Where to write the input of each row (default: OUT.rows.txt beside OUT.npy).") var rows: String?
    @Option(name: .long, help: "Image files written out together (each embedded on one thread); rows of an .npy input per forward pass per thread.") var batchSize = 32
    @OptionGroup var source: ImageSourceOptions

    func validate() throws {
        try requireOption(batchSize, in: OptionLimits.batchSize, "--batch-size")
        try requireNonEmptyPaths([(output, "--output"), (rows, "--rows")])
    }

    func run() throws {
        try runReportingErrors {
            let model = try CLIPModel(model: options.model, weightsURL: options.weightsURL, seed: options.seed,
                                      precision: precisionOption.precision, inferenceOnly: true)
            let images = try ImageInputs(source.paths(), preprocessor: Preprocessor(model: model.config), batchSize: batchSize)
            let embeddings = try NPYRowWriter(url: URL(fileURLWithPath: output), rowShape: [model.config.embedDim])
            let names = try RowNamesFile(output: output, explicit: rows)
            let failed = try images.forEachEmbedding(model, normalize: normalize, label: "embedding images") { rows, rowNames in
                try embeddings.append(rows)
                try names.append(rowNames)
            }
            try embeddings.finish()
            try names.commit()
            if failed > 0 { throw ExitCode.failure }
        }
    }
}

struct EmbedText: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed-text",
        abstract: "Text embeddings (open_clip's encode_text) of texts or token ids, written as float32 .npy (N, embed_dim).")

    @OptionGroup var options: ModelOptions
    @OptionGroup var precisionOption: PrecisionOption
    @OptionGroup var vocabulary: VocabularyOptions
    @Flag(name: .long, help: "L2-normalise the embeddings.") var normalize = false
    @Option(name: .long, help: "Token ids (N, context_length) as int32 or int64 .npy, instead of texts.") var tokens: String?
    @Option(name: .long, help: "Output .npy file.") var output: String
    @Option(name: .long, help: "Texts per forward pass.") var batchSize = 256
    @Argument(help: "Texts to embed (tokenized as open_clip.tokenize does).") var texts: [String] = []

    func validate() throws {
        guard (tokens == nil) != texts.isEmpty else { throw ValidationError("give either texts or --tokens") }
        try requireOption(batchSize, in: OptionLimits.batchSize, "--batch-size")
        try requireNonEmptyPaths([(output, "--output"), (tokens, "--tokens")])
    }

    func run() throws {
        try runReportingErrors {
            let model = try CLIPModel(model: options.model, weightsURL: options.weightsURL, seed: options.seed,
                                      precision: precisionOption.precision, inferenceOnly: true)
            let rows: [[Int]]
            if let tokens {
                rows = try readTokenRows(path: tokens, vocabSize: model.config.text.vocabSize, contextLength: model.config.text.contextLength)
            } else {
                try requireTokenizerFits(model.config)
                rows = try vocabulary.tokenizer().tokenize(texts, contextLength: model.config.text.contextLength)
                    .map { $0.map(Int.init) }
            }
            var parts: [Tensor] = []
            for start in stride(from: 0, to: rows.count, by: batchSize) {
                parts.append(try model.encodeText(Array(rows[start..<min(rows.count, start + batchSize)]), normalize: normalize))
            }
            try NPY.write(Tensor.concatenate(rows: parts), to: URL(fileURLWithPath: output))
        }
    }
}

/// Reads an (N, L) integer .npy of token ids and checks every id against the vocabulary.
func readTokenRows(path: String, vocabSize: Int, contextLength: Int) throws -> [[Int]] {
    let array = try NPY.read(URL(fileURLWithPath: path))
    guard array.shape.count == 2, array.shape[0] > 0, array.shape[1] > 0 else {
        throw InputError(description: "\(path): expected token ids of shape (N, context_length), got \(array.shape)")
    }
    guard array.shape[1] <= contextLength else {
        throw InputError(description: "\(path): rows of \(array.shape[1]) tokens, wider than the model's context_length \(contextLength)")
    }
    let ids = try array.intValues()
    let length = array.shape[1]
    if let bad = ids.firstIndex(where: { $0 < 0 || $0 >= vocabSize }) {
        throw InputError(description: "\(path): token id \(ids[bad]) at row \(bad / length), column \(bad % length) is outside the vocabulary 0..<\(vocabSize)")
    }
    return (0..<array.shape[0]).map { Array(ids[$0 * length..<($0 + 1) * length]) }
}
