import Foundation

/// One part of a `multipart/form-data` body (RFC 7578).
struct MultipartPart {
    var name: String?
    var filename: String?
    var contentType: String?
    var body: Data

    var text: String? { String(data: body, encoding: .utf8) }
}

/// A strict reader of `multipart/form-data` bodies already in memory (the body cap bounds them):
/// anything malformed is an `APIError` 400 naming what was wrong, never a crash.
enum Multipart {
    /// The `boundary` parameter of a `multipart/form-data` content type, or nil.
    static func boundary(contentType: String) -> String? {
        let parts = contentType.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        guard parts.first?.lowercased() == "multipart/form-data" else { return nil }
        for p in parts.dropFirst() where p.lowercased().hasPrefix("boundary=") {
            var b = String(p.dropFirst("boundary=".count))
            if b.count >= 2, b.hasPrefix("\""), b.hasSuffix("\"") { b = String(b.dropFirst().dropLast()) }
            return (1...70).contains(b.utf8.count) ? b : nil
        }
        return nil
    }

    static func parse(_ body: Data, boundary: String, maxParts: Int) throws -> [MultipartPart] {
        func bad(_ m: String) -> APIError { .badRequest("multipart body: \(m)", code: "invalid_multipart") }
        let delimiter = Data("--\(boundary)".utf8)
        let crlf = Data("\r\n".utf8), headerEnd = Data("\r\n\r\n".utf8)
        guard var cursor = body.range(of: delimiter)?.upperBound else { throw bad("no boundary '\(boundary)' found") }
        var parts: [MultipartPart] = []
        while true {
            // After a delimiter: "--" ends the body, CRLF starts a part.
            if body[cursor...].starts(with: Data("--".utf8)) { break }
            guard body[cursor...].starts(with: crlf) else { throw bad("boundary not followed by CRLF") }
            cursor += 2
            guard parts.count < maxParts else { throw bad("more than \(maxParts) parts") }
            guard let headersEnd = body.range(of: headerEnd, in: cursor..<body.endIndex) else { throw bad("part \(parts.count) has no end of headers") }
            var part = MultipartPart(body: Data())
            let headerText = String(decoding: body[cursor..<headersEnd.lowerBound], as: UTF8.self)
            for line in headerText.components(separatedBy: "\r\n") where !line.isEmpty {
                guard let colon = line.firstIndex(of: ":") else { throw bad("part \(parts.count): header line without ':'") }
                let key = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
                let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                if key == "content-type" { part.contentType = value.lowercased() }
                if key == "content-disposition" {
                    part.name = parameter("name", in: value)
                    part.filename = parameter("filename", in: value)
                }
            }
            guard let next = body.range(of: crlf + delimiter, in: headersEnd.upperBound..<body.endIndex) else {
                throw bad("part \(parts.count) is not closed by the boundary (truncated body?)")
            }
            part.body = body.subdata(in: headersEnd.upperBound..<next.lowerBound)
            parts.append(part)
            cursor = next.upperBound
        }
        return parts
    }

    /// `name="value"` (or unquoted) from a Content-Disposition value.
    private static func parameter(_ key: String, in value: String) -> String? {
        for item in value.split(separator: ";").dropFirst() {
            let kv = item.trimmingCharacters(in: .whitespaces)
            guard kv.lowercased().hasPrefix(key + "=") else { continue }
            var v = String(kv.dropFirst(key.count + 1))
            if v.count >= 2, v.hasPrefix("\""), v.hasSuffix("\"") { v = String(v.dropFirst().dropLast()) }
            return v
        }
        return nil
    }
}
