import CLIPEngine
import CLIPNN
import Foundation

/// open_clip's `CLIP`: an image tower (`visual.*`), the text tower (top-level keys) and `logit_scale`.
public final class CLIPModel {
    public let config: CLIPConfig
    public let visual: ImageEncoder
    public let text: TextTransformer
    /// The raw parameter (`logit_scale`, a scalar); logits use `exp(logitScale)`.
    public let logitScaleParameter: Parameter
    public var logitScale: Float { logitScaleParameter.value[flat: 0] }
    /// open_clip's `state_dict()` (open_clip layouts) — what `save` writes and `info` counts.
    public let weights: WeightBuilder
    /// Every parameter (value and gradient) by open_clip key: what optimisers walk.
    public var parameters: ParameterTree { weights.tree }

    /// Builds the model from `config`, loading `source` strictly (every key present with its exact
    /// shape, no extra keys) or, without a source, initialising as open_clip/timm do from `seed`.
    /// `convNeXt` overrides the depths/dims of a timm ConvNeXt tower's name (as timm.create_model's
    /// `depths=`/`dims=` do). `precision` is the format the GEMM weights are packed in for
    /// inference (docs/precision.md); the parameters stay fp32. An `inferenceOnly` model keeps only
    /// the packed form of its GEMM weights (about half the weight memory in fp32; what makes bf16
    /// and int8 weights take half and a quarter); reading such a parameter's `value` rebuilds it.
    public init(config: CLIPConfig, weights source: WeightSource? = nil, seed: UInt64 = 0, convNeXt spec: ConvNeXtSpec? = nil,
                precision: Precision = .fp32, inferenceOnly: Bool = false) throws {
        self.config = config
        try config.requireMemory(parameters: config.parameterCount, what: "model \(config.source) (weights)")
        let builder = WeightBuilder(source: source, seed: seed, precision: precision, inferenceOnly: inferenceOnly)
        let root = builder.root
        visual = try Self.imageTower(root.scope("visual"), config: config, convNeXt: spec)
        text = try TextTransformer(root, config: config.text, embedDim: config.embedDim, quickGelu: config.quickGelu)
        logitScaleParameter = try root.parameter("logit_scale", shape: [], initializer: .constant(Float(Foundation.log(1 / 0.07))))
        try builder.finish()
        weights = builder
    }

    /// A built-in name or JSON path, with optional weights (safetensors or a torch checkpoint, by content); or a hub folder,
    /// whose own weights file is used unless `weightsURL` names another.
    public convenience init(model nameOrPath: String, weightsURL: URL? = nil, seed: UInt64 = 0, precision: Precision = .fp32,
                            inferenceOnly: Bool = false) throws {
        let config = try ModelRegistry.config(named: nameOrPath)
        let weightsURL = try weightsURL ?? ModelRegistry.hubFolderWeights(nameOrPath)
        try self.init(config: config, weights: try weightsURL.map { try WeightFiles.open($0) }, seed: seed,
                      precision: precision, inferenceOnly: inferenceOnly)
    }

    /// The format the GEMM weights are packed in.
    public var precision: Precision { weights.precision }

    /// images: [N, 3, H, W] preprocessed -> [N, embed_dim] (open_clip's `encode_image`).
    public func encodeImage(_ images: Tensor, normalize: Bool = false) throws -> Tensor {
        let features = try visual(images)
        return normalize ? Ops.l2Normalize(features) : features
    }

    /// `encodeImage` for throughput (indexing a folder, `embed-image`, evaluation): one forward
    /// pass per image per thread (`onePassPerThread`).
    public func encodeImagePerThread(_ images: Tensor, normalize: Bool = false) throws -> Tensor {
        try onePassPerThread(images) { try encodeImage($0, normalize: normalize) }
    }

    /// tokens: rows of token ids -> [N, embed_dim] (open_clip's `encode_text`).
    public func encodeText(_ tokens: [[Int]], normalize: Bool = false) throws -> Tensor {
        let features = try text(tokens)
        return normalize ? Ops.l2Normalize(features) : features
    }

