import CLIPTokenizer
import Foundation
import XCTest

/// Paths relative to this file: fixtures beside it, the vocabulary in the repository's assets/
/// (fetched by scripts/setup.sh, which `make test` runs first).
enum Paths {
    static let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    static let fixtures = here.appendingPathComponent("Fixtures")
    static let repoRoot = here.deletingLastPathComponent().deletingLastPathComponent()
    static let vocab = repoRoot.appendingPathComponent("assets/bpe_simple_vocab_16e6.txt.gz")
}

struct CorpusEntry: Decodable {
    let text: String
    let context_length: Int
    let ids: [Int32]
    let decoded: String
}

struct MojibakeEntry: Decodable {
    let text: String
    let repaired: String
    let ids: [Int32]
}

struct Corpus: Decodable {
    let curated: [CorpusEntry]
    let random: [CorpusEntry]
    let mojibake: [MojibakeEntry]
}

/// One tokenizer for the whole test run (loading it parses 48,894 merges).
let sharedTokenizer: Result<CLIPTokenizer, Error> = Result { try CLIPTokenizer(vocabularyURL: Paths.vocab) }

func loadTokenizer() throws -> CLIPTokenizer {
    do {
        return try sharedTokenizer.get()
    } catch {
        XCTFail("the tokenizer tests need the vocabulary: \(error)")
        throw error
    }
}

func loadCorpus() throws -> Corpus {
    let data = try Data(contentsOf: Paths.fixtures.appendingPathComponent("corpus.json"))
    return try JSONDecoder().decode(Corpus.self, from: data)
}

final class TokenizerParityTests: XCTestCase {
    private func check(_ entries: [CorpusEntry], _ tok: CLIPTokenizer, file: StaticString = #filePath, line: UInt = #line) {
        var failures = 0
        for e in entries {
            let got = tok.tokenize([e.text], contextLength: e.context_length)[0]
            if got != e.ids {
                failures += 1
                if failures <= 20 {
                    XCTFail("ids differ for \(e.text.debugDescription) (context \(e.context_length))\n"
                            + "  open_clip: \(e.ids)\n  swift:     \(got)", file: file, line: line)
                }
            }
            XCTAssertEqual(got.count, e.context_length, file: file, line: line)
        }
        XCTAssertEqual(failures, 0, "\(failures) of \(entries.count) strings differ", file: file, line: line)
    }

    func testCuratedCorpusMatchesOpenCLIP() throws {
        let corpus = try loadCorpus()
        XCTAssertGreaterThanOrEqual(corpus.curated.count, 150)
        check(corpus.curated, try loadTokenizer())
    }

    func testRandomMixedScriptCorpusMatchesOpenCLIP() throws {
        let corpus = try loadCorpus()
        XCTAssertEqual(corpus.random.count, 500)
        check(corpus.random, try loadTokenizer())
    }

    func testDecodeMatchesOpenCLIP() throws {
        let tok = try loadTokenizer()
        let corpus = try loadCorpus()
        var failures = 0
        for e in corpus.curated + corpus.random {
            let got = tok.decode(tok.encode(e.text))
            if got.unicodeScalars.elementsEqual(e.decoded.unicodeScalars) { continue }
            failures += 1
            if failures <= 10 { XCTFail("decode differs for \(e.text.debugDescription): \(got.debugDescription) vs \(e.decoded.debugDescription)") }
        }
        XCTAssertEqual(failures, 0)
    }

    /// ftfy's mojibake repair is not replicated: the ids equal open_clip's once the text is repaired.
    func testMojibakeIsTheOnlyKnownDifference() throws {
        let tok = try loadTokenizer()
        for e in try loadCorpus().mojibake {
            XCTAssertEqual(tok.tokenize([e.repaired])[0], e.ids, e.text.debugDescription)
            XCTAssertNotEqual(tok.tokenize([e.text])[0], e.ids, "mojibake repair now works? update docs: \(e.text.debugDescription)")
        }
    }

