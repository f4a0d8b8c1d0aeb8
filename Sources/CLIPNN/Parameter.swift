import CLIPEngine
import Foundation

/// One trainable tensor of a model, under its open_clip `state_dict()` key and in open_clip's
/// layout: the value, its accumulated gradient, and a version that changes whenever the value
/// does (so that layers can rebuild derived forms — packed GEMM weights, transposed depthwise
/// weights, folded layer scales — lazily, see `DerivedCache`).
public final class Parameter: @unchecked Sendable {
    public let key: String
    /// The value in open_clip's layout. A released parameter (see `releaseValue`) rebuilds it from
    /// its derived form on every read, so reads that are not on an inference path (saving, export,
    /// `info`) still work.
    public var value: Tensor { storedValue ?? rebuildValue!() }
    private var storedValue: Tensor?
    private var rebuildValue: (() -> Tensor)?
    /// ∂loss/∂value accumulated by backward passes (same shape as `value`); nil until the first one.
    public private(set) var grad: Tensor?
    /// A frozen parameter receives no gradient and is skipped by optimisers.
    public var isFrozen = false
    /// Set by a builder of a model that will only run inference: a layer that keeps a derived
    /// form of this parameter (a packed GEMM weight) may then release the value (`releaseValue`).
    public var isInferenceOnly = false
    /// Incremented by every write to `value`.
    public private(set) var version = 0
    /// Called whenever a backward pass asks for this gradient's buffer (the data-parallel trainer
    /// uses it to let MPI progress gradient buckets already under way).
    public var onGradientAccess: (() -> Void)?

    public let shape: [Int]
    public var count: Int { shape.reduce(1, *) }
    /// Whether the value is held (false after `releaseValue`, until the next write).
    public var holdsValue: Bool { storedValue != nil }

    public init(key: String, value: Tensor) {
        self.key = key
        self.storedValue = value
        self.shape = value.shape
    }

    /// Frees the value of an inference-only parameter whose layer keeps a derived form, so the
    /// weights are resident once, not twice. `rebuild` recreates the value from that form (exact
    /// for fp32 packing, rounded as the packed format is for bf16/int8). No effect unless
    /// `isInferenceOnly`; the next write (`assign`, `updateValue`) holds a value again.
    public func releaseValue(rebuiltBy rebuild: @escaping () -> Tensor) {
        guard isInferenceOnly else { return }
        rebuildValue = rebuild
        storedValue = nil
    }

    /// Replaces the value (same shape).
    public func assign(_ newValue: Tensor) throws {
        guard newValue.shape == shape else {
            throw WeightError.shapeMismatch(key: key, expected: shape, found: newValue.shape, source: "assign")
        }
        storedValue = newValue
        rebuildValue = nil
        version &+= 1
    }

    /// Writes the value in place (optimiser steps).
    public func updateValue<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        version &+= 1
        if storedValue == nil { storedValue = value; rebuildValue = nil }
        return try storedValue!.withUnsafeMutableBufferPointer(body)
    }

    /// The gradient buffer, created as zeros on first use; `body` adds into it.
    public func accumulateGrad<R>(_ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        if grad == nil { grad = Tensor(zeros: shape) }
        return try grad!.withUnsafeMutableBufferPointer { try body($0.baseAddress!) }
    }

    /// Where a backward kernel adds this parameter's gradient (zeros on first use), or nil when
    /// the parameter is frozen. Valid until the gradient is next replaced.
    public func gradPointer() -> UnsafeMutablePointer<Float>? {
        if isFrozen { return nil }
        onGradientAccess?()
        if grad == nil { grad = Tensor(zeros: shape) }
        return grad!.withUnsafeMutableBufferPointer { $0.baseAddress! }
    }

    /// The forms layers derived from this value (`DerivedCache`: packed GEMM weights, …), held
    /// weakly, so that `dropDerivedForms` can free them.
    private var derivedForms: [WeakDerivedForm] = []
    private static let formsLock = NSLock()

    func register(_ form: DerivedForm) {
        Self.formsLock.lock(); defer { Self.formsLock.unlock() }
        derivedForms.removeAll { $0.form == nil }
        if !derivedForms.contains(where: { $0.form === form }) { derivedForms.append(WeakDerivedForm(form: form)) }
    }

    /// Frees the forms derived from this value (they are rebuilt, identically, when next used).
    /// A training step calls it once its forward pass is done: the backward pass reads the value
    /// itself, and the optimizer changes the value before the next forward, which rebuilds every
    /// form anyway — so the packed copies of the weights need not sit through the backward pass,
    /// where the step's memory peaks. No effect on an inference-only parameter (whose value may
    /// be rebuilt from its packed form).
    public func dropDerivedForms() {
        guard !isInferenceOnly else { return }
        Self.formsLock.lock()
        let forms = derivedForms.compactMap(\.form)
        Self.formsLock.unlock()
        for f in forms { f.drop() }
    }

    /// Sets the gradient to zero (keeps the buffer).
    public func zeroGrad() {
        guard grad != nil else { return }
        grad!.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
    }

    /// Replaces the gradient (clipping, accumulation across micro-batches).
    public func setGrad(_ g: Tensor?) throws {
        if let g, g.shape != shape {
            throw WeightError.shapeMismatch(key: key + " (grad)", expected: shape, found: g.shape, source: "setGrad")
        }
        grad = g
    }
}

