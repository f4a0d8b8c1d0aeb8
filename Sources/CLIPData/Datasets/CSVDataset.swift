import CLIPEngine
import Foundation

/// Image–caption pairs in open_clip's CSV format (`--csv-img-key`, `--csv-caption-key`,
/// `--csv-separator`): a header row naming the columns, one pair per row. Fields may be quoted
/// with `"` (a quoted field may hold the separator or line breaks; `""` is a quote), blank lines
/// are skipped, as pandas' `read_csv` does. Relative image paths are relative to the CSV's folder.
public struct CSVPairs: Sendable {
    public let file: URL
    public let images: [URL]
    public let captions: [String]
    /// The 1-based line each pair's row starts on, and the image column's name (for errors).
    public let lines: [Int]
    public let imageKey: String
    public var count: Int { images.count }

    public init(file: URL, imageKey: String = "filepath", captionKey: String = "title", separator: String = "\t") throws {
        let path = file.path
        let data: Data
        do { data = try InputFile.read(path, maximumBytes: 1 << 30) } catch let e as InputFileError {
            throw DatasetError.missing(path: path, expected: "a CSV file with a header row naming the '\(imageKey)' and '\(captionKey)' columns (\(e.reason))")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw DatasetError.malformed(file: path, message: "not UTF-8 text") }
        guard let sep = separator.unicodeScalars.first, separator.unicodeScalars.count == 1 else {
            throw DatasetError.malformed(file: path, message: "the separator must be one character, got '\(separator)'")
        }
        let rows = try Self.parse(text, separator: sep, file: path)
        guard let header = rows.first else { throw DatasetError.csv(file: path, line: 1, column: nil, message: "empty file (no header row)") }
        func column(_ key: String) throws -> Int {
            guard let i = header.fields.firstIndex(of: key) else {
                throw DatasetError.csv(file: path, line: header.line, column: key,
                                       message: "no such column; the header has \(header.fields.map { "'\($0)'" }.joined(separator: ", "))")
            }
            return i
        }
        let imageColumn = try column(imageKey), captionColumn = try column(captionKey)
        let folder = file.deletingLastPathComponent()
        var images: [URL] = [], captions: [String] = [], lines: [Int] = []
        for row in rows.dropFirst() {
            for (key, c) in [(imageKey, imageColumn), (captionKey, captionColumn)] where c >= row.fields.count {
                throw DatasetError.csv(file: path, line: row.line, column: key,
                                       message: "row has \(row.fields.count) field\(row.fields.count == 1 ? "" : "s"), the header \(header.fields.count)")
            }
            let p = row.fields[imageColumn]
            guard !p.isEmpty else { throw DatasetError.csv(file: path, line: row.line, column: imageKey, message: "empty image path") }
            images.append(p.hasPrefix("/") ? URL(fileURLWithPath: p) : folder.appendingPathComponent(p))
            captions.append(row.fields[captionColumn])
            lines.append(row.line)
        }
        guard !images.isEmpty else { throw DatasetError.csv(file: path, line: header.line, column: nil, message: "no rows after the header") }
        self.file = file
        self.images = images
        self.captions = captions
        self.lines = lines
        self.imageKey = imageKey
    }

    /// The image of pair `index`; an error names the CSV file, line and column as well as the image
    /// file (retrieval; the training loader names samples with `describe`).
    public func imageNamingRow(_ index: Int) throws -> DecodedImage {
        do { return try ImageDecoder.decodeImage(contentsOf: images[index]) } catch {
            throw DatasetError.csv(file: file.path, line: lines[index], column: imageKey, message: "\(error)")
        }
    }

    /// Rows of fields with the 1-based line each row starts on.
    static func parse(_ text: String, separator: Unicode.Scalar, file: String) throws -> [(line: Int, fields: [String])] {
        var rows: [(line: Int, fields: [String])] = []
        var fields: [String] = [], field = String.UnicodeScalarView()
        var line = 1, rowLine = 1, quoted = false, wasQuoted = false, quoteLine = 1
        var it = text.unicodeScalars.makeIterator()
        var pending: Unicode.Scalar? = nil
        func endRow() {
            fields.append(String(field))
            if !(fields.count == 1 && fields[0].isEmpty && !wasQuoted) { rows.append((rowLine, fields)) }
            fields = []; field = String.UnicodeScalarView(); wasQuoted = false
        }
        while let c = pending ?? it.next() {
            pending = nil
            if quoted {
                if c == "\"" {
                    if let n = it.next() {
                        if n == "\"" { field.append("\"") } else { quoted = false; pending = n }
                    } else { quoted = false }
                } else {
                    if c == "\n" { line += 1 }
                    field.append(c)
                }
                continue
            }
            switch c {
            case "\"" where field.isEmpty && !wasQuoted:
                quoted = true; wasQuoted = true; quoteLine = line
            case separator:
                fields.append(String(field)); field = String.UnicodeScalarView(); wasQuoted = false
            case "\r":
                break
            case "\n":
                endRow(); line += 1; rowLine = line
            default:
                field.append(c)
            }
        }
        if quoted { throw DatasetError.csv(file: file, line: quoteLine, column: nil, message: "quoted field is never closed") }
        if !field.isEmpty || !fields.isEmpty || wasQuoted { endRow() }
        return rows
    }
}
