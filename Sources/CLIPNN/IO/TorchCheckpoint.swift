import CLIPEngine
import Foundation

/// A PyTorch checkpoint that cannot be read; names the file and, where there is one, the key path
/// (`state_dict/visual.trunk.stem.0.weight`) of the value it is about.
public struct TorchCheckpointError: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let key: String?
    public let message: String

    public init(file: String, key: String?, message: String) {
        self.file = file; self.key = key; self.message = message
    }

    public var description: String {
        key.map { "\(file): '\($0)': \(message)" } ?? "\(file): \(message)"
    }
}

/// A tensor in a torch checkpoint: where its storage lies in the archive and how it views it
/// (offset and strides in elements, as `torch._utils._rebuild_tensor_v2` takes them). Decoded to
/// Float32 only when asked for; tensors that share a storage read the same bytes.
public final class TorchTensor {
    public let shape: [Int]
    public let strides: [Int]
    public let storageOffset: Int
    /// The storage's key in the archive (`data/KEY`) and its element type, e.g. "FloatStorage".
    public let storageKey: String
    public let storageType: String
    let type: ScalarType
    let archive: ZipArchive
    let entry: String

    init(shape: [Int], strides: [Int], storageOffset: Int, storageKey: String, storageType: String, type: ScalarType,
         archive: ZipArchive, entry: String) {
        self.shape = shape; self.strides = strides; self.storageOffset = storageOffset
        self.storageKey = storageKey; self.storageType = storageType; self.type = type
        self.archive = archive; self.entry = entry
    }

    public var count: Int { shape.reduce(1, *) }

    /// Whether the view reads `count` consecutive elements (strides of size-1 dimensions ignored).
    var isContiguous: Bool {
        var expected = 1
        for (n, s) in zip(shape, strides).reversed() where n != 1 {
            if s != expected { return false }
            expected *= n
        }
        return true
    }

    /// The values as a contiguous Float32 tensor (fp16, bf16, fp64 and integer storages converted).
    public func decode() throws -> Tensor {
        let raw = try archive.bytes(of: entry)
        // The decoded copy is what the model keeps: the storage's pages need not stay resident too
        // (a later read of a shared storage maps them in again from the file).
        defer { archive.dropPages(of: entry) }
        let t = Tensor(uninitializedShape: shape)
        let n = count
        guard n > 0, let base = raw.baseAddress else { return t }
        let size = type.byteSize
        let dst = t.storage.pointer
        if isContiguous {
            decodeFloats(type, from: base + storageOffset * size, count: n, into: dst)
        } else {
            // A view with strides (bounds checked when the checkpoint was read): row by row of
            // the last dimension.
            let rank = shape.count
            let inner = shape[rank - 1], innerStride = strides[rank - 1]
            var index = [Int](repeating: 0, count: rank)
            var out = 0
            while out < n {
                var src = storageOffset
                for d in 0..<rank - 1 { src += index[d] * strides[d] }
                for i in 0..<inner {
                    decodeFloats(type, from: base + (src + i * innerStride) * size, count: 1, into: dst + out + i)
                }
                out += inner
                var d = rank - 2
                while d >= 0 {
                    index[d] += 1
                    if index[d] < shape[d] { break }
                    index[d] = 0
                    d -= 1
                }
            }
        }
        return t
    }
}

/// A value in a torch checkpoint, with tensors resolved: what `torch.load(weights_only=True)`
/// returns, and nothing else can be in it.
public indirect enum TorchValue {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case list([TorchValue])
    case tuple([TorchValue])
    /// dict and OrderedDict, in order.
    case dict([(key: TorchValue, value: TorchValue)])
    case tensor(TorchTensor)

    /// The value under a `str` key.
    public subscript(key: String) -> TorchValue? {
        guard case .dict(let pairs) = self else { return nil }
        return pairs.last { if case .string(key) = $0.key { return true } else { return false } }?.value
    }

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
        case .tensor: return "tensor"
        }
    }
}

/// A PyTorch checkpoint in torch's zip format (`torch.save` since 1.6: `.pt`, `.pth`, `.bin`),
/// read without executing anything, as `torch.load(weights_only=True)` allows: the pickle in
/// `*/data.pkl` may name only tensor rebuilds, storages, `collections.OrderedDict` and plain
/// containers; any other global (`os.system`, `builtins.eval`, a model class) is refused with its
/// name before anything refers to it, and nothing is ever called. Storages are entries
/// `*/data/KEY` of the archive, memory-mapped.
public struct TorchCheckpoint {
    public let url: URL
    public let root: TorchValue
    let archive: ZipArchive

    /// `torch.<X>Storage` → element type; the other torch storages are named in an error.
    static let storageTypes: [String: ScalarType] = [
        "FloatStorage": .f32, "HalfStorage": .f16, "BFloat16Storage": .bf16, "DoubleStorage": .f64,
        "LongStorage": .i64, "IntStorage": .i32, "ShortStorage": .i16, "CharStorage": .i8,
        "ByteStorage": .u8, "BoolStorage": .bool,
    ]