    func testSpecialTokensAndTruncation() throws {
        let tok = try loadTokenizer()
        XCTAssertEqual(CLIPTokenizer.startOfText, 49406)
        XCTAssertEqual(CLIPTokenizer.endOfText, 49407)
        let rows = tok.tokenize(["", String(repeating: "cat ", count: 200)], contextLength: 77)
        XCTAssertEqual(rows[0].prefix(3), [49406, 49407, 0])
        XCTAssertEqual(rows[1].count, 77)
        XCTAssertEqual(rows[1].first, 49406)
        XCTAssertEqual(rows[1].last, 49407)
        XCTAssertEqual(tok.tokenize(["a"], contextLength: 0), [[]])
        XCTAssertEqual(tok.encode(""), [])
        XCTAssertEqual(tok.decode([49406, 320, 1125, 49407]), "<start_of_text>a photo <end_of_text>")
        XCTAssertEqual(tok.decode([-1, 1_000_000]), "")
    }

    func testTokenizeIsSafeFromSeveralThreads() throws {
        let tok = try loadTokenizer()
        let texts = (0..<200).map { "caption number \($0) with words w\($0 % 17)x" }
        let expected = tok.tokenize(texts)
        var results = [[[Int32]]](repeating: [], count: 4)
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: 4) { k in
            let r = tok.tokenize(texts)
            lock.lock()
            results[k] = r
            lock.unlock()
        }
        for r in results { XCTAssertEqual(r, expected) }
    }
}

final class VocabularyLoadingTests: XCTestCase {
    func testMissingVocabularyErrorSaysHowToGetIt() {
        let url = URL(fileURLWithPath: "/nonexistent/bpe_simple_vocab_16e6.txt.gz")
        XCTAssertThrowsError(try CLIPTokenizer(vocabularyURL: url)) { error in
            let message = String(describing: error)
            XCTAssertTrue(message.contains("/nonexistent/bpe_simple_vocab_16e6.txt.gz"), message)
            XCTAssertTrue(message.contains("scripts/setup.sh"), message)
            XCTAssertTrue(message.contains("SWIFTCLIP_VOCAB"), message)
        }
    }

    func testCorruptVocabularyIsAnError() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cliptok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let short = dir.appendingPathComponent("short.txt")
        try Data("#version: 0.2\ni n\n".utf8).write(to: short)
        XCTAssertThrowsError(try CLIPTokenizer(vocabularyURL: short)) { XCTAssertTrue("\($0)".contains("corrupt"), "\($0)") }
        let badGzip = dir.appendingPathComponent("bad.txt.gz")
        var bytes = [UInt8](try Data(contentsOf: Paths.vocab).prefix(5000))
        bytes[100] ^= 0xFF
        try Data(bytes).write(to: badGzip)
        XCTAssertThrowsError(try CLIPTokenizer(vocabularyURL: badGzip)) { XCTAssertTrue("\($0)".contains("corrupt"), "\($0)") }
    }

    func testPlainTextVocabularyGivesTheSameTokenizer() throws {
        let gz = try loadTokenizer()
        let raw = try gunzip([UInt8](try Data(contentsOf: Paths.vocab)))
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("cliptok-\(UUID().uuidString).txt")
        try Data(raw).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let plain = try CLIPTokenizer(vocabularyURL: url)
        let texts = ["a photo of a cat", "naïve 猫 👍🏽 it's"]
        XCTAssertEqual(plain.tokenize(texts), gz.tokenize(texts))
    }

    func testDefaultVocabularyURLHonoursEnvironment() {
        setenv("SWIFTCLIP_VOCAB", "/some/where/vocab.txt.gz", 1)
        defer { unsetenv("SWIFTCLIP_VOCAB") }
        XCTAssertEqual(CLIPTokenizer.defaultVocabularyURL().path, "/some/where/vocab.txt.gz")
    }
}
