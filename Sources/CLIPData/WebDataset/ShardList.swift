import Foundation

/// open_clip's `--train-data` for webdataset: sources joined by `::`, each brace-expanded as
/// Python's `braceexpand` does (`{a,b}`, `{000..099}` keeping the zero padding, `{a..e}`,
/// `{0..10..2}`, nesting), then every shard checked to exist.
public enum ShardList {
    /// At most this many shards from one specification (a typo like `{0..99999999}` is an error, not a hang).
    public static let maximumShards = 10_000_000

    public static func expand(_ spec: String) throws -> [String] {
        let sources = spec.components(separatedBy: "::").filter { !$0.isEmpty }
        guard !sources.isEmpty else { throw DatasetError.malformed(file: spec, message: "no shards: empty --train-data") }
        var out: [String] = []
        for s in sources {
            out += try braceExpand(s, spec: spec)
            guard out.count <= maximumShards else {
                throw DatasetError.malformed(file: spec, message: "expands to more than \(maximumShards) shards")
            }
        }
        return out
    }

    /// The shards of `spec`, each an existing regular file.
    public static func existingShards(_ spec: String) throws -> [String] {
        let shards = try expand(spec)
        for path in shards {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else {
                throw DatasetError.missing(path: path, expected: "a webdataset tar shard (one of the \(shards.count) that '\(spec)' names)")
            }
        }
        return shards
    }

    /// Samples in `shards` by the `sizes.json` beside them (`{"00000.tar": 1000, …}`, as
    /// img2dataset and make-shards write it); nil when a shard is not listed in one.
    public static func sampleCount(_ shards: [String]) throws -> Int? {
        var byFolder: [String: [String: Int]] = [:]
        var total = 0
        for shard in shards {
            let url = URL(fileURLWithPath: shard)
            let folder = url.deletingLastPathComponent().path
            if byFolder[folder] == nil {
                let sizesURL = URL(fileURLWithPath: folder).appendingPathComponent("sizes.json")
                guard let data = try? Data(contentsOf: sizesURL) else { return nil }
                guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                    throw DatasetError.malformed(file: sizesURL.path, message: "not a JSON object of shard name → sample count")
                }
                var sizes: [String: Int] = [:]
                for (k, v) in object {
                    guard let n = (v as? NSNumber)?.intValue ?? (v as? String).flatMap(Int.init), n >= 0 else {
                        throw DatasetError.malformed(file: sizesURL.path, message: "'\(k)': not a sample count")
                    }
                    sizes[k] = n
                }
                byFolder[folder] = sizes
            }
            guard let n = byFolder[folder]![url.lastPathComponent] else { return nil }
            total += n
        }
        return total
    }

    static func braceExpand(_ s: String, spec: String) throws -> [String] {
        let chars = Array(s)
        // The first top-level brace group that expands.
        var depth = 0, open: Int?
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if c == "\\" { i += 2; continue }
            if c == "{" { if depth == 0 { open = i }; depth += 1 }
            if c == "}" {
                guard depth > 0 else { throw DatasetError.malformed(file: spec, message: "unbalanced '}' in '\(s)'") }
                depth -= 1
                if depth == 0, let o = open {
                    let inner = String(chars[(o + 1)..<i])
                    if let alternatives = try alternatives(inner, spec: spec) {
                        let prefix = String(chars[..<o]), suffix = String(chars[(i + 1)...])
                        var out: [String] = []
                        for a in alternatives {
                            for tail in try braceExpand(a + suffix, spec: spec) {
                                out.append(prefix + tail)
                                guard out.count <= maximumShards else {
                                    throw DatasetError.malformed(file: spec, message: "expands to more than \(maximumShards) shards")
                                }
                            }
                        }
                        return out
                    }
                    open = nil
                }
            }
            i += 1
        }
        guard depth == 0 else { throw DatasetError.malformed(file: spec, message: "unbalanced '{' in '\(s)'") }
        return [s.replacingOccurrences(of: "\\{", with: "{").replacingOccurrences(of: "\\}", with: "}")]
    }

    /// A group's alternatives: a range `a..b[..step]`, or top-level comma-separated items (each
    /// expanded later with the rest); nil when the group is literal (`{x}`).
    static func alternatives(_ inner: String, spec: String) throws -> [String]? {
        let parts = inner.components(separatedBy: "..")
        if (parts.count == 2 || parts.count == 3), !inner.contains(",") {
            let step = parts.count == 3 ? Int(parts[2]) : 1
            if let a = Int(parts[0]), let b = Int(parts[1]), let step {
                guard step != 0 else { throw DatasetError.malformed(file: spec, message: "range step 0 in '{\(inner)}'") }
                let count = abs(b - a) / abs(step) + 1
                guard count <= maximumShards else { throw DatasetError.malformed(file: spec, message: "'{\(inner)}' expands to more than \(maximumShards) shards") }
                let padded = [parts[0], parts[1]].contains { $0.count > 1 && ($0.hasPrefix("0") || $0.hasPrefix("-0")) }
                let width = padded ? max(parts[0].count, parts[1].count) : 0
                let stride = a <= b ? Array(Swift.stride(from: a, through: b, by: abs(step))) : Array(Swift.stride(from: a, through: b, by: -abs(step)))
                return stride.map { v in
                    let digits = String(abs(v))
                    let sign = v < 0 ? "-" : ""
                    return sign + String(repeating: "0", count: max(0, width - digits.count - sign.count)) + digits
                }
            }
            if parts[0].count == 1, parts[1].count == 1, let a = parts[0].unicodeScalars.first, let b = parts[1].unicodeScalars.first, step != nil {
                let s = abs(step!)
                let values = a.value <= b.value ? Array(Swift.stride(from: a.value, through: b.value, by: Int(s)))
                                                 : Array(Swift.stride(from: a.value, through: b.value, by: -Int(s)))
                return values.compactMap { Unicode.Scalar($0).map { String(Character($0)) } }
            }
        }
        // Top-level commas.
        var items: [String] = [], current = "", depth = 0, escaped = false
        for c in inner {
            if escaped { current.append(c); escaped = false; continue }
            if c == "\\" { current.append(c); escaped = true; continue }
            if c == "{" { depth += 1 } else if c == "}" { depth -= 1 }
            if c == ",", depth == 0 { items.append(current); current = ""; continue }
            current.append(c)
        }
        items.append(current)
        return items.count > 1 ? items : nil
    }
}
