import Foundation

/// A value built by the pickle reader. Nothing is ever called: a `GLOBAL` is just its name, and
/// `REDUCE` / `NEWOBJ` record the callable and its arguments (`object`) for the caller to
/// interpret. The exceptions are data constructors with no code of their own:
/// `_codecs.encode(str, 'latin1')` (how Python 3 writes `bytes` at protocol 2) becomes `.bytes`,
/// and `collections.OrderedDict()` becomes an empty `.dict` that SETITEMS then fills.
public indirect enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    /// Python 3 `str` (and Python 2 `unicode`).
    case string(String)
    /// Python 3 `bytes` / `bytearray` and Python 2 `str` (read as `pickle.load(encoding="bytes")` does).
    case bytes([UInt8])
    case list(PickleList)
    case tuple([PickleValue])
    case dict(PickleDict)
    case global(module: String, name: String)
    case object(PickleObject)
    /// BINPERSID's argument: an object the writer stored outside the pickle (torch's storages).
    case persistent(PickleValue)

    /// A `str` or `bytes` key / value as text (bytes as UTF-8, falling back to Latin-1).
    public var text: String? {
        switch self {
        case .string(let s): return s
        case .bytes(let b): return String(bytes: b, encoding: .utf8) ?? String(bytes: b, encoding: .isoLatin1)
        default: return nil
        }
    }

    /// The value's Python type in words, for error messages.
    public var kind: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int: return "int"
        case .float: return "float"
        case .string: return "str"
        case .bytes: return "bytes"
        case .list: return "list"
        case .tuple: return "tuple"
        case .dict: return "dict"
        case .global(let m, let n): return "\(m).\(n)"
        case .object(let o): return "\(o.callable.kind)(...)"
        case .persistent: return "persistent id"
        }
    }
}

/// A container's nesting depth, and whether it already sits inside another value. The reader
/// refuses to change a container once it is nested, so the recorded depths stay exact.
public class PickleContainer {
    var depth = 1
    var isNested = false
}

public final class PickleList: PickleContainer { public var items: [PickleValue] = [] }

public final class PickleDict: PickleContainer {
    public var pairs: [(key: PickleValue, value: PickleValue)] = []
    /// The value under a `str` or `bytes` key equal to `key` (the CIFAR files use both spellings).
    public subscript(key: String) -> PickleValue? {
        pairs.last { $0.key.text == key }?.value
    }
    public var keys: [String] { pairs.compactMap { $0.key.text } }
}

/// `callable(*args)` as recorded by REDUCE or NEWOBJ, with the state a later BUILD gave it.
public final class PickleObject: PickleContainer {
    public let callable: PickleValue
    public let args: [PickleValue]
    public var state: PickleValue?
    init(callable: PickleValue, args: [PickleValue], depth: Int) {
        self.callable = callable; self.args = args
        super.init()
        self.depth = depth
    }
}

public struct PickleError: Error, CustomStringConvertible, Equatable {
    public let file: String
    /// The opcode's byte offset; nil for errors in the decoded data (not at one place in the stream).
    public let offset: Int?
    public let message: String
    public init(file: String, offset: Int?, message: String) {
        self.file = file; self.offset = offset; self.message = message
    }
    public var description: String {
        offset.map { "\(file): bad pickle at byte \($0): \(message)" } ?? "\(file): unexpected pickle contents: \(message)"
    }
}

/// What a pickle may contain beyond plain data. Nothing is executed either way; the policy says
/// which names may appear at all, so that a file with any other is refused where it names it.
public struct PicklePolicy: Sendable {
    /// Whether BINPERSID (an object stored outside the pickle, as torch stores tensor data) is read.
    public var persistentIDs: Bool
    /// Whether GLOBAL / STACK_GLOBAL may name `module.name`; nil accepts every name (recorded only).
    public var allowsGlobal: (@Sendable (_ module: String, _ name: String) -> Bool)?

    public init(persistentIDs: Bool = false, allowsGlobal: (@Sendable (String, String) -> Bool)? = nil) {
        self.persistentIDs = persistentIDs
        self.allowsGlobal = allowsGlobal
    }

    /// Data files (CIFAR): no persistent ids, globals recorded for the caller to interpret.
    public static let data = PicklePolicy()
}

