// CLIP byte-level BPE tokenizer, equal to open_clip's `SimpleTokenizer` / `open_clip.tokenize`
// (open-clip-torch 3.3.0, clean='lower'). See docs/tokenizer.md.
import CLIPEngine
import Foundation

public enum TokenizerError: Error, CustomStringConvertible {
    /// The vocabulary file does not exist (the path that was tried).
    case vocabularyNotFound(String)
    /// The file exists but is not a valid CLIP BPE vocabulary (the path and what is wrong).
    case corruptVocabulary(String)
    /// The file could not be read (the path and the underlying error).
    case unreadableVocabulary(String)

    public var description: String {
        switch self {
        case .vocabularyNotFound(let path):
            return "CLIP BPE vocabulary not found at \(path). Run scripts/setup.sh (it fetches "
                + "bpe_simple_vocab_16e6.txt.gz from the open-clip-torch wheel into assets/), or point "
                + "--vocab or the SWIFTCLIP_VOCAB environment variable at the file."
        case .corruptVocabulary(let why):
            return "corrupt CLIP BPE vocabulary: \(why)"
        case .unreadableVocabulary(let why):
            return "cannot read CLIP BPE vocabulary: \(why)"
        }
    }
}

public final class CLIPTokenizer {
    public static let startOfText = 49406
    public static let endOfText = 49407
    /// 256 byte symbols + 256 end-of-word byte symbols + 48,894 merges + 2 special tokens.
    public static let vocabularySize = 49408
    static let mergeCount = 49152 - 256 - 2
    /// Largest vocabulary file, compressed or decompressed (open_clip's is 1.4 MB gzipped, 1.6 MB
    /// of text), so a gzip bomb stops at this size.
    public static let maximumVocabularyBytes = 32 << 20

    /// Token strings, indexed by id (open_clip's `decoder`).
    private let tokens: [String]
    /// Merge rank keyed by the pair of symbol ids (`left << 32 | right`); merged id = 512 + rank.
    private let ranks: [UInt64: Int32]
    /// Byte value -> id of its single-byte symbol (without / with "</w>").
    private let byteID: [Int32]
    /// Id -> the bytes it stands for (after byte_decoder, "</w>" kept as its 4 ASCII bytes).
    private let idBytes: [[UInt8]]
    private var cache: [[UInt8]: [Int32]] = [:]
    private let lock = NSLock()

    /// Loads `bpe_simple_vocab_16e6.txt.gz` (or the decompressed `.txt`).
    public init(vocabularyURL: URL) throws {
        let path = vocabularyURL.path
        guard FileManager.default.fileExists(atPath: path) else { throw TokenizerError.vocabularyNotFound(path) }
        var bytes: [UInt8]
        do {
            bytes = [UInt8](try InputFile.read(path, maximumBytes: CLIPTokenizer.maximumVocabularyBytes))
        } catch let e as InputFileError {
            throw TokenizerError.unreadableVocabulary(e.description)
        }
        if bytes.count >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B {
            do { bytes = try gunzip(bytes, maximumBytes: CLIPTokenizer.maximumVocabularyBytes) } catch {
                throw TokenizerError.corruptVocabulary("\(path): \(error)")
            }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw TokenizerError.corruptVocabulary("\(path): not UTF-8 text")
        }
        // merges = lines[1 : 49152-256-2+1], each "left right".
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count > CLIPTokenizer.mergeCount else {
            throw TokenizerError.corruptVocabulary("\(path): \(lines.count) lines, expected at least \(CLIPTokenizer.mergeCount + 1)")
        }

        let byteEncoder = CLIPTokenizer.bytesToUnicode()
        // open_clip's vocabulary starts with bytes_to_unicode's values in its dict order: the
        // printable bytes first, then the others (not byte order).
        let byteOrder = CLIPTokenizer.bytesToUnicodeOrder()
        var tokens = byteOrder.map { String(byteEncoder[Int($0)]) }
        tokens += byteOrder.map { String(byteEncoder[Int($0)]) + "</w>" }
        var ids = [String: Int32](minimumCapacity: CLIPTokenizer.vocabularySize)
        for (i, t) in tokens.enumerated() { ids[t] = Int32(i) }
        var ranks = [UInt64: Int32](minimumCapacity: CLIPTokenizer.mergeCount)
        for rank in 0..<CLIPTokenizer.mergeCount {
            let parts = lines[rank + 1].split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2, let l = ids[String(parts[0])], let r = ids[String(parts[1])] else {
                throw TokenizerError.corruptVocabulary("\(path): line \(rank + 2) is not a merge of two known symbols")
            }
            let merged = String(parts[0]) + String(parts[1])
            guard ids[merged] == nil else {
                throw TokenizerError.corruptVocabulary("\(path): line \(rank + 2) repeats the symbol \(merged)")
            }
            let id = Int32(tokens.count)
            tokens.append(merged)
            ids[merged] = id
            ranks[UInt64(UInt32(l)) << 32 | UInt64(UInt32(r))] = Int32(rank)
        }
        tokens += ["<start_of_text>", "<end_of_text>"]
        self.tokens = tokens
        self.ranks = ranks

        var decoder = [UInt32: UInt8]()
        for (b, c) in byteEncoder.enumerated() { decoder[c.value] = UInt8(b) }
        var byteID = [Int32](repeating: 0, count: 512)
        for b in 0..<256 {
            byteID[b] = ids[String(byteEncoder[b])]!
            byteID[256 + b] = ids[String(byteEncoder[b]) + "</w>"]!
        }
        self.byteID = byteID
        idBytes = tokens.map { t in t.unicodeScalars.map { decoder[$0.value] ?? UInt8(truncatingIfNeeded: $0.value) } }
    }

