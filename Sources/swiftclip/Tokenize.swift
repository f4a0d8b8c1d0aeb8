import ArgumentParser
import CLIPEngine
import CLIPNN
import CLIPTokenizer
import Foundation

/// Where the CLIP BPE vocabulary comes from (`--vocab`, else CLIPTokenizer's search order).
struct VocabularyOptions: ParsableArguments {
    @Option(name: .long, help: "CLIP BPE vocabulary (bpe_simple_vocab_16e6.txt.gz). Default: $SWIFTCLIP_VOCAB, then assets/ (scripts/setup.sh fetches it).")
    var vocab: String?

    func tokenizer() throws -> CLIPTokenizer {
        try CLIPTokenizer(vocabularyURL: vocab.map { URL(fileURLWithPath: $0) } ?? CLIPTokenizer.defaultVocabularyURL())
    }

    func validate() throws { try requireNonEmptyPaths([(vocab, "--vocab")]) }
}

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Token ids as open_clip.tokenize gives them: [start] + BPE + [end], truncated (end kept) and zero-padded.")

    @OptionGroup var vocabulary: VocabularyOptions
    @Option(name: .long, help: "Tokens per row.") var contextLength = 77
    @Option(name: .long, help: "Read texts from a file, one per line (in addition to the arguments).") var file: String?
    @Option(name: .long, help: "Also write the ids as an int32 .npy (N, context_length).") var output: String?
    @Flag(name: .long, help: "Print a JSON list of rows instead of space-separated ids.") var json = false
    @Argument(help: "Texts to tokenize.") var texts: [String] = []

    func validate() throws {
        try requireOption(contextLength, in: OptionLimits.contextLength, "--context-length")
        try requireNonEmptyPaths([(file, "--file"), (output, "--output")])
        guard !texts.isEmpty || file != nil else { throw ValidationError("give texts as arguments or with --file") }
    }

    func run() throws {
        try runReportingErrors {
            var all = texts
            if let file { all += try textsOnLines(file) }
            let rows = try vocabulary.tokenizer().tokenize(all, contextLength: contextLength)
            if let output {
                try NPY.write(int32: rows.flatMap { $0 }, shape: [rows.count, contextLength], to: URL(fileURLWithPath: output))
            }
            if json {
                let data = try JSONSerialization.data(withJSONObject: rows.map { $0.map(Int.init) })
                print(String(decoding: data, as: UTF8.self))
            } else {
                for row in rows { print(row.map(String.init).joined(separator: " ")) }
            }
        }
    }
}

/// Every line of a UTF-8 text file is one text, empty lines included (unlike CLIPData's
/// `readLines`, which drops them for class-name and template lists); a final newline ends the last.
func textsOnLines(_ path: String) throws -> [String] {
    let data: Data
    do { data = try InputFile.read(path, maximumBytes: 1 << 30) } catch let e as InputFileError {
        throw InputError(description: "--file \(e)")
    }
    guard let text = String(data: data, encoding: .utf8) else {
        throw InputError(description: "\(path): not valid UTF-8 text")
    }
    var lines = text.components(separatedBy: "\n").map { $0.hasSuffix("\r") ? String($0.dropLast()) : $0 }
    if lines.last == "" { lines.removeLast() }
    return lines
}