/// The one pickle reader (protocols 2–5, as written by Python 2's cPickle, Python 3's pickle and
/// torch.save): a stack machine over the opcodes that plain data uses, for data files (CIFAR) and
/// PyTorch checkpoints. Opcodes that would need Python to run (PERSID, INST, OBJ, EXT*, text
/// protocol 0) are refused with the byte offset.
public enum Pickle {
    /// Deepest nesting of lists, tuples, dicts and objects accepted (the NPY and safetensors header
    /// parsers use the same bound). Deeper values would overflow the stack when they are freed.
    public static let maximumDepth = 64

    public static func load(_ url: URL, policy: PicklePolicy = .data) throws -> PickleValue {
        let data: Data
        do { data = try InputFile.read(url.path) } catch let e as InputFileError {
            throw PickleError(file: url.path, offset: nil, message: "cannot read file: \(e.reason)")
        }
        return try load([UInt8](data), file: url.path, policy: policy)
    }

    public static func load(_ bytes: [UInt8], file: String = "<pickle>", policy: PicklePolicy = .data) throws -> PickleValue {
        var machine = Machine(bytes: bytes, file: file, policy: policy)
        return try machine.run()
    }

    /// A stack entry: a value with its nesting depth (containers keep theirs up to date), or MARK.
    private enum Slot { case value(PickleValue, depth: Int), mark }

    private struct Machine {
        let bytes: [UInt8]
        let file: String
        let policy: PicklePolicy
        var pos = 0
        var opStart = 0
        var stack: [Slot] = []
        var memo: [Int: (value: PickleValue, depth: Int)] = [:]

        init(bytes: [UInt8], file: String, policy: PicklePolicy) { self.bytes = bytes; self.file = file; self.policy = policy }

        /// A GLOBAL's name, refused here (before anything can refer to it) when the policy says so.
        func global(_ module: String, _ name: String) throws -> PickleValue {
            if let allows = policy.allowsGlobal, !allows(module, name) {
                throw fail("refused global '\(module).\(name)': not a tensor, storage or container type (nothing was executed)")
            }
            return .global(module: module, name: name)
        }

        func fail(_ message: String, at offset: Int? = nil) -> PickleError {
            PickleError(file: file, offset: offset ?? opStart, message: message)
        }

        mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
            guard n >= 0, n <= bytes.count - pos else {
                throw fail("stream ends inside an argument (needs \(n) bytes, \(bytes.count - pos) left)", at: pos)
            }
            defer { pos += n }
            return bytes[pos..<pos + n]
        }
        mutating func uint(_ n: Int) throws -> Int {
            try take(n).reversed().reduce(0) { $0 << 8 | Int($1) }
        }
        mutating func length(_ n: Int) throws -> Int {
            let v = try uint(n)
            guard v <= bytes.count - pos else {
                throw fail("length \(v) runs past the end of the stream (\(bytes.count - pos) bytes left)")
            }
            return v
        }
        mutating func line() throws -> String {
            guard let end = bytes[pos...].firstIndex(of: 0x0A) else { throw fail("unterminated text argument", at: pos) }
            defer { pos = end + 1 }
            return String(decoding: bytes[pos..<end], as: UTF8.self)
        }
        mutating func utf8(_ n: Int) throws -> String {
            let slice = try take(n)
            guard let s = String(bytes: slice, encoding: .utf8) else { throw fail("invalid UTF-8 in a str") }
            return s
        }

        typealias Entry = (value: PickleValue, depth: Int)

        static func container(_ v: PickleValue) -> PickleContainer? {
            switch v {
            case .list(let l): return l
            case .dict(let d): return d
            case .object(let o): return o
            default: return nil
            }
        }
        /// The depth of a value now (a container's own record is current; the slot's may be older).
        static func depth(_ e: Entry) -> Int { container(e.value)?.depth ?? e.depth }

