// open_clip's `_clean_lower`: whitespace_clean(basic_clean(text)).lower(), where
// basic_clean(text) = html.unescape(html.unescape(ftfy.fix_text(text))).strip().
// Everything works on Unicode scalars (Python strings are code-point sequences; Swift's String
// compares by canonical equivalence, which is not what we want here).
// docs/tokenizer.md lists which parts of ftfy.fix_text are replicated and which are not.
import Foundation

typealias Scalars = [Unicode.Scalar]

enum TextCleaner {
    /// open_clip `clean='lower'`.
    static func cleanLower(_ text: String) -> Scalars {
        var s = Array(text.unicodeScalars)
        s = FTFY.fixText(s)
        s = HTML.unescape(HTML.unescape(s))
        return pythonLower(whitespaceClean(s))
    }

    /// Python's `str.isspace()` (bidi class WS/B/S or category Zs), Unicode 14 as in CPython 3.11.
    static func isPythonSpace(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A,
             0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }

    /// `" ".join(text.split())` (strip is implied).
    static func whitespaceClean(_ s: Scalars) -> Scalars {
        var out = Scalars()
        out.reserveCapacity(s.count)
        var pendingSpace = false
        for c in s {
            if isPythonSpace(c) {
                pendingSpace = !out.isEmpty
            } else {
                if pendingSpace { out.append(" ") }
                pendingSpace = false
                out.append(c)
            }
        }
        return out
    }

    /// Python's `str.lower()`: full lowercase mappings plus the Final_Sigma rule for U+03A3.
    static func pythonLower(_ s: Scalars) -> Scalars {
        var out = Scalars()
        out.reserveCapacity(s.count)
        for (i, c) in s.enumerated() {
            if c.value < 0x80 {
                out.append(c.value >= 0x41 && c.value <= 0x5A ? Unicode.Scalar(c.value + 32)! : c)
            } else if c.value == 0x3A3 {
                out.append(isFinalSigma(s, i) ? "\u{3C2}" : "\u{3C3}")
            } else {
                out.append(contentsOf: c.properties.lowercaseMapping.unicodeScalars)
            }
        }
        return out
    }

    /// \p{cased}\p{case-ignorable}* U+03A3 !(\p{case-ignorable}* \p{cased}), as CPython checks it.
    private static func isFinalSigma(_ s: Scalars, _ i: Int) -> Bool {
        var j = i - 1
        while j >= 0 && s[j].properties.isCaseIgnorable { j -= 1 }
        guard j >= 0 && s[j].properties.isCased else { return false }
        j = i + 1
        while j < s.count && s[j].properties.isCaseIgnorable { j += 1 }
        return j == s.count || !s[j].properties.isCased
    }
}

/// The default `ftfy.fix_text` steps (ftfy 6.3) that can be reproduced exactly without ftfy's
/// statistical mojibake detector.
enum FTFY {
    static func fixText(_ text: Scalars) -> Scalars {
        // fix_text works line by line ("\n" stays with its line). With unescape_html="auto", once a
        // line contains "<" HTML unescaping is off for it and every later line (ftfy replaces its
        // config and keeps the replaced one).
        var out = Scalars()
        out.reserveCapacity(text.count)
        var unescape = true
        var start = 0
        while start < text.count {
            var end = start
            while end < text.count && text[end] != "\n" { end += 1 }
            end = min(end + 1, text.count)
            let segment = Array(text[start..<end])
            if unescape && segment.contains("<") { unescape = false }
            out.append(contentsOf: fixSegment(segment, unescapeHTML: unescape))
            start = end
        }
        return out
    }

    /// `fix_and_explain`: apply the fixers until the text stops changing.
    static func fixSegment(_ segment: Scalars, unescapeHTML: Bool) -> Scalars {
        var text = segment
        while true {
            let original = text
            if unescapeHTML { text = unescapeEntities(text) }
            // fix_encoding (mojibake repair) is not replicated; see docs/tokenizer.md.
            text = text.flatMap(fixChar)  // c1 controls, ligatures, width, quotes, control chars
            text = fixLineBreaks(text)
            text = removeTerminalEscapes(text)
            text = text.filter { !isRemovedControl($0) }
            text = nfc(text)
            if text == original { return text }
        }
    }