    public struct ParameterCounts: Equatable, Codable {
        public var visual: Int, text: Int, total: Int
    }

    /// As open_clip counts them (`sum(p.numel() for p in model.parameters())`); `text` is everything
    /// outside `visual.` (the text tower and `logit_scale`).
    public var parameterCounts: ParameterCounts {
        let visual = weights.parameterCount { $0.hasPrefix("visual.") }
        let total = weights.parameterCount()
        return ParameterCounts(visual: visual, text: total - visual, total: total)
    }

    /// Writes the weights as open_clip-compatible safetensors (atomic write, then rename).
    public func save(to url: URL) throws {
        try weights.save(to: url, metadata: ["format": "pt", "producer": "SwiftCLIP"])
    }
}

extension CLIPModel {
    /// One tower alone with random weights, for inference only (no text tower in memory when
    /// benchmarking the image tower, and vice versa; packed weights only), and its parameter count as open_clip counts it for that tower.
    public static func randomImageTower(config: CLIPConfig, seed: UInt64,
                                        precision: Precision = .fp32) throws -> (encoder: ImageEncoder, parameters: Int) {
        try config.requireMemory(parameters: config.imageTowerParameters, what: "image tower of \(config.source) (weights)")
        let builder = WeightBuilder(source: nil, seed: seed, precision: precision, inferenceOnly: true)
        let visual = try imageTower(builder.root.scope("visual"), config: config)
        return (visual, builder.parameterCount())
    }

    /// The image tower the config names, declared under `scope` (open_clip's `visual.*`).
    static func imageTower(_ scope: WeightScope, config: CLIPConfig, convNeXt spec: ConvNeXtSpec? = nil) throws -> ImageEncoder {
        switch config.vision {
        case .timm(let c):
            return try TimmImageTower(scope, config: c, embedDim: config.embedDim, source: config.source, spec: spec)
        case .vit(let c):
            return try VisionTransformer(scope, config: c, embedDim: config.embedDim, quickGelu: config.quickGelu)
        }
    }

    /// The text tower alone with random weights; the count includes `logit_scale` as `info` does.
    public static func randomTextTower(config: CLIPConfig, seed: UInt64,
                                       precision: Precision = .fp32) throws -> (encoder: TextTransformer, parameters: Int) {
        try config.requireMemory(parameters: config.textTowerParameters, what: "text tower of \(config.source) (weights)")
        let builder = WeightBuilder(source: nil, seed: seed, precision: precision, inferenceOnly: true)
        let text = try TextTransformer(builder.root, config: config.text, embedDim: config.embedDim, quickGelu: config.quickGelu)
        return (text, builder.parameterCount() + 1)
    }
}

extension CLIPModel {
    /// What `backward` needs from `forwardForTraining`.
    public struct Saved {
        let image: SavedActivations?
        let text: TextTransformer.Saved?
    }

    /// The training forward of both towers (unnormalised features, as `encodeImage`/`encodeText`
    /// return them), keeping what the backward needs; `rng` draws stochastic depth (timm towers). A tower whose parameters are all frozen
    /// runs its inference path and keeps nothing.
    /// `checkpointing` is open_clip's `--grad-checkpointing` (every block of both towers).
    public func forwardForTraining(images: Tensor, tokens: [[Int]], checkpointing: Bool = false,
                                   rng: inout SeededGenerator) throws -> (image: Tensor, text: Tensor, saved: Saved) {
        let imageFrozen = parameters.parameters(under: "visual.").allSatisfy(\.isFrozen)
        let textFrozen = parameters.parameters.filter { !$0.key.hasPrefix("visual.") && $0.key != "logit_scale" }.allSatisfy(\.isFrozen)
        var image: Tensor, imageSaved: SavedActivations? = nil
        if imageFrozen { image = try visual(images) } else { (image, imageSaved) = try visual.forwardForTraining(images, checkpointing: checkpointing, rng: &rng) }
        var text: Tensor, textSaved: TextTransformer.Saved? = nil
        if textFrozen { text = try self.text(tokens) } else { (text, textSaved) = try self.text.forwardForTraining(tokens, checkpointing: checkpointing) }
        return (image, text, Saved(image: imageSaved, text: textSaved))
    }