        /// Marks `items` as nested inside a new or growing container and returns the depth that
        /// container needs; throws when it would exceed `Pickle.maximumDepth`.
        func nest(_ items: [Entry], minimum: Int = 1) throws -> Int {
            var depth = minimum
            for item in items {
                depth = max(depth, Self.depth(item) + 1)
                Self.container(item.value)?.isNested = true
            }
            guard depth <= Pickle.maximumDepth else { throw fail("values nested deeper than \(Pickle.maximumDepth) levels") }
            return depth
        }
        /// A container may grow only while it is not inside another value (what pickle writes for
        /// acyclic data); recursive structures are refused.
        func growable(_ c: PickleContainer) throws {
            if c.isNested { throw fail("changes a container already nested in another value (recursive data is not supported)") }
        }

        mutating func push(_ v: PickleValue, depth: Int = 0) { stack.append(.value(v, depth: depth)) }
        mutating func push(_ e: Entry) { stack.append(.value(e.value, depth: e.depth)) }
        mutating func popEntry() throws -> Entry {
            guard case .value(let v, let d)? = stack.popLast() else { throw fail("stack underflow (or MARK where a value was expected)") }
            return (v, d)
        }
        mutating func pop() throws -> PickleValue { try popEntry().value }
        mutating func topEntry() throws -> Entry {
            guard case .value(let v, let d)? = stack.last else { throw fail("stack underflow") }
            return (v, d)
        }
        mutating func top() throws -> PickleValue { try topEntry().value }
        /// The values above the topmost MARK, which is removed.
        mutating func popMark() throws -> [Entry] {
            guard let m = stack.lastIndex(where: { if case .mark = $0 { return true } else { return false } }) else {
                throw fail("no MARK on the stack")
            }
            let values = stack[(m + 1)...].compactMap { slot -> Entry? in
                if case .value(let v, let d) = slot { return (v, d) } else { return nil }
            }
            stack.removeSubrange(m...)
            return values
        }
        mutating func memoGet(_ i: Int) throws -> Entry {
            guard let v = memo[i] else { throw fail("memo key \(i) was never stored") }
            return v
        }
        mutating func tuple(_ items: [Entry]) throws {
            push(.tuple(items.map(\.value)), depth: try nest(items))
        }

        mutating func setItems(_ items: [Entry]) throws {
            guard items.count % 2 == 0 else { throw fail("SETITEMS with an odd number of values") }
            guard case .dict(let d) = try top() else { throw fail("SETITEM(S) on a \(try top().kind), not a dict") }
            try growable(d)
            d.depth = try nest(items, minimum: d.depth)
            for i in stride(from: 0, to: items.count, by: 2) { d.pairs.append((items[i].value, items[i + 1].value)) }
        }
        mutating func append(_ items: [Entry]) throws {
            guard case .list(let l) = try top() else { throw fail("APPEND(S) on a \(try top().kind), not a list") }
            try growable(l)
            l.depth = try nest(items, minimum: l.depth)
            l.items += items.map(\.value)
        }

        mutating func reduce(_ callableEntry: Entry, _ argsEntry: Entry) throws -> PickleValue {
            let callable = callableEntry.value, args = argsEntry.value
            guard case .tuple(let a) = args else { throw fail("REDUCE arguments are a \(args.kind), not a tuple") }
            if case .global("_codecs", "encode") = callable {
                guard a.count == 2, case .string(let s) = a[0], let enc = a[1].text, enc.lowercased() == "latin1" || enc.lowercased() == "latin-1"
                else { throw fail("unsupported _codecs.encode arguments") }
                var out: [UInt8] = []
                out.reserveCapacity(s.unicodeScalars.count)
                for u in s.unicodeScalars {
                    guard u.value < 256 else { throw fail("_codecs.encode: character beyond Latin-1") }
                    out.append(UInt8(u.value))
                }
                return .bytes(out)
            }
            if case .global("__builtin__" , "bytes") = callable, a.isEmpty { return .bytes([]) }
            if case .global("builtins", "bytes") = callable, a.isEmpty { return .bytes([]) }
            if case .global("builtins", "bytearray") = callable, let first = a.first, case .bytes(let b) = first { return .bytes(b) }
            if case .global("collections", "OrderedDict") = callable, a.isEmpty { return .dict(PickleDict()) }
            return .object(PickleObject(callable: callable, args: a, depth: try nest([callableEntry, argsEntry])))
        }

