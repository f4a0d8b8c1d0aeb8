import Foundation

/// Where a JSON text goes wrong, for error messages about JSON the user wrote (model configs).
public enum JSONSyntax {
    /// Nil for valid JSON (nested at most 64 deep, no duplicate keys); otherwise "line 3, column 14
    /// (byte 52): expected ',' or '}'" or a reason without a position. Run before Foundation's parser,
    /// which neither gives positions nor bounds nesting.
    public static func firstError(in data: Data) -> String? {
        let bytes = [UInt8](data)
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }) {
            return bytes.isEmpty ? "the file is empty" : "the file holds only whitespace"
        }
        do {
            _ = try LiteralParser.parse(bytes, dialect: .json)
            return nil
        } catch let e as LiteralSyntaxError {
            let offset = min(max(e.offset, 0), bytes.count)
            let before = bytes[..<offset]
            let line = before.reduce(1) { $1 == 0x0A ? $0 + 1 : $0 }
            let column = offset - (before.lastIndex(of: 0x0A).map { $0 + 1 } ?? 0) + 1
            return "line \(line), column \(column) (byte \(offset)): \(e.message)"
        } catch {
            return "\(error)"
        }
    }
}