    /// Adds every (unfrozen) parameter's gradient, given ∂loss/∂features of both towers. The text
    /// tower goes first; `afterText` runs once its gradients are final (data-parallel training
    /// starts their allreduce there, while the image tower's backward runs).
    public func backward(image dImage: Tensor, text dText: Tensor, saved: Saved, afterText: (() throws -> Void)? = nil) throws {
        if let s = saved.text { try text.backward(dText, saved: s) }
        try afterText?()
        if let s = saved.image { try visual.backward(dImage, saved: s) }
    }
}

extension CLIPModel {
    /// The parameters in open_clip's `named_parameters()` (= `state_dict()`) order, which is what
    /// torch's optimizer state indexes: per module, its own parameters first, then its children;
    /// `CLIP` registers `visual`, `transformer`, `token_embedding`, `ln_final` in that order.
    /// (SwiftCLIP declares in build order; the keys are the same, the order differs.)
    public var openCLIPParameterOrder: [Parameter] {
        func order(_ items: [(path: ArraySlice<Substring>, parameter: Parameter)], childRank: [Substring: Int]) -> [Parameter] {
            var own: [Parameter] = []
            var children: [(name: Substring, items: [(path: ArraySlice<Substring>, parameter: Parameter)])] = []
            var slot: [Substring: Int] = [:]
            for item in items {
                guard item.path.count > 1, let head = item.path.first else { own.append(item.parameter); continue }
                if slot[head] == nil { slot[head] = children.count; children.append((head, [])) }
                children[slot[head]!].items.append((item.path.dropFirst(), item.parameter))
            }
            let ranked = children.enumerated().sorted {
                (childRank[$0.element.name] ?? Int.max, $0.offset) < (childRank[$1.element.name] ?? Int.max, $1.offset)
            }
            return own + ranked.flatMap { order($0.element.items, childRank: [:]) }
        }
        let items = parameters.parameters.map { (path: $0.key.split(separator: ".")[...], parameter: $0) }
        return order(items, childRank: ["visual": 0, "transformer": 1, "token_embedding": 2, "ln_final": 3])
    }
}

/// `forward` over the images [N, …] for throughput: each image runs its whole forward pass on one
/// thread, the threads claiming the next image as they finish, instead of every layer of one
/// batched pass being split across the threads. One image on one thread runs at the per-image
/// speed of a larger batch, and nothing waits at the end of each of a pass's hundreds of parallel
/// regions for a thread that lost its core — to a decoding thread beside the model or to another
/// process (docs/search.md, "One pass per thread"). The images left after a whole number per
/// thread run as one ordinary pass over all threads. Rows equal the batched pass's within
/// rounding (a one-thread pass may sum some products in another order); `forward` must map
/// images to rows independently of each other, as the image towers do.
public func onePassPerThread(_ images: Tensor, _ forward: (Tensor) throws -> Tensor) throws -> Tensor {
    let n = images.shape.first ?? 0, threads = min(Parallel.budget, n)
    guard threads > 1 else { return try forward(images) }
    let spread = n - n % threads
    final class Rows: @unchecked Sendable {
        let lock = NSLock()
        var rows: [Tensor?]
        var error: Error?
        init(_ n: Int) { rows = Array(repeating: nil, count: n) }
    }
    let results = Rows(spread)
    Parallel.run(spread, threads: threads) { i in
        do {
            let row = try forward(images.slice(rows: i..<(i + 1)))
            results.lock.withLock { results.rows[i] = row }
        } catch {
            results.lock.withLock { if results.error == nil { results.error = error } }
        }
    }
    if let error = results.error { throw error }
    var parts = results.rows.compactMap { $0 }
    if spread < n { parts.append(try forward(images.slice(rows: spread..<n))) }
    return try Tensor.concatenate(rows: parts)
}