    /// Per-character fixers, in ftfy's order: fix_c1_controls, fix_latin_ligatures,
    /// fix_character_width, uncurl_quotes (remove_control_chars runs later, after escapes).
    static func fixChar(_ c: Unicode.Scalar) -> Scalars {
        var c = c
        if (0x80...0x9F).contains(c.value) { c = windows1252C1(c) }
        if let lig = ligatures[c.value] { return Array(lig.unicodeScalars).map(uncurl) }
        if let w = width(c) { return w.map(uncurl) }
        return [uncurl(c)]
    }

    /// sloppy-windows-1252 reading of a C1 control (the five undefined bytes stay as they are).
    static func windows1252C1(_ c: Unicode.Scalar) -> Unicode.Scalar {
        let table: [UInt32] = [0x20AC, 0x81, 0x201A, 0x192, 0x201E, 0x2026, 0x2020, 0x2021,
                               0x2C6, 0x2030, 0x160, 0x2039, 0x152, 0x8D, 0x17D, 0x8F,
                               0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
                               0x2DC, 0x2122, 0x161, 0x203A, 0x153, 0x9D, 0x17E, 0x178]
        return Unicode.Scalar(table[Int(c.value - 0x80)])!
    }

    static let ligatures: [UInt32: String] = [
        0x132: "IJ", 0x133: "ij", 0x149: "\u{2BC}n", 0x1F1: "DZ", 0x1F2: "Dz", 0x1F3: "dz",
        0x1C4: "D\u{17D}", 0x1C5: "D\u{17E}", 0x1C6: "d\u{17E}", 0x1C7: "LJ", 0x1C8: "Lj", 0x1C9: "lj",
        0x1CA: "NJ", 0x1CB: "Nj", 0x1CC: "nj", 0xFB00: "ff", 0xFB01: "fi", 0xFB02: "fl",
        0xFB03: "ffi", 0xFB04: "ffl", 0xFB05: "\u{17F}t", 0xFB06: "st",
    ]

    /// fix_character_width: U+3000 -> space, U+FF01...U+FFEF -> their NFKC forms.
    static func width(_ c: Unicode.Scalar) -> Scalars? {
        if c.value == 0x3000 { return [" "] }
        guard (0xFF01...0xFFEF).contains(c.value) else { return nil }
        let alt = Array(String(c).precomposedStringWithCompatibilityMapping.unicodeScalars)
        return alt == [c] ? nil : alt
    }

    /// uncurl_quotes: U+02BC, U+2018...U+201B -> ', U+201C...U+201F -> ".
    static func uncurl(_ c: Unicode.Scalar) -> Unicode.Scalar {
        switch c.value {
        case 0x2BC, 0x2018...0x201B: return "'"
        case 0x201C...0x201F: return "\""
        default: return c
        }
    }

    /// fix_line_breaks: CRLF, CR, U+2028, U+2029, U+0085 -> LF.
    static func fixLineBreaks(_ s: Scalars) -> Scalars {
        var out = Scalars()
        out.reserveCapacity(s.count)
        var i = 0
        while i < s.count {
            switch s[i].value {
            case 0x0D:
                out.append("\n")
                if i + 1 < s.count && s[i + 1] == "\n" { i += 1 }
            case 0x2028, 0x2029, 0x85: out.append("\n")
            default: out.append(s[i])
            }
            i += 1
        }
        return out
    }

    /// remove_terminal_escapes: "\x1b[" (Unicode decimal digit | ';')* [A-Za-z].
    static func removeTerminalEscapes(_ s: Scalars) -> Scalars {
        guard s.contains("\u{1B}") else { return s }
        var out = Scalars()
        var i = 0
        while i < s.count {
            if s[i] == "\u{1B}" && i + 1 < s.count && s[i + 1] == "[" {
                var j = i + 2
                while j < s.count && (s[j] == ";" || s[j].properties.generalCategory == .decimalNumber) { j += 1 }
                if j < s.count && isASCIILetter(s[j]) {
                    i = j + 1
                    continue
                }
            }
            out.append(s[i])
            i += 1
        }
        return out
    }

