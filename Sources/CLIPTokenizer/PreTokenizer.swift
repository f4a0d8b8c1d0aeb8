// open_clip's pre-tokenisation regex, by hand:
//   <start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
// compiled with re.IGNORECASE (the `regex` module). At each position the alternatives are
// tried in order; positions where none matches (whitespace) are skipped.

enum PreTokenizer {
    static let specialTokens: [Scalars] = [Array("<start_of_text>".unicodeScalars),
                                           Array("<end_of_text>".unicodeScalars)]

    /// Splits cleaned text into the regex's matches (as ranges of `s`).
    static func split(_ s: Scalars) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var i = 0
        let n = s.count
        while i < n {
            let c = s[i]
            if kind(c) == .space {
                i += 1
                continue
            }
            if c == "<", let len = specialTokenLength(s, i) {
                out.append(i..<(i + len))
                i += len
                continue
            }
            if c == "'", let len = contractionLength(s, i) {
                out.append(i..<(i + len))
                i += len
                continue
            }
            var j = i + 1
            switch kind(c) {
            case .letter:
                while j < n && kind(s[j]) == .letter { j += 1 }
            case .number:
                break
            case .other:
                while j < n && kind(s[j]) == .other { j += 1 }
            case .space:
                break
            }
            out.append(i..<j)
            i = j
        }
        return out
    }

    enum Kind { case letter, number, other, space }

    @inline(__always)
    static func kind(_ c: Unicode.Scalar) -> Kind {
        let v = c.value
        if v < 0x80 {  // ASCII fast path
            if (v | 0x20) >= 0x61 && (v | 0x20) <= 0x7A { return .letter }
            if v >= 0x30 && v <= 0x39 { return .number }
            if v == 0x20 || (v >= 0x09 && v <= 0x0D) { return .space }
            return .other
        }
        // U+0345 COMBINING GREEK YPOGEGRAMMENI (Mn) case-folds to ι: under IGNORECASE the regex
        // module matches neither [\p{L}] nor [^\s\p{L}\p{N}] there, so it is skipped like a space.
        // (Checked over all code points: the only one where IGNORECASE changes a class.)
        if v == 0x345 || c.properties.isWhitespace { return .space }
        switch c.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return .letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return .number
        default:
            return .other
        }
    }

    /// Case-insensitive comparison with an ASCII lower-case pattern character, as the regex
    /// module's simple case folding sees it (ſ U+017F folds to s, K U+212A to k).
    @inline(__always)
    static func matchesFolded(_ c: Unicode.Scalar, _ p: Unicode.Scalar) -> Bool {
        if c == p { return true }
        if isASCIILetter(c) { return c.value | 0x20 == p.value }
        return (p == "s" && c.value == 0x17F) || (p == "k" && c.value == 0x212A)
    }

    static func specialTokenLength(_ s: Scalars, _ i: Int) -> Int? {
        for token in specialTokens where i + token.count <= s.count {
            var ok = true
            for (k, p) in token.enumerated() where !matchesFolded(s[i + k], p) {
                ok = false
                break
            }
            if ok { return token.count }
        }
        return nil
    }

    /// 's 't 're 've 'm 'll 'd (first alternative that matches).
    static func contractionLength(_ s: Scalars, _ i: Int) -> Int? {
        guard i + 1 < s.count else { return nil }
        let a = s[i + 1]
        for single in ["s", "t"] as [Unicode.Scalar] where matchesFolded(a, single) { return 2 }
        if i + 2 < s.count {
            let b = s[i + 2]
            if matchesFolded(a, "r") && matchesFolded(b, "e") { return 3 }
            if matchesFolded(a, "v") && matchesFolded(b, "e") { return 3 }
        }
        if matchesFolded(a, "m") { return 2 }
        if i + 2 < s.count && matchesFolded(a, "l") && matchesFolded(s[i + 2], "l") { return 3 }
        if matchesFolded(a, "d") { return 2 }
        return nil
    }
}
