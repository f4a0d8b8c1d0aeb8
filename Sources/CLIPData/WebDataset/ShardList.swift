import Foundation

/// open_clip's `--train-data` for webdataset: sources joined by `::`, each brace-expanded as
/// Python's `braceexpand` does (`{a,b}`, `{000..099}` keeping the zero padding, `{a..e}`,
/// `{0..10..2}`, nesting), then every shard checked to exist.
public enum ShardList {
    /// At most this many shards from one specification (a typo like `{0..99999999}` is an error,
    /// not a hang; the largest public webdatasets, DataComp's xlarge pool among them, have a few
    /// hundred thousand). `maximumExpansionBytes` bounds the memory and time besides.
    public static let maximumShards = 1_000_000

    public static func expand(_ spec: String) throws -> [String] {
        let sources = spec.components(separatedBy: "::").filter { !$0.isEmpty }
        guard !sources.isEmpty else { throw DatasetError.malformed(file: spec, message: "no shards: empty --train-data") }
        var out: [String] = []
        var budget = Budget(spec: spec)   // one for all the sources
        for s in sources {
            out += try braceExpand(s, budget: &budget, depth: 0)
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
            let (sum, overflow) = total.addingReportingOverflow(n)
            guard !overflow else {
                throw DatasetError.malformed(file: URL(fileURLWithPath: folder).appendingPathComponent("sizes.json").path,
                                             message: "the sample counts of the shards add up to more than \(Int.max)")
            }
            total = sum
        }
        return total
    }

    /// The work one specification may cost: every name made on the way (the nested groups'
    /// partial expansions included) and every string scanned counts its UTF-8 bytes plus 16.
    /// `{000000..999999}.tar` under a 60-byte prefix costs about 105 MB, so a million shards may
    /// have names of about 200 bytes.
    public static let maximumExpansionBytes = 1 << 28
    /// At most this many brace groups expanded one inside the rest of another (each a level of recursion).
    public static let maximumGroupDepth = 256

    /// At most this many strings scanned for brace groups. Plain alternatives (ranges, words) cost
    /// one per group; only alternatives holding braces or backslashes are rescanned with the rest
    /// of the name, once each (`{{a},{b}}` repeated 30 times would be 2³⁰ scans).
    public static let maximumExpansionSteps = 20_000

    /// What an expansion has cost so far; throws once past `maximumExpansionBytes` or `maximumExpansionSteps`.
    struct Budget {
        let spec: String
        var bytes = 0, steps = 0
        mutating func step() throws {
            steps += 1
            guard steps <= maximumExpansionSteps else {
                throw DatasetError.malformed(file: spec, message: "brace groups nested in alternatives take more than "
                                             + "\(maximumExpansionSteps) steps to expand")
            }
        }
        mutating func charge(_ n: Int) throws {
            bytes += n + 16
            guard bytes <= maximumExpansionBytes else {
                throw DatasetError.malformed(file: spec, message: "expanding it takes more than \(maximumExpansionBytes >> 20) MB of shard names "
                                             + "(a brace range, a product of groups or a prefix too large)")
            }
        }
    }