    /// remove_control_chars.
    static func isRemovedControl(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x00...0x08, 0x0B, 0x0E...0x1F, 0x7F, 0x206A...0x206F, 0xFEFF, 0xFFF9...0xFFFC: return true
        default: return false
        }
    }

    static func nfc(_ s: Scalars) -> Scalars {
        // Fast path: ASCII is always NFC.
        if s.allSatisfy({ $0.isASCII }) { return s }
        return Array(makeString(s).precomposedStringWithCanonicalMapping.unicodeScalars)
    }

    /// ftfy's unescape_html: "&#?[0-9A-Za-z]{1,24};" replaced when it names an HTML5 entity (with
    /// its semicolon), an upper-cased common one, or a complete numeric reference.
    static func unescapeEntities(_ s: Scalars) -> Scalars {
        replacingAmpersandMatches(s) { s, i in
            var j = i + 1
            if j < s.count && s[j] == "#" { j += 1 }
            let nameStart = j
            while j < s.count && j - nameStart < 24 && isASCIIAlnum(s[j]) { j += 1 }
            guard j > nameStart, j < s.count, s[j] == ";" else { return nil }
            let match = Array(s[i...j])
            if let value = HTML.ftfyEntities[makeString(match.dropFirst())] { return (value, j + 1) }
            if match[1] == "#" {
                let unescaped = HTML.unescape(match)
                return (unescaped.contains(";") ? match : unescaped, j + 1)
            }
            return (match, j + 1)
        }
    }
}

/// Copies `s`, and at each "&" asks `match` for a replacement and the index after the matched
/// text (nil: no match there, the "&" is kept) — the shape of Python's `re.sub` for patterns that
/// start with "&".
func replacingAmpersandMatches(_ s: Scalars, _ match: (Scalars, Int) -> (Scalars, Int)?) -> Scalars {
    guard s.contains("&") else { return s }
    var out = Scalars()
    out.reserveCapacity(s.count)
    var i = 0
    while i < s.count {
        if s[i] == "&", let (replacement, next) = match(s, i) {
            out.append(contentsOf: replacement)
            i = next
        } else {
            out.append(s[i])
            i += 1
        }
    }
    return out
}

func makeString<S: Sequence>(_ scalars: S) -> String where S.Element == Unicode.Scalar {
    var str = String()
    str.unicodeScalars.append(contentsOf: scalars)
    return str
}

func isASCIILetter(_ c: Unicode.Scalar) -> Bool {
    (c.value | 0x20) >= 0x61 && (c.value | 0x20) <= 0x7A
}

func isASCIIAlnum(_ c: Unicode.Scalar) -> Bool {
    isASCIILetter(c) || (c.value >= 0x30 && c.value <= 0x39)
}

/// Python's `html.unescape` (CPython 3.11, Lib/html/__init__.py).
enum HTML {
    static func parse(_ table: String) -> [String: Scalars] {
        var d = [String: Scalars]()
        for line in table.split(separator: "\n") {
            let parts = line.split(separator: " ")
            d[String(parts[0])] = parts[1].split(separator: ",").map { Unicode.Scalar(UInt32($0, radix: 16)!)! }
        }
        return d
    }

    /// html.entities.html5 (keys without '&').
    static let html5: [String: Scalars] = parse(HTMLEntityData.html5)
    /// ftfy.chardata.HTML_ENTITIES (keys without '&', all end in ';').
    static let ftfyEntities: [String: Scalars] = {
        var d = html5.filter { $0.key.hasSuffix(";") }
        d.merge(parse(HTMLEntityData.ftfyUpper)) { _, new in new }
        return d
    }()
    static let longestName = html5.keys.map { $0.unicodeScalars.count }.max() ?? 0

