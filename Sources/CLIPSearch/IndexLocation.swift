import Foundation

/// Where an index lives, from `--db`: a SQLite file (a plain path, or `sqlite:PATH`), or a
/// PostgreSQL database (`postgresql://user[:password]@host[:port]/database[?options]`, also
/// `postgres://`). Parsing checks the whole string so a typo fails before anything is opened.
public enum IndexLocation: Equatable, Sendable, CustomStringConvertible {
    case sqlite(path: String)
    case postgres(PostgresURL)

    public init(parsing text: String) throws {
        guard !text.isEmpty else { throw SearchError.badLocation(text, "empty") }
        guard !text.utf8.contains(0) else { throw SearchError.badLocation(text, "contains a NUL byte") }
        let lower = text.lowercased()
        if lower.hasPrefix("postgresql://") || lower.hasPrefix("postgres://") {
            self = .postgres(try PostgresURL(parsing: text))
        } else if lower.hasPrefix("sqlite:") {
            var path = String(text.dropFirst("sqlite:".count))
            if path.hasPrefix("//") { path = String(path.dropFirst(2)) }
            guard !path.isEmpty else { throw SearchError.badLocation(text, "no file after sqlite:") }
            self = .sqlite(path: path)
        } else if let colon = text.range(of: "://") {
            throw SearchError.badLocation(text, "unknown scheme '\(text[..<colon.lowerBound])' (use a file path or postgresql://)")
        } else {
            self = .sqlite(path: text)
        }
    }

    /// The location without a password.
    public var description: String {
        switch self {
        case .sqlite(let path): return path
        case .postgres(let url): return url.description
        }
    }
}

/// The parts of a `postgresql://` URL (libpq's URI form, the common subset).
public struct PostgresURL: Equatable, Sendable, CustomStringConvertible {
    public var user: String
    public var password: String?
    public var host: String
    public var port: Int
    public var database: String
    /// Query options, e.g. `sslmode=disable`, `m=16`, `ef_construction=300`.
    public var options: [String: String]

    public init(parsing text: String) throws {
        func bad(_ why: String) -> SearchError { .badLocation(Self.redacted(text), why) }
        guard let schemeEnd = text.range(of: "://") else { throw bad("no scheme") }
        var rest = Substring(text[schemeEnd.upperBound...])
        var query = Substring("")
        if let q = rest.firstIndex(of: "?") { query = rest[rest.index(after: q)...]; rest = rest[..<q] }
        guard let slash = rest.firstIndex(of: "/") else { throw bad("no database name (postgresql://user@host:port/database)") }
        let authority = rest[..<slash]
        let db = try Self.decode(rest[rest.index(after: slash)...], bad)
        guard !db.isEmpty else { throw bad("no database name (postgresql://user@host:port/database)") }
        guard !db.contains("/") else { throw bad("database name '\(db)' contains '/'") }
        var hostPort = authority
        var user = "postgres", password: String? = nil
        if let at = authority.lastIndex(of: "@") {
            let credentials = authority[..<at]
            hostPort = authority[authority.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                user = try Self.decode(credentials[..<colon], bad)
                password = try Self.decode(credentials[credentials.index(after: colon)...], bad)
            } else {
                user = try Self.decode(credentials, bad)
            }
            guard !user.isEmpty else { throw bad("empty user name") }
        }
        var host = hostPort, port = 5432
        if hostPort.hasPrefix("[") {
            guard let close = hostPort.firstIndex(of: "]") else { throw bad("unclosed '[' in the host") }
            host = hostPort[hostPort.index(after: hostPort.startIndex)..<close]
            let after = hostPort[hostPort.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw bad("unexpected '\(after)' after the host") }
                port = try Self.port(after.dropFirst(), bad)
            }
        } else if let colon = hostPort.lastIndex(of: ":") {
            host = hostPort[..<colon]
            port = try Self.port(hostPort[hostPort.index(after: colon)...], bad)
        }
        guard !host.isEmpty else { throw bad("no host") }
        var options: [String: String] = [:]
        for pair in query.split(separator: "&") where !pair.isEmpty {
            guard let eq = pair.firstIndex(of: "=") else { throw bad("option '\(pair)' has no '=value'") }
            let key = try Self.decode(pair[..<eq], bad)
            guard !key.isEmpty else { throw bad("option with an empty name") }
            options[key] = try Self.decode(pair[pair.index(after: eq)...], bad)
        }
        self.user = user; self.password = password; self.host = String(host); self.port = port
        self.database = db; self.options = options
    }

    public var description: String {
        let opts = options.keys.sorted().map { "\($0)=\(options[$0] ?? "")" }.joined(separator: "&")
        return "postgresql://\(user)\(password == nil ? "" : ":***")@\(host.contains(":") ? "[\(host)]" : host):\(port)/\(database)"
            + (opts.isEmpty ? "" : "?" + opts)
    }

    private static func port(_ s: Substring, _ bad: (String) -> SearchError) throws -> Int {
        guard let p = Int(s), (1...65535).contains(p), s.allSatisfy(\.isASCII) else { throw bad("port '\(s)' is not a number in 1...65535") }
        return p
    }

    private static func decode(_ s: Substring, _ bad: (String) -> SearchError) throws -> String {
        guard let d = String(s).removingPercentEncoding else { throw bad("bad %-escape in '\(s)'") }
        return d
    }

    /// The URL with any password replaced, for error messages.
    static func redacted(_ text: String) -> String {
        guard let schemeEnd = text.range(of: "://"), let at = text[schemeEnd.upperBound...].firstIndex(of: "@") else { return text }
        let credentials = text[schemeEnd.upperBound..<at]
        guard let colon = credentials.firstIndex(of: ":") else { return text }
        return String(text[..<colon]) + ":***" + String(text[at...])
    }
}