struct WeakDerivedForm {
    weak var form: DerivedForm?
}

/// A model's parameters keyed by open_clip's names, in declaration order (= open_clip's
/// `state_dict()` order). Loading, saving, counting, ONNX export and the optimiser all read it.
public final class ParameterTree: @unchecked Sendable {
    public private(set) var parameters: [Parameter] = []
    private var index: [String: Int] = [:]

    public init() {}

    func add(_ p: Parameter) {
        precondition(index[p.key] == nil, "model declared '\(p.key)' twice")
        index[p.key] = parameters.count
        parameters.append(p)
    }

    public subscript(key: String) -> Parameter? { index[key].map { parameters[$0] } }

    public var keys: [String] { parameters.map(\.key) }

    /// Parameters whose key starts with `prefix` (`"visual."`); all of them for "".
    public func parameters(under prefix: String) -> [Parameter] {
        prefix.isEmpty ? parameters : parameters.filter { $0.key.hasPrefix(prefix) }
    }

    /// Scalars in the parameters whose key satisfies `filter`.
    public func count(where filter: (String) -> Bool = { _ in true }) -> Int {
        parameters.reduce(0) { $0 + (filter($1.key) ? $1.count : 0) }
    }

    /// Sets values by key (mlx-swift's `update(parameters:verify:)`): with `strict`, every
    /// parameter must be given and no unknown key may appear. Shapes must match. Nothing is
    /// written unless every check passes.
    public func update(_ values: [String: Tensor], strict: Bool = false, source: String = "update") throws {
        let unknown = values.keys.filter { index[$0] == nil }.sorted()
        if !unknown.isEmpty { throw WeightError.unexpectedKeys(unknown, source: source) }
        for p in parameters {
            if let v = values[p.key] {
                guard v.shape == p.shape else {
                    throw WeightError.shapeMismatch(key: p.key, expected: p.shape, found: v.shape, source: source)
                }
            } else if strict {
                throw WeightError.missingKey(p.key, source: source)
            }
        }
        for p in parameters { if let v = values[p.key] { try p.assign(v) } }
    }

    /// Freezes (or unfreezes) every parameter under `prefix` (`--lock-image`: "visual.").
    public func freeze(under prefix: String, _ frozen: Bool = true) {
        for p in parameters(under: prefix) { p.isFrozen = frozen }
    }

    public func zeroGrad() { for p in parameters { p.zeroGrad() } }
}

/// A value derived from parameters (a packed GEMM weight, a transposed depthwise weight, a folded
/// layer scale), rebuilt when any of them has changed since it was built. Thread-safe.
public final class DerivedCache<Value>: DerivedForm, @unchecked Sendable {
    private let lock = NSLock()
    private var versions: [Int] = []
    private var cached: Value?
    private var registered = false

    public init() {}

    public func value(of parameters: [Parameter], build: () throws -> Value) rethrows -> Value {
        let current = parameters.map(\.version)
        lock.lock(); defer { lock.unlock() }
        if let cached, current == versions { return cached }
        let v = try build()
        cached = v
        versions = current
        if !registered {
            registered = true
            for p in parameters { p.register(self) }
        }
        return v
    }

    func drop() {
        lock.lock(); defer { lock.unlock() }
        cached = nil
    }
}

/// A form derived from parameters that can be dropped (it is rebuilt on next use).
protocol DerivedForm: AnyObject {
    func drop()
}