    /// The globals `torch.load(weights_only=True)` would need for a state dict or a training checkpoint.
    static func allows(_ module: String, _ name: String) -> Bool {
        switch (module, name) {
        case ("collections", "OrderedDict"), ("_codecs", "encode"),
             ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter"),
             ("torch._utils", "_rebuild_parameter_with_state"):
            return true
        case ("torch", _): return name.hasSuffix("Storage")
        default: return false
        }
    }

    public static func read(_ url: URL) throws -> TorchCheckpoint {
        let archive = try ZipArchive(url: url)
        let file = url.path
        func fail(_ m: String) -> TorchCheckpointError { TorchCheckpointError(file: file, key: nil, message: m) }
        let pickles = archive.entries.filter { $0.name.hasSuffix("/data.pkl") || $0.name == "data.pkl" }
        guard pickles.count == 1, let pickle = pickles.first else {
            throw fail(pickles.isEmpty ? "a zip archive but not a torch checkpoint (no data.pkl entry)"
                                       : "\(pickles.count) data.pkl entries; expected one")
        }
        let prefix = String(pickle.name.dropLast("data.pkl".count))
        if let order = archive.entry(prefix + "byteorder") {
            let text = String(decoding: try archive.bytes(of: order.name), as: UTF8.self)
            guard text == "little" else { throw fail("byte order '\(text)' is not supported (only little-endian)") }
        }
        try archive.verifyChecksum(pickle.name)
        let bytes = [UInt8](try archive.bytes(of: pickle.name))
        let value = try Pickle.load(bytes, file: "\(file) (\(pickle.name))",
                                    policy: PicklePolicy(persistentIDs: true, allowsGlobal: { allows($0, $1) }))
        var reader = Resolver(archive: archive, file: file, prefix: prefix)
        return TorchCheckpoint(url: url, root: try reader.resolve(value, path: ""), archive: archive)
    }

    /// Turns the pickle's values into `TorchValue`s, checking each tensor's view against its storage.
    private struct Resolver {
        let archive: ZipArchive
        let file: String
        let prefix: String

        func fail(_ path: String, _ m: String) -> TorchCheckpointError {
            TorchCheckpointError(file: file, key: path.isEmpty ? nil : path, message: m)
        }

        func join(_ path: String, _ key: PickleValue) -> String {
            let k: String
            switch key {
            case .string(let s): k = s
            case .int(let i): k = String(i)
            default: k = "<\(key.kind)>"
            }
            return path.isEmpty ? k : path + "/" + k
        }

        mutating func resolve(_ v: PickleValue, path: String) throws -> TorchValue {
            switch v {
            case .none: return .none
            case .bool(let b): return .bool(b)
            case .int(let i): return .int(i)
            case .float(let f): return .float(f)
            case .string(let s): return .string(s)
            case .bytes(let b): return .bytes(b)
            case .list(let l): return .list(try l.items.enumerated().map { try resolve($1, path: join(path, .int($0))) })
            case .tuple(let t): return .tuple(try t.enumerated().map { try resolve($1, path: join(path, .int($0))) })
            case .dict(let d):
                return .dict(try d.pairs.map { (try resolve($0.key, path: path), try resolve($0.value, path: join(path, $0.key))) })
            case .global(let m, let n):
                throw fail(path, "'\(m).\(n)' stands where a value was expected")
            case .persistent:
                throw fail(path, "a storage stands where a value was expected (not inside a tensor rebuild)")
            case .object(let o):
                guard case .global(let m, let n) = o.callable else { throw fail(path, "a call of a \(o.callable.kind)") }
                switch (m, n) {
                case ("torch._utils", "_rebuild_tensor_v2"):
                    return .tensor(try tensor(o.args, path: path))
                case ("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_parameter_with_state"):
                    guard let data = o.args.first else { throw fail(path, "\(n) without arguments") }
                    let t = try resolve(data, path: path)
                    guard case .tensor = t else { throw fail(path, "\(n) of a \(t.kind), not a tensor") }
                    return t
                default:
                    throw fail(path, "'\(m).\(n)(...)' is not a tensor or container (nothing was executed)")
                }
            }
        }

