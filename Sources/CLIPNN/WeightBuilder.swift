import CLIPEngine
import Foundation

/// Why a model's weights could not be built. Every case names the open_clip key involved.
public enum WeightError: Error, CustomStringConvertible, Equatable {
    case missingKey(String, source: String)
    case unexpectedKeys([String], source: String)
    case shapeMismatch(key: String, expected: [Int], found: [Int], source: String)
    case unreadable(key: String, source: String, reason: String)
    /// A random initialisation whose scale is not a finite number (a degenerate config).
    case invalidInitializer(key: String, reason: String)

    public var description: String {
        switch self {
        case let .missingKey(k, s):
            return "\(s): missing weight '\(k)'"
        case let .unexpectedKeys(ks, s):
            let shown = ks.prefix(8).map { "'\($0)'" }.joined(separator: ", ")
            return "\(s): \(ks.count) unexpected weight(s) not used by this model: \(shown)\(ks.count > 8 ? ", …" : "")"
        case let .shapeMismatch(k, e, f, s):
            return "\(s): weight '\(k)' has shape \(f), the model expects \(e)"
        case let .unreadable(k, s, r):
            return "\(s): cannot read weight '\(k)': \(r)"
        case let .invalidInitializer(k, r):
            return "cannot initialise weight '\(k)': \(r)"
        }
    }
}

/// How a parameter is initialised when no weights are given (open_clip / timm conventions).
public enum Initializer: Sendable {
    case zeros
    case ones
    case constant(Float)
    case normal(std: Float)
    /// timm's `trunc_normal_(std=…)`: normal, redrawn outside ±2 (absolute, as timm's default a=-2, b=2).
    case truncatedNormal(std: Float)
    /// PyTorch's default for Linear/Conv weights and biases: U(-bound, bound).
    case uniform(bound: Float)
}

/// Where parameter values come from.
public protocol WeightSource: AnyObject {
    /// Human-readable origin used in error messages (a file path, or "random init").
    var sourceName: String { get }
    /// The stored tensor for `key` converted to Float32, or nil if the source has no such key.
    func tensor(forKey key: String) throws -> Tensor?
    /// All keys in the source (empty for random init).
    var allKeys: [String] { get }
}

/// A model's constructor both declares and loads its parameters through a builder, by name
/// (as candle's VarBuilder does): `builder.scope("stem").scope("0").parameter("weight", ...)`.
/// Loading is strict: missing keys, wrong shapes and (at `finish()`) unused keys are errors.
public final class WeightBuilder {
    /// Where the values come from; nil after `finish()` (the model holds its own copies, so a
    /// mapped weights file is let go).
    public private(set) var source: WeightSource?
    private var rng: SeededGenerator
    /// The declared parameters (value and gradient), keyed by open_clip's names.
    public let tree = ParameterTree()
    /// open_clip's `state_dict()`, in declaration order, in open_clip's layouts (current values).
    public var stateDict: [(key: String, tensor: Tensor)] { tree.parameters.map { ($0.key, $0.value) } }
    /// The format layers pack their GEMM weights in (the parameters themselves stay fp32).
    public let precision: Precision
    /// The model will only run inference: layers with a packed form release the fp32 values.
    public let inferenceOnly: Bool

    /// - Parameters:
    ///   - source: the weights to load, or nil for seeded random initialisation.
    ///   - precision: what `Linear`/`PatchConv2d` pack their weights as (docs/precision.md).
    ///   - inferenceOnly: mark every parameter `isInferenceOnly`, so that the packed GEMM weights
    ///     are the only resident copy (training needs the fp32 values: leave it false).
    public init(source: WeightSource?, seed: UInt64 = 0, precision: Precision = .fp32, inferenceOnly: Bool = false) {
        self.source = source
        self.rng = SeededGenerator(seed: seed)
        self.precision = precision
        self.inferenceOnly = inferenceOnly
    }

    public var root: WeightScope { WeightScope(builder: self, prefix: "") }

    func parameter(_ key: String, shape: [Int], initializer: Initializer) throws -> Parameter {
        let value: Tensor
        if let source {
            guard let t = try source.tensor(forKey: key) else {
                throw WeightError.missingKey(key, source: source.sourceName)
            }
            guard t.shape == shape else {
                throw WeightError.shapeMismatch(key: key, expected: shape, found: t.shape, source: source.sourceName)
            }
            value = t
        } else {
            value = try Self.initialise(shape: shape, initializer, rng: &rng, key: key)
        }
        let p = Parameter(key: key, value: value)
        p.isInferenceOnly = inferenceOnly
        tree.add(p)
        return p
    }

    /// Throws if the source holds weights the model never asked for; then lets the source go.
    public func finish() throws {
        guard let source else { return }
        let unused = source.allKeys.filter { tree[$0] == nil }.sorted()
        if !unused.isEmpty { throw WeightError.unexpectedKeys(unused, source: source.sourceName) }
        self.source = nil
    }

    static func initialise(shape: [Int], _ initializer: Initializer, rng: inout SeededGenerator, key: String = "") throws -> Tensor {
        switch initializer {
        case .normal(let scale), .truncatedNormal(let scale), .uniform(let scale), .constant(let scale):
            guard scale.isFinite else { throw WeightError.invalidInitializer(key: key, reason: "scale \(scale) is not finite") }
        case .zeros, .ones: break
        }
        var t = try Tensor(checkedShape: shape)
        t.withUnsafeMutableBufferPointer { buf in
            switch initializer {
            case .zeros: buf.initialize(repeating: 0)
            case .ones: buf.initialize(repeating: 1)
            case .constant(let v): buf.initialize(repeating: v)
            case .normal(let std):
                if let b = buf.baseAddress { rng.fillGaussian(b, count: buf.count, scale: std) }
            case .truncatedNormal(let std):
                for i in buf.indices {
                    var v: Float
                    repeat { v = std * rng.nextGaussian() } while abs(v) > 2
                    buf[i] = v
                }
            case .uniform(let bound):
                for i in buf.indices { buf[i] = Float.random(in: -bound...bound, using: &rng) }
            }
        }
        return t
    }
}

/// A key prefix inside a `WeightBuilder` (`visual.trunk.stages.0`).
public struct WeightScope {
    public let builder: WeightBuilder
    public let prefix: String

    /// The format the layers declared here pack their GEMM weights in (the builder's).
    public var precision: Precision { builder.precision }

    public func scope(_ name: String) -> WeightScope {
        WeightScope(builder: builder, prefix: prefix.isEmpty ? name : "\(prefix).\(name)")
    }

    public func scope(_ index: Int) -> WeightScope { scope(String(index)) }

    public func key(_ name: String) -> String { prefix.isEmpty ? name : "\(prefix).\(name)" }

    /// Declares (and loads or initialises) the parameter `prefix.name`, in open_clip's layout.
    public func parameter(_ name: String, shape: [Int], initializer: Initializer) throws -> Parameter {
        try builder.parameter(key(name), shape: shape, initializer: initializer)
    }
}

/// Weights held in memory (tests, or tensors already converted).
public final class InMemoryWeights: WeightSource {
    public let tensors: [String: Tensor]
    public let sourceName: String
    public init(_ tensors: [String: Tensor], name: String = "in-memory weights") {
        self.tensors = tensors
        self.sourceName = name
    }
    public func tensor(forKey key: String) throws -> Tensor? { tensors[key] }
    public var allKeys: [String] { Array(tensors.keys) }
}