    static let invalidCharrefs: [UInt32: UInt32] = [
        0x00: 0xFFFD, 0x0D: 0x0D, 0x80: 0x20AC, 0x81: 0x81, 0x82: 0x201A, 0x83: 0x192, 0x84: 0x201E,
        0x85: 0x2026, 0x86: 0x2020, 0x87: 0x2021, 0x88: 0x2C6, 0x89: 0x2030, 0x8A: 0x160, 0x8B: 0x2039,
        0x8C: 0x152, 0x8D: 0x8D, 0x8E: 0x17D, 0x8F: 0x8F, 0x90: 0x90, 0x91: 0x2018, 0x92: 0x2019,
        0x93: 0x201C, 0x94: 0x201D, 0x95: 0x2022, 0x96: 0x2013, 0x97: 0x2014, 0x98: 0x2DC,
        0x99: 0x2122, 0x9A: 0x161, 0x9B: 0x203A, 0x9C: 0x153, 0x9D: 0x9D, 0x9E: 0x17E, 0x9F: 0x178,
    ]

    static func isInvalidCodepoint(_ v: UInt32) -> Bool {
        switch v {
        case 0x1...0x8, 0xB, 0xE...0x1F, 0x7F...0x9F, 0xFDD0...0xFDEF: return true
        default: return v & 0xFFFE == 0xFFFE
        }
    }

    static func numericReference(_ v: UInt32) -> Scalars {
        if let r = invalidCharrefs[v] { return [Unicode.Scalar(r)!] }
        if (0xD800...0xDFFF).contains(v) || v > 0x10FFFF { return ["\u{FFFD}"] }
        if isInvalidCodepoint(v) { return [] }
        return [Unicode.Scalar(v)!]
    }

    static func unescape(_ s: Scalars) -> Scalars {
        replacingAmpersandMatches(s) { s, i in
            guard i + 1 < s.count else { return nil }
            if s[i + 1] == "#" {
                // '#[0-9]+;?' then '#[xX][0-9a-fA-F]+;?'
                var j = i + 2
                var radix: UInt32 = 10
                if j < s.count && (s[j] == "x" || s[j] == "X") && j + 1 < s.count && hexValue(s[j + 1]) != nil {
                    radix = 16
                    j += 1
                }
                let digitsStart = j
                var value: UInt32 = 0
                while j < s.count, let d = hexValue(s[j]), d < radix {
                    value = min(value * radix + d, 0x110000)  // saturate: anything larger is > 0x10FFFF
                    j += 1
                }
                guard j > digitsStart else { return nil }
                if j < s.count && s[j] == ";" { j += 1 }
                return (numericReference(value), j)
            }
            // '[^\t\n\f <&#;]{1,32};?'
            var j = i + 1
            while j < s.count && j - (i + 1) < 32 && !isNameStop(s[j]) { j += 1 }
            guard j > i + 1 else { return nil }
            if j < s.count && s[j] == ";" { j += 1 }
            return (replaceNamed(Array(s[(i + 1)..<j])), j)
        }
    }

    private static func replaceNamed(_ name: Scalars) -> Scalars {
        // Entity names are ASCII, so a non-ASCII name can't match; String == is then exact.
        if let v = html5[makeString(name)] { return v }
        var x = min(name.count - 1, longestName)
        while x > 1 {
            if let v = html5[makeString(name[..<x])] { return v + name[x...] }
            x -= 1
        }
        return ["&"] + name
    }

    private static func isNameStop(_ c: Unicode.Scalar) -> Bool {
        switch c {
        case "\t", "\n", "\u{0C}", " ", "<", "&", "#", ";": return true
        default: return false
        }
    }

    private static func hexValue(_ c: Unicode.Scalar) -> UInt32? {
        switch c.value {
        case 0x30...0x39: return c.value - 0x30
        case 0x41...0x46: return c.value - 0x41 + 10
        case 0x61...0x66: return c.value - 0x61 + 10
        default: return nil
        }
    }
}