    static func braceExpand(_ s: String, budget: inout Budget, depth: Int) throws -> [String] {
        let spec = budget.spec
        try budget.step()
        try budget.charge(s.utf8.count)
        let chars = Array(s)
        // The first top-level brace group that expands.
        var nesting = 0, open: Int?
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if c == "\\" { i += 2; continue }
            if c == "{" { if nesting == 0 { open = i }; nesting += 1 }
            if c == "}" {
                guard nesting > 0 else { throw DatasetError.malformed(file: spec, message: "unbalanced '}' in '\(s)'") }
                nesting -= 1
                if nesting == 0, let o = open {
                    let inner = String(chars[(o + 1)..<i])
                    if let alternatives = try alternatives(inner, budget: &budget) {
                        guard depth < maximumGroupDepth else {
                            throw DatasetError.malformed(file: spec, message: "more than \(maximumGroupDepth) brace groups to expand")
                        }
                        let prefix = String(chars[..<o]), suffix = String(chars[(i + 1)...])
                        var out: [String] = []
                        if !alternatives.contains(where: { $0.contains { "{}\\".contains($0) } }) {
                            // Plain alternatives (a range, words): a + suffix expands as a + each
                            // expansion of suffix, so the suffix is expanded once and the number of
                            // names is known before one is made.
                            let tails = try braceExpand(suffix, budget: &budget, depth: depth + 1)
                            let (count, overflow) = alternatives.count.multipliedReportingOverflow(by: tails.count)
                            guard !overflow, count <= maximumShards else {
                                throw DatasetError.malformed(file: spec, message: "expands to more than \(maximumShards) shards")
                            }
                            out.reserveCapacity(count)
                            for a in alternatives {
                                for tail in tails {
                                    // One allocation per name (a million of them is a real dataset).
                                    var name = String()
                                    name.reserveCapacity(prefix.utf8.count + a.utf8.count + tail.utf8.count)
                                    name += prefix
                                    name += a
                                    name += tail
                                    try budget.charge(name.utf8.count)
                                    out.append(name)
                                }
                            }
                            return out
                        }
                        for a in alternatives {
                            for tail in try braceExpand(a + suffix, budget: &budget, depth: depth + 1) {
                                let name = prefix + tail
                                try budget.charge(name.utf8.count)
                                out.append(name)
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
        guard nesting == 0 else { throw DatasetError.malformed(file: spec, message: "unbalanced '{' in '\(s)'") }
        return [s.replacingOccurrences(of: "\\{", with: "{").replacingOccurrences(of: "\\}", with: "}")]
    }

    /// A group's alternatives: a range `a..b[..step]`, or top-level comma-separated items (each
    /// expanded later with the rest); nil when the group is literal (`{x}`). Ranges are counted
    /// before they are made, without overflow (`{-9223372036854775808..9223372036854775807}` is
    /// too many shards, not a trap).
    static func alternatives(_ inner: String, budget: inout Budget) throws -> [String]? {
        let spec = budget.spec
        let parts = inner.components(separatedBy: "..")
        if (parts.count == 2 || parts.count == 3), !inner.contains(",") {
            let step = parts.count == 3 ? Int(parts[2]) : 1
            let tooMany = { DatasetError.malformed(file: spec, message: "'{\(inner)}' expands to more than \(maximumShards) shards") }
            if let a = Int(parts[0]), let b = Int(parts[1]), let step {
                guard step != 0 else { throw DatasetError.malformed(file: spec, message: "range step 0 in '{\(inner)}'") }
                // |b - a| as an unsigned number: exact even where b - a overflows Int.
                let span = a <= b ? UInt(bitPattern: b &- a) : UInt(bitPattern: a &- b)
                guard span / step.magnitude < UInt(maximumShards) else { throw tooMany() }
                let count = Int(span / step.magnitude) + 1
                let padded = [parts[0], parts[1]].contains { $0.count > 1 && ($0.hasPrefix("0") || $0.hasPrefix("-0")) }
                let width = padded ? max(parts[0].count, parts[1].count) : 0
                var out: [String] = []
                out.reserveCapacity(count)
                for k in 0..<count {
                    // a ± k·|step|, which lies between a and b, so the wrapping arithmetic is exact.
                    let offset = UInt(k) &* step.magnitude
                    let v = Int(bitPattern: a <= b ? UInt(bitPattern: a) &+ offset : UInt(bitPattern: a) &- offset)
                    let digits = String(v.magnitude)
                    let sign = v < 0 ? "-" : ""
                    let name = sign + String(repeating: "0", count: max(0, width - digits.count - sign.count)) + digits
                    try budget.charge(name.utf8.count)
                    out.append(name)
                }
                return out
            }
            if parts[0].count == 1, parts[1].count == 1, let a = parts[0].unicodeScalars.first, let b = parts[1].unicodeScalars.first, let step {
                guard step != 0 else { throw DatasetError.malformed(file: spec, message: "range step 0 in '{\(inner)}'") }
                let span = UInt(max(a.value, b.value) - min(a.value, b.value))
                guard span / step.magnitude < UInt(maximumShards) else { throw tooMany() }
                var out: [String] = []
                for k in 0...Int(span / step.magnitude) {
                    let offset = UInt32(UInt(k) * step.magnitude)   // at most span
                    guard let scalar = Unicode.Scalar(a.value <= b.value ? a.value + offset : a.value - offset) else { continue }
                    let name = String(Character(scalar))
                    try budget.charge(name.utf8.count)
                    out.append(name)
                }
                return out
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
        for item in items { try budget.charge(item.utf8.count) }
        return items.count > 1 ? items : nil
    }
}
