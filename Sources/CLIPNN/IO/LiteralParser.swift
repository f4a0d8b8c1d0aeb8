/// A parsed header value: JSON (safetensors) or a Python literal (.npy headers).
enum Literal: Equatable {
    case string(String)
    /// A number written without fraction or exponent that fits in `Int`.
    case integer(Int)
    /// Any other number, as written.
    case number(String)
    case bool(Bool)
    case null
    /// JSON or Python list, or Python tuple.
    case array([Literal])
    case object([String: Literal])
}

extension Literal {
    /// Short text for error messages.
    var summary: String {
        switch self {
        case .string(let s): return "\"\(s.prefix(40))\""
        case .integer(let n): return String(n)
        case .number(let text): return String(text.prefix(40))
        case .bool(let b): return b ? "true" : "false"
        case .null: return "null"
        case .array(let items): return "a list of \(items.count)"
        case .object: return "an object"
        }
    }
}

/// A syntax error at a byte offset into the parsed text.
struct LiteralSyntaxError: Error {
    let offset: Int
    let message: String
}

/// A small strict parser for file headers. It reports errors instead of trapping on any input,
/// bounds nesting depth, and rejects duplicate keys (which would otherwise silently shadow data).
struct LiteralParser {
    enum Dialect {
        /// RFC 8259 JSON (safetensors headers).
        case json
        /// The subset of Python literals NumPy writes: `'strings'`, True/False/None, tuples,
        /// trailing commas, and Python 2's `3L` integers.
        case python(latin1: Bool)
    }

    static let maximumDepth = 64

    private let bytes: [UInt8]
    private let dialect: Dialect
    private var i = 0

    /// Parses exactly one value followed only by whitespace.
    static func parse(_ bytes: [UInt8], dialect: Dialect) throws -> Literal {
        var p = LiteralParser(bytes: bytes, dialect: dialect)
        let value = try p.value(depth: 0)
        p.skipWhitespace()
        if p.i < bytes.count { throw p.error("unexpected text after the value") }
        return value
    }

    private init(bytes: [UInt8], dialect: Dialect) {
        self.bytes = bytes
        self.dialect = dialect
    }

    private var isPython: Bool {
        if case .python = dialect { return true }
        return false
    }

    private func error(_ message: String) -> LiteralSyntaxError {
        LiteralSyntaxError(offset: i, message: message)
    }

    private var peek: UInt8? { i < bytes.count ? bytes[i] : nil }

    private mutating func skipWhitespace() {
        while let c = peek, c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D { i += 1 }
    }