        mutating func run() throws -> PickleValue {
            while pos < bytes.count {
                opStart = pos
                let op = bytes[pos]
                pos += 1
                switch op {
                case 0x80: // PROTO
                    let v = try uint(1)
                    guard v <= 5 else { throw fail("unsupported pickle protocol \(v)") }
                case 0x95: _ = try uint(8) // FRAME: a size hint only
                case 0x2E: // STOP
                    let v = try pop()
                    return v
                case 0x28: stack.append(.mark) // MARK
                case 0x30: _ = try pop() // POP
                case 0x31: _ = try popMark() // POP_MARK
                case 0x32: push(try topEntry()) // DUP
                case 0x7D: push(.dict(PickleDict())) // EMPTY_DICT
                case 0x5D: push(.list(PickleList())) // EMPTY_LIST
                case 0x29: push(.tuple([])) // EMPTY_TUPLE
                case 0x64: // DICT
                    let items = try popMark()
                    let d = PickleDict()
                    push(.dict(d))
                    try setItems(items)
                case 0x6C: // LIST
                    let items = try popMark()
                    let l = PickleList(); l.depth = try nest(items); l.items = items.map(\.value); push(.list(l))
                case 0x74: try tuple(try popMark()) // TUPLE
                case 0x85: try tuple([try popEntry()]) // TUPLE1
                case 0x86: let b = try popEntry(), a = try popEntry(); try tuple([a, b]) // TUPLE2
                case 0x87: let c = try popEntry(), b = try popEntry(), a = try popEntry(); try tuple([a, b, c]) // TUPLE3
                case 0x61: try append([try popEntry()]) // APPEND
                case 0x65: try append(try popMark()) // APPENDS
                case 0x73: let v = try popEntry(), k = try popEntry(); try setItems([k, v]) // SETITEM
                case 0x75: try setItems(try popMark()) // SETITEMS
                case 0x4E: push(.none) // NONE
                case 0x88: push(.bool(true)) // NEWTRUE
                case 0x89: push(.bool(false)) // NEWFALSE
                case 0x4A: push(.int(Int(Int32(truncatingIfNeeded: try uint(4))))) // BININT
                case 0x4B: push(.int(try uint(1))) // BININT1
                case 0x4D: push(.int(try uint(2))) // BININT2
                case 0x8A: // LONG1
                    let n = try length(1)
                    guard n <= 8 else { throw fail("LONG1 of \(n) bytes does not fit in 64 bits") }
                    let raw = try take(n)
                    var v: Int64 = 0
                    for (i, b) in raw.enumerated() { v |= Int64(b) << (8 * Int64(i)) }
                    if n > 0 && n < 8 && raw.last! & 0x80 != 0 { v -= Int64(1) << (8 * Int64(n)) }
                    push(.int(Int(v)))
                case 0x47: // BINFLOAT (big-endian)
                    let raw = try take(8)
                    push(.float(Double(bitPattern: raw.reduce(UInt64(0)) { $0 << 8 | UInt64($1) })))
                case 0x55, 0x43: push(.bytes(Array(try take(try length(1))))) // SHORT_BINSTRING, SHORT_BINBYTES
                case 0x54: // BINSTRING (signed 4-byte length)
                    let n = try uint(4)
                    guard n < 0x8000_0000 else { throw fail("negative BINSTRING length") }
                    pos -= 4; push(.bytes(Array(try take(try length(4)))))
                case 0x42: push(.bytes(Array(try take(try length(4))))) // BINBYTES
                case 0x8E, 0x96: push(.bytes(Array(try take(try length(8))))) // BINBYTES8, BYTEARRAY8
                case 0x58: push(.string(try utf8(try length(4)))) // BINUNICODE
                case 0x8C: push(.string(try utf8(try length(1)))) // SHORT_BINUNICODE
                case 0x8D: push(.string(try utf8(try length(8)))) // BINUNICODE8
                case 0x71: memo[try uint(1)] = try topEntry() // BINPUT
                case 0x72: memo[try uint(4)] = try topEntry() // LONG_BINPUT
                case 0x94: memo[memo.count] = try topEntry() // MEMOIZE
                case 0x68: push(try memoGet(try uint(1))) // BINGET
                case 0x6A: push(try memoGet(try uint(4))) // LONG_BINGET
                case 0x63: // GLOBAL
                    let module = try line(), name = try line()
                    push(try global(module, name))
                case 0x93: // STACK_GLOBAL
                    let name = try pop(), module = try pop()
                    guard case .string(let m) = module, case .string(let n) = name else {
                        throw fail("STACK_GLOBAL needs two str, got \(module.kind), \(name.kind)")
                    }
                    push(try global(m, n))
                case 0x52: // REDUCE
                    let args = try popEntry(), callable = try popEntry()
                    push(try reduce(callable, args))
                case 0x81: // NEWOBJ
                    let args = try popEntry(), cls = try popEntry()
                    guard case .tuple(let a) = args.value else { throw fail("NEWOBJ arguments are a \(args.value.kind), not a tuple") }
                    push(.object(PickleObject(callable: cls.value, args: a, depth: try nest([cls, args]))))
                case 0x51: // BINPERSID
                    guard policy.persistentIDs else { throw fail("persistent ids (BINPERSID) are not expected in this file") }
                    let id = try popEntry()
                    push(.persistent(id.value), depth: try nest([id]))
                case 0x62: // BUILD
                    let state = try popEntry()
                    // An OrderedDict's instance attributes (state_dict's `_metadata`): not data.
                    if case .dict = try top() { break }
                    guard case .object(let o) = try top() else { throw fail("BUILD on a \(try top().kind)") }
                    try growable(o)
                    o.depth = try nest([state], minimum: o.depth)
                    o.state = state.value
                default:
                    throw fail(String(format: "unsupported opcode 0x%02X", op))
                }
            }
            throw fail("stream ends without STOP", at: bytes.count)
        }
    }
}

