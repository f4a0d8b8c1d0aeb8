import ArgumentParser
import CLIPData
import CLIPEngine
import CLIPModels
import CLIPTokenizer
import Foundation

/// Bounds on numeric options (usage errors, exit status 64, when outside them).
enum OptionLimits {
    /// Images or texts per forward pass, and bench batch sizes.
    static let batchSize = 1...65_536
    static let warmup = 0...10_000
    static let repeats = 1...100_000
    static let contextLength = 2...CLIPConfig.Limits.contextLength
}

/// A usage error naming the option: "--warmup must be in 0...10000, got -1".
func requireOption(_ value: Int, in range: ClosedRange<Int>, _ option: String) throws {
    guard range.contains(value) else {
        throw ValidationError("\(option) must be in \(range.lowerBound)...\(range.upperBound), got \(value)")
    }
}

/// Empty paths are usage errors (Foundation would read them as the working directory).
func requireNonEmptyPaths(_ paths: [(String?, String)]) throws {
    for case let (path?, option) in paths where path.isEmpty {
        throw ValidationError("\(option): empty path")
    }
}

/// "1,32" -> [1, 32]; an empty, non-integer or out-of-range item is a usage error.
func parseBatchSizes(_ text: String, option: String = "--batch-sizes") throws -> [Int] {
    let items = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
    return try items.map { item in
        guard let n = Int(item) else {
            throw ValidationError("\(option) must be comma-separated integers, e.g. 1,32; got '\(text)' (item '\(item)')")
        }
        try requireOption(n, in: OptionLimits.batchSize, option)
        return n
    }
}

/// Token ids from the CLIP tokenizer go up to 49,407: a text tower with a smaller vocabulary
/// cannot embed tokenized text (open_clip would fail with an index error).
func requireTokenizerFits(_ config: CLIPConfig) throws {
    guard config.text.vocabSize >= CLIPTokenizer.vocabularySize else {
        throw InputError(description: "\(config.source): text_cfg.vocab_size \(config.text.vocabSize) is smaller than the CLIP "
                         + "tokenizer's \(CLIPTokenizer.vocabularySize) tokens; give token ids with --tokens instead of text")
    }
}

/// Non-empty lines of a list file given by `option` (--templates, --classnames); a missing or
/// unreadable file, or one without entries, is an error naming both.
func readListFile(_ path: String, option: String) throws -> [String] {
    let lines: [String]
    do { lines = try readLines(URL(fileURLWithPath: path)) } catch let e as InputFileError {
        throw InputError(description: "\(option) \(path): \(e.reason)")
    }
    guard !lines.isEmpty else { throw InputError(description: "\(option) \(path): the file has no entries (no non-empty lines)") }
    return lines
}

/// Throws when a batch of `count` preprocessed images of side `size` (float32, plus the decoded
/// 8-bit crops) would not fit in memory.
func requireImageBatchMemory(count: Int, imageSize size: Int) throws {
    let total = checkedFloatBytes([count, 3, size, size]).flatMap { f in f.addingReportingOverflow(f / 4).overflow ? nil : f + f / 4 }
    try MemoryBudget.require(total, for: "a batch of \(count) images of \(size)×\(size)")
}