        /// `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])`.
        func tensor(_ a: [PickleValue], path: String) throws -> TorchTensor {
            guard a.count >= 4, case .persistent(let id) = a[0] else {
                throw fail(path, "_rebuild_tensor_v2 without a storage as its first argument")
            }
            guard case .tuple(let p) = id, p.count == 5, p[0].text == "storage",
                  case .global("torch", let typeName) = p[1], let key = p[2].text, case .int(let storageCount) = p[4], storageCount >= 0
            else { throw fail(path, "storage id is not ('storage', torch.<type>Storage, key, location, numel)") }
            guard let type = TorchCheckpoint.storageTypes[typeName] else {
                throw fail(path, "torch.\(typeName) is not supported (float, half, bfloat16, double and integer storages are)")
            }
            func ints(_ v: PickleValue, _ what: String) throws -> [Int] {
                guard case .tuple(let t) = v else { throw fail(path, "\(what) is a \(v.kind), not a tuple") }
                return try t.map {
                    guard case .int(let i) = $0, i >= 0 else { throw fail(path, "\(what) holds \($0.kind) \($0), not a non-negative int") }
                    return i
                }
            }
            guard case .int(let offset) = a[1], offset >= 0 else { throw fail(path, "storage offset is not a non-negative int") }
            let shape = try ints(a[2], "size"), strides = try ints(a[3], "stride")
            guard shape.count == strides.count else { throw fail(path, "size \(shape) and stride \(strides) differ in length") }
            guard let count = checkedElementCount(shape) else { throw fail(path, "size \(shape) is too large") }
            // The last element the view reads must lie inside the storage.
            if count > 0 {
                var last = offset
                for (n, s) in zip(shape, strides) {
                    let (step, o1) = (n - 1).multipliedReportingOverflow(by: s)
                    let (sum, o2) = last.addingReportingOverflow(step)
                    guard !o1, !o2 else { throw fail(path, "view (offset \(offset), size \(shape), stride \(strides)) overflows") }
                    last = sum
                }
                guard last < storageCount else {
                    throw fail(path, "view (offset \(offset), size \(shape), stride \(strides)) reads past its storage of \(storageCount) elements")
                }
            }
            let entry = prefix + "data/" + key
            guard let e = archive.entry(entry) else { throw fail(path, "its storage '\(entry)' is missing from the archive") }
            let (needed, overflow) = storageCount.multipliedReportingOverflow(by: type.byteSize)
            guard !overflow, e.size >= needed else {
                throw fail(path, "storage '\(entry)' holds \(e.size) bytes, \(storageCount) elements of \(typeName) need \(needed)")
            }
            return TorchTensor(shape: shape, strides: strides, storageOffset: offset, storageKey: key, storageType: typeName,
                               type: type, archive: archive, entry: entry)
        }
    }

    /// The model weights: the checkpoint itself when it is a dict of tensors (`torch.save(model.state_dict())`,
    /// open_clip hub and timm `.bin` files), or its `state_dict` (open_clip_train's `epoch_K.pt`)
    /// or `model` entry. DDP's `module.` prefix is removed when every key has it.
    public func stateDict() throws -> [(key: String, tensor: TorchTensor)] {
        var dict = root
        var where_ = ""
        if root["state_dict"] != nil { dict = root["state_dict"]!; where_ = "state_dict/" }
        else if root["model"] != nil, case .dict = root["model"]! { dict = root["model"]!; where_ = "model/" }
        guard case .dict(let pairs) = dict else {
            throw TorchCheckpointError(file: url.path, key: where_.isEmpty ? nil : String(where_.dropLast()),
                                       message: "is a \(dict.kind), not a state dict")
        }
        var out: [(key: String, tensor: TorchTensor)] = []
        for (k, v) in pairs {
            guard case .string(let key) = k else {
                throw TorchCheckpointError(file: url.path, key: where_ + "<\(k.kind)>", message: "state dict key is a \(k.kind), not a str")
            }
            guard case .tensor(let t) = v else {
                throw TorchCheckpointError(file: url.path, key: where_ + key, message: "is a \(v.kind), not a tensor")
            }
            out.append((key, t))
        }
        if !out.isEmpty && out.allSatisfy({ $0.key.hasPrefix("module.") }) {
            out = out.map { (String($0.key.dropFirst("module.".count)), $0.tensor) }
        }
        return out
    }
}

/// Weights from a torch checkpoint (its `stateDict()`), decoded per key when the model asks.
public final class TorchWeights: WeightSource {
    public let checkpoint: TorchCheckpoint
    private let tensors: [String: TorchTensor]
    public let allKeys: [String]

    public init(url: URL) throws {
        checkpoint = try TorchCheckpoint.read(url)
        let dict = try checkpoint.stateDict()
        allKeys = dict.map(\.key)
        var byKey: [String: TorchTensor] = [:]
        for (k, t) in dict {
            guard byKey[k] == nil else { throw TorchCheckpointError(file: url.path, key: k, message: "appears twice in the state dict") }
            byKey[k] = t
        }
        tensors = byKey
    }

    public var sourceName: String { checkpoint.url.path }

    public func tensor(forKey key: String) throws -> Tensor? {
        guard let t = tensors[key] else { return nil }
        do { return try t.decode() } catch {
            throw WeightError.unreadable(key: key, source: sourceName, reason: "\(error)")
        }
    }
}