    private static func isPrintableByte(_ b: Int) -> Bool {
        (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
    }

    /// GPT-2 / CLIP `bytes_to_unicode`: byte -> printable character (indexed by byte value).
    /// Printable bytes map to themselves, the others to U+0100, U+0101, ... in byte order.
    static func bytesToUnicode() -> [Unicode.Scalar] {
        var map = [Unicode.Scalar](repeating: " ", count: 256)
        var n: UInt32 = 0
        for b in 0..<256 {
            if isPrintableByte(b) {
                map[b] = Unicode.Scalar(UInt8(b))
            } else {
                map[b] = Unicode.Scalar(256 + n) ?? " "
                n += 1
            }
        }
        return map
    }

    /// The bytes in the order of bytes_to_unicode's dict: printable ones, then the rest.
    static func bytesToUnicodeOrder() -> [UInt8] {
        (0..<256).filter(isPrintableByte).map(UInt8.init) + (0..<256).filter { !isPrintableByte($0) }.map(UInt8.init)
    }

    /// Where the vocabulary is looked for, in order:
    /// 1. `$SWIFTCLIP_VOCAB`;
    /// 2. `assets/bpe_simple_vocab_16e6.txt.gz` under the current directory or any parent of it
    ///    (so the repository's assets/ is found from any folder inside the checkout);
    /// 3. `assets/…` next to the running executable or any parent of its folder (`.build/release/swiftclip`);
    /// 4. `~/.cache/swiftclip/bpe_simple_vocab_16e6.txt.gz`.
    /// When none exists, returns the first candidate that would have applied (so the error names it).
    public static func defaultVocabularyURL() -> URL {
        let env = ProcessInfo.processInfo.environment
        if let v = env["SWIFTCLIP_VOCAB"], !v.isEmpty { return URL(fileURLWithPath: v) }
        let rel = "assets/bpe_simple_vocab_16e6.txt.gz"
        let fm = FileManager.default
        var candidates: [URL] = []
        var dirs = [URL(fileURLWithPath: fm.currentDirectoryPath)]
        if let exe = CommandLine.arguments.first, !exe.isEmpty {
            dirs.append(URL(fileURLWithPath: exe).resolvingSymlinksInPath().deletingLastPathComponent())
        }
        for start in dirs {
            var dir = start.standardizedFileURL
            while true {
                candidates.append(dir.appendingPathComponent(rel))
                let parent = dir.deletingLastPathComponent()
                if parent.path == dir.path { break }
                dir = parent
            }
        }
        let home = env["HOME"].map { URL(fileURLWithPath: $0) } ?? fm.homeDirectoryForCurrentUser
        candidates.append(home.appendingPathComponent(".cache/swiftclip/bpe_simple_vocab_16e6.txt.gz"))
        return candidates.first { fm.fileExists(atPath: $0.path) } ?? candidates[0]
    }

    /// BPE ids of `text` after open_clip's cleaning, without start/end tokens (`SimpleTokenizer.encode`).
    public func encode(_ text: String) -> [Int] {
        encodeIDs(text).map(Int.init)
    }

    func encodeIDs(_ text: String) -> [Int32] {
        let cleaned = TextCleaner.cleanLower(text)
        var out: [Int32] = []
        out.reserveCapacity(cleaned.count / 3 + 1)
        var utf8: [UInt8] = []
        for range in PreTokenizer.split(cleaned) {
            utf8.removeAll(keepingCapacity: true)
            for c in cleaned[range] { utf8.append(contentsOf: UTF8.encode(c)!) }
            out.append(contentsOf: bpe(utf8))
        }
        return out
    }

    /// open_clip.tokenize: `[sot] + encode(text) + [eot]`, cut to `contextLength` with the last
    /// kept token replaced by eot, padded with 0. Every row has exactly `contextLength` entries
    /// (none when `contextLength` < 1, where open_clip would assert).
    public func tokenize(_ texts: [String], contextLength: Int = 77) -> [[Int32]] {
        texts.map { text in
            guard contextLength > 0 else { return [] }
            var row = [Int32(CLIPTokenizer.startOfText)] + encodeIDs(text) + [Int32(CLIPTokenizer.endOfText)]
            if row.count > contextLength {
                row.removeLast(row.count - contextLength)
                row[contextLength - 1] = Int32(CLIPTokenizer.endOfText)
            }
            row += [Int32](repeating: 0, count: contextLength - row.count)
            return row
        }
    }

    /// `SimpleTokenizer.decode`: token strings joined, bytes decoded as UTF-8 with U+FFFD for
    /// invalid sequences, "</w>" replaced by a space. Ids outside the vocabulary are skipped.
    public func decode(_ ids: [Int]) -> String {
        var joined: [UInt8] = []
        for id in ids where id >= 0 && id < idBytes.count { joined += idBytes[id] }
        // "</w>" -> " ", left to right, on the bytes: the same as Python's str.replace on the decoded
        // text (ASCII bytes never belong to an invalid UTF-8 sequence), and free of String's
        // grapheme-based matching ("</w>" followed by a combining mark is one Character there).
        var bytes: [UInt8] = []
        bytes.reserveCapacity(joined.count)
        var i = 0
        while i < joined.count {
            if joined[i] == 0x3C && i + 3 < joined.count && joined[i + 1] == 0x2F && joined[i + 2] == 0x77 && joined[i + 3] == 0x3E {
                bytes.append(0x20)
                i += 4
            } else {
                bytes.append(joined[i])
                i += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// BPE of one pre-token (its UTF-8 bytes), cached per token.
    private func bpe(_ bytes: [UInt8]) -> [Int32] {
        lock.lock()
        let hit = cache[bytes]
        lock.unlock()
        if let hit { return hit }
        let result = merge(bytes)
        lock.lock()
        if cache.count > 1_000_000 { cache.removeAll(keepingCapacity: true) }  // bound memory
        cache[bytes] = result
        lock.unlock()
        return result
    }

    private func merge(_ bytes: [UInt8]) -> [Int32] {
        if let special = specialID(bytes) { return [special] }
        var word = bytes.map { byteID[Int($0)] }
        word[word.count - 1] = byteID[256 + Int(bytes[bytes.count - 1])]
        while word.count > 1 {
            // The lowest-ranked adjacent pair; then merge all its occurrences left to right.
            var best = Int32.max, first: Int32 = 0, second: Int32 = 0
            for k in 0..<(word.count - 1) {
                if let r = ranks[UInt64(UInt32(word[k])) << 32 | UInt64(UInt32(word[k + 1]))], r < best {
                    best = r
                    first = word[k]
                    second = word[k + 1]
                }
            }
            if best == Int32.max { break }
            let merged = 512 + best
            var next: [Int32] = []
            next.reserveCapacity(word.count)
            var k = 0
            while k < word.count {
                if k + 1 < word.count && word[k] == first && word[k + 1] == second {
                    next.append(merged)
                    k += 2
                } else {
                    next.append(word[k])
                    k += 1
                }
            }
            word = next
        }
        return word
    }

    /// "<start_of_text>" / "<end_of_text>" pre-tokens map to their ids as written (open_clip's
    /// cache holds them verbatim; other spellings the case-insensitive regex accepts, such as
    /// "<ſtart_of_text>", miss that cache and go through ordinary BPE there as here).
    private func specialID(_ bytes: [UInt8]) -> Int32? {
        if bytes.count == 15 && bytes == Array("<start_of_text>".utf8) { return Int32(CLIPTokenizer.startOfText) }
        if bytes.count == 13 && bytes == Array("<end_of_text>".utf8) { return Int32(CLIPTokenizer.endOfText) }
        return nil
    }
}
