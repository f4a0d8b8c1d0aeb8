import CLIPEngine
import Foundation

/// A value to write with `TorchCheckpointWriter`: what `torch.save` would be given (tensors fp32).
public indirect enum TorchSaveValue {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case list([TorchSaveValue])
    case tuple([TorchSaveValue])
    /// A plain dict (int or str keys, as an optimizer's `state` and a checkpoint's top level).
    case dict([(key: TorchSaveValue, value: TorchSaveValue)])
    /// `collections.OrderedDict` (a `state_dict()`).
    case orderedDict([(key: String, value: TorchSaveValue)])
    /// A float32 tensor; each gets its own storage.
    case tensor(Tensor)
}

/// Writes torch's zip format as `torch.save` does (`NAME/data.pkl` with tensors rebuilt by
/// `torch._utils._rebuild_tensor_v2` over `torch.FloatStorage`s stored as `NAME/data/K`,
/// `byteorder`, `version` 3, 64-byte aligned entries), loadable by `torch.load(weights_only=True)`.
public enum TorchCheckpointWriter {
    public static func write(_ value: TorchSaveValue, to url: URL, forceZip64: Bool = false) throws {
        var archive = url.deletingPathExtension().lastPathComponent
        archive = String(archive.unicodeScalars.map { CharacterSet.alphanumerics.contains($0) || $0 == "_" ? Character($0) : "_" })
        if archive.isEmpty { archive = "archive" }
        var pickle = PickleWriter()
        var storages: [Tensor] = []
        emit(value, into: &pickle, storages: &storages)
        pickle.stop()
        var sources: [ZipWriter.Source] = [
            .init(name: archive + "/data.pkl", bytes: pickle.bytes),
            .init(name: archive + "/.format_version", bytes: Array("1".utf8)),
            .init(name: archive + "/.storage_alignment", bytes: Array("64".utf8)),
            .init(name: archive + "/byteorder", bytes: Array("little".utf8)),
        ]
        for (i, t) in storages.enumerated() {
            sources.append(.init(name: "\(archive)/data/\(i)", size: t.count * 4) { emit in
                try t.withUnsafeBufferPointer { try emit(UnsafeRawBufferPointer($0)) }
            })
        }
        sources.append(.init(name: archive + "/version", bytes: Array("3\n".utf8)))
        // torch writes a random id here; any 40 digits do (it only tells files apart).
        let id = String(format: "%020llu%020llu", UInt64.random(in: 0..<10_000_000_000_000_000_000),
                        UInt64.random(in: 0..<10_000_000_000_000_000_000))
        sources.append(.init(name: archive + "/.data/serialization_id", bytes: Array(id.utf8)))
        try ZipWriter.write(sources, to: url, forceZip64: forceZip64)
    }

    private static func emit(_ v: TorchSaveValue, into p: inout PickleWriter, storages: inout [Tensor]) {
        switch v {
        case .none: p.none()
        case .bool(let b): p.bool(b)
        case .int(let i): p.int(i)
        case .float(let f): p.float(f)
        case .string(let s): p.string(s)
        case .list(let items):
            p.emptyList()
            if !items.isEmpty { p.mark(); for x in items { emit(x, into: &p, storages: &storages) }; p.appends() }
        case .tuple(let items):
            p.mark(); for x in items { emit(x, into: &p, storages: &storages) }; p.tuple()
        case .dict(let pairs):
            p.emptyDict()
            if !pairs.isEmpty {
                p.mark()
                for (k, x) in pairs { emit(k, into: &p, storages: &storages); emit(x, into: &p, storages: &storages) }
                p.setItems()
            }
        case .orderedDict(let pairs):
            p.global("collections", "OrderedDict"); p.emptyTuple(); p.reduce()
            if !pairs.isEmpty {
                p.mark()
                for (k, x) in pairs { p.string(k); emit(x, into: &p, storages: &storages) }
                p.setItems()
            }
        case .tensor(let t):
            let key = storages.count
            storages.append(t)
            // _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, backward_hooks)
            p.global("torch._utils", "_rebuild_tensor_v2")
            p.mark()
            p.mark(); p.string("storage"); p.global("torch", "FloatStorage"); p.string(String(key)); p.string("cpu")
            p.int(t.count); p.tuple(); p.persistentID()
            p.int(0)
            p.mark(); for n in t.shape { p.int(n) }; p.tuple()
            var strides = [Int](repeating: 1, count: t.shape.count)
            for d in stride(from: t.shape.count - 2, through: 0, by: -1) { strides[d] = strides[d + 1] * t.shape[d + 1] }
            p.mark(); for s in strides { p.int(s) }; p.tuple()
            p.bool(false)
            p.global("collections", "OrderedDict"); p.emptyTuple(); p.reduce()
            p.tuple()
            p.reduce()
        }
    }
}