    private mutating func value(depth: Int) throws -> Literal {
        guard depth < Self.maximumDepth else { throw error("nested deeper than \(Self.maximumDepth) levels") }
        skipWhitespace()
        guard let c = peek else { throw error("unexpected end of text, expected a value") }
        switch c {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return .array(try sequence(closing: UInt8(ascii: "]"), depth: depth))
        case UInt8(ascii: "(") where isPython: return .array(try sequence(closing: UInt8(ascii: ")"), depth: depth))
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "'") where isPython: return .string(try string())
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default:
            let words: [(String, Literal)] = isPython
                ? [("True", .bool(true)), ("False", .bool(false)), ("None", .null)]
                : [("true", .bool(true)), ("false", .bool(false)), ("null", .null)]
            for (word, literal) in words where matches(word) {
                i += word.utf8.count
                return literal
            }
            throw error("unexpected character \(describe(c))")
        }
    }

    private func matches(_ word: String) -> Bool {
        let w = Array(word.utf8)
        return i + w.count <= bytes.count && Array(bytes[i..<(i + w.count)]) == w
    }

    private func describe(_ c: UInt8) -> String {
        c >= 0x20 && c < 0x7F ? "'\(Character(Unicode.Scalar(c)))'" : "byte 0x\(String(c, radix: 16))"
    }

    /// Elements up to `closing`, after the opening bracket at `i`.
    private mutating func sequence(closing: UInt8, depth: Int) throws -> [Literal] {
        i += 1
        var items: [Literal] = []
        skipWhitespace()
        if peek == closing { i += 1; return items }
        while true {
            items.append(try value(depth: depth + 1))
            skipWhitespace()
            guard let c = peek else { throw error("unexpected end of text in a list") }
            if c == closing { i += 1; return items }
            guard c == UInt8(ascii: ",") else { throw error("expected ',' or '\(Character(Unicode.Scalar(closing)))', found \(describe(c))") }
            i += 1
            skipWhitespace()
            if isPython && peek == closing { i += 1; return items }
        }
    }

    private mutating func object(depth: Int) throws -> Literal {
        i += 1
        var members: [String: Literal] = [:]
        skipWhitespace()
        if peek == UInt8(ascii: "}") { i += 1; return .object(members) }
        while true {
            skipWhitespace()
            let keyOffset = i
            guard let c = peek, c == UInt8(ascii: "\"") || (isPython && c == UInt8(ascii: "'")) else {
                throw error("expected a string key")
            }
            let key = try string()
            skipWhitespace()
            guard peek == UInt8(ascii: ":") else { throw error("expected ':' after key \"\(key)\"") }
            i += 1
            let v = try value(depth: depth + 1)
            guard members.updateValue(v, forKey: key) == nil else {
                throw LiteralSyntaxError(offset: keyOffset, message: "duplicate key \"\(key)\"")
            }
            skipWhitespace()
            guard let d = peek else { throw error("unexpected end of text in an object") }
            if d == UInt8(ascii: "}") { i += 1; return .object(members) }
            guard d == UInt8(ascii: ",") else { throw error("expected ',' or '}', found \(describe(d))") }
            i += 1
            skipWhitespace()
            if isPython && peek == UInt8(ascii: "}") { i += 1; return .object(members) }
        }
    }

    private mutating func number() throws -> Literal {
        let start = i
        func digits() -> Int {
            let s = i
            while let c = peek, c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") { i += 1 }
            return i - s
        }
        if peek == UInt8(ascii: "-") { i += 1 }
        guard digits() > 0 else { throw error("expected digits") }
        var integral = true
        if peek == UInt8(ascii: ".") {
            i += 1
            integral = false
            guard digits() > 0 else { throw error("expected digits after '.'") }
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            i += 1
            integral = false
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { i += 1 }
            guard digits() > 0 else { throw error("expected digits in the exponent") }
        }
        let text = String(decoding: bytes[start..<i], as: UTF8.self)
        if isPython && integral && (peek == UInt8(ascii: "L") || peek == UInt8(ascii: "l")) { i += 1 }
        if integral, let n = Int(text) { return .integer(n) }
        return .number(text)
    }

    private mutating func string() throws -> String {
        let quote = bytes[i]
        let start = i
        i += 1
        var out: [UInt8] = []
        while true {
            guard let c = peek else {
                throw LiteralSyntaxError(offset: start, message: "unterminated string")
            }
            i += 1
            if c == quote { break }
            if c < 0x20 { throw error("control character in a string") }
            if c != UInt8(ascii: "\\") {
                if case .python(latin1: true) = dialect, c >= 0x80 {
                    out.append(contentsOf: Array(String(Character(Unicode.Scalar(c))).utf8))
                } else {
                    out.append(c)
                }
                continue
            }
            guard let e = peek else { throw error("unterminated escape") }
            i += 1
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "'"):
                if e == UInt8(ascii: "'") && !isPython { throw error("invalid escape \\'") }
                out.append(e)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if (0xD800..<0xDC00).contains(scalar) {
                    guard matches("\\u") else { throw error("unpaired surrogate") }
                    i += 2
                    let low = try hex4()
                    guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                }
                guard let u = Unicode.Scalar(scalar) else { throw error("invalid \\u escape") }
                out.append(contentsOf: Array(String(Character(u)).utf8))
            default:
                throw error("invalid escape \\\(describe(e))")
            }
        }
        guard let s = String(validating: out, as: UTF8.self) else {
            throw LiteralSyntaxError(offset: start, message: "string is not valid UTF-8")
        }
        return s
    }

    private mutating func hex4() throws -> UInt32 {
        guard i + 4 <= bytes.count, bytes[i..<(i + 4)].allSatisfy({ Character(Unicode.Scalar($0)).isHexDigit }),
              let v = UInt32(String(decoding: bytes[i..<(i + 4)], as: UTF8.self), radix: 16) else {
            throw error("expected 4 hex digits")
        }
        i += 4
        return v
    }
}