/// Writes pickle protocol 2 for plain data, opcode by opcode (what torch.save's pickler emits for
/// state dicts and optimizer states); the caller composes containers, e.g. a dict is
/// `emptyDict(); mark(); key; value; ...; setItems()`.
public struct PickleWriter {
    public private(set) var bytes: [UInt8] = [0x80, 2]  // PROTO 2

    public init() {}

    public mutating func none() { bytes.append(0x4E) }
    public mutating func bool(_ b: Bool) { bytes.append(b ? 0x88 : 0x89) }
    public mutating func int(_ v: Int) {
        if let small = Int32(exactly: v) {
            bytes.append(0x4A)  // BININT
            withUnsafeBytes(of: small.littleEndian) { bytes += $0 }
        } else {
            bytes += [0x8A, 8]  // LONG1, 8 bytes two's complement
            withUnsafeBytes(of: Int64(v).littleEndian) { bytes += $0 }
        }
    }
    public mutating func float(_ v: Double) {
        bytes.append(0x47)  // BINFLOAT, big-endian
        withUnsafeBytes(of: v.bitPattern.bigEndian) { bytes += $0 }
    }
    public mutating func string(_ s: String) {
        let u = Array(s.utf8)
        bytes.append(0x58)  // BINUNICODE
        withUnsafeBytes(of: UInt32(u.count).littleEndian) { bytes += $0 }
        bytes += u
    }
    public mutating func mark() { bytes.append(0x28) }
    /// TUPLE of the values since the last `mark()`.
    public mutating func tuple() { bytes.append(0x74) }
    public mutating func emptyTuple() { bytes.append(0x29) }
    public mutating func emptyDict() { bytes.append(0x7D) }
    public mutating func emptyList() { bytes.append(0x5D) }
    /// SETITEMS: the key/value pairs since the last `mark()` into the dict below the mark.
    public mutating func setItems() { bytes.append(0x75) }
    /// APPENDS: the values since the last `mark()` onto the list below the mark.
    public mutating func appends() { bytes.append(0x65) }
    public mutating func global(_ module: String, _ name: String) { bytes += [0x63] + Array("\(module)\n\(name)\n".utf8) }
    /// REDUCE: calls the callable below the argument tuple on top (when Python loads it).
    public mutating func reduce() { bytes.append(0x52) }
    /// BINPERSID: the value on top is a persistent id.
    public mutating func persistentID() { bytes.append(0x51) }
    public mutating func stop() { bytes.append(0x2E) }
}
