import CLIPData
import Foundation

/// One part of a query: a text or an image, with a weight (rclip's syntax). The query vector is
/// the weighted sum of the terms' unit embeddings, normalised again.
public struct QueryTerm: Equatable, Sendable {
    public enum Content: Equatable, Sendable {
        case text(String)
        case image(path: String)
        /// A vector given directly (already in the index's model space).
        case vector([Float])
    }
    public var content: Content
    public var weight: Float

    public init(_ content: Content, weight: Float = 1) {
        self.content = content
        self.weight = weight
    }

    /// rclip's term syntax: `text` (weight 1), `+text` / `-text` (±1), `+2:text`, `-0.5:text`,
    /// `:text` (weight 1, for a text that itself starts with + or -). An image term is a path with
    /// `image:` before it (`+2:image:q.jpg`), or, as rclip takes them, a `file://` URL or a path
    /// that starts with `/`, `./` or `../` and ends in .jpg, .jpeg or .png (`-./dog.jpg`). Weights
    /// must be finite; the text after the weight must not be empty.
    public static func parse(_ argument: String) throws -> QueryTerm {
        var rest = Substring(argument)
        var weight: Float = 1
        if let sign = rest.first, sign == "+" || sign == "-" {
            let negative = sign == "-"
            rest = rest.dropFirst()
            // `+2:text`: a number, then a colon; otherwise the whole rest is the text.
            if let colon = rest.firstIndex(of: ":"), let w = Float(rest[..<colon]), rest[..<colon].allSatisfy({ "0123456789.eE+-".contains($0) }) {
                guard w.isFinite else { throw SearchError.badQuery(argument, "the weight is not a finite number") }
                weight = w
                rest = rest[rest.index(after: colon)...]
            }
            if negative { weight = -weight }
        } else if rest.first == ":" {
            rest = rest.dropFirst()
        }
        if rest.hasPrefix("image:") {
            let path = String(rest.dropFirst("image:".count))
            guard !path.isEmpty else { throw SearchError.badQuery(argument, "no path after 'image:'") }
            return QueryTerm(.image(path: path), weight: weight)
        }
        if rest.hasPrefix("file://") {
            let path = String(rest.dropFirst("file://".count))
            guard !path.isEmpty else { throw SearchError.badQuery(argument, "no path after 'file://'") }
            return QueryTerm(.image(path: path), weight: weight)
        }
        if looksLikeImagePath(rest) { return QueryTerm(.image(path: String(rest)), weight: weight) }
        let text = rest.trimmingCharacters(in: .whitespaces)
        guard !text.isEmpty else { throw SearchError.badQuery(argument, "empty text") }
        return QueryTerm(.text(text), weight: weight)
    }

    /// rclip's rule for a query that is a file (`/…`, `./…`), narrowed to image names so that a
    /// text such as "/r/pics funny cat" stays a text.
    private static func looksLikeImagePath(_ s: Substring) -> Bool {
        guard s.hasPrefix("/") || s.hasPrefix("./") || s.hasPrefix("../") else { return false }
        // Suffixes, not NSString.pathExtension: it trapped on a fuzzed term ("/\u{FFFD}./").
        let lower = s.lowercased()
        return ImageFiles.extensions.contains { lower.hasSuffix("." + $0) }
    }

    /// Every argument parsed; at least one term must have a non-zero weight.
    public static func parse(_ arguments: [String]) throws -> [QueryTerm] {
        let terms = try arguments.map(parse)
        guard terms.contains(where: { $0.weight != 0 }) else { throw SearchError.badQuery(arguments.joined(separator: " "), "no term with a non-zero weight") }
        return terms
    }
}
