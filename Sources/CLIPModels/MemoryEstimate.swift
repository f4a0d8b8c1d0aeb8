import CLIPEngine

/// Sums and products that report overflow as nil instead of trapping.
struct CheckedInt {
    var value: Int?
    init(_ v: Int?) { value = v }
    static func + (a: CheckedInt, b: CheckedInt) -> CheckedInt {
        guard let x = a.value, let y = b.value else { return CheckedInt(nil) }
        let (r, o) = x.addingReportingOverflow(y)
        return CheckedInt(o ? nil : r)
    }
    static func * (a: CheckedInt, b: CheckedInt) -> CheckedInt {
        guard let x = a.value, let y = b.value else { return CheckedInt(nil) }
        let (r, o) = x.multipliedReportingOverflow(by: y)
        return CheckedInt(o ? nil : r)
    }
}

extension CheckedInt: ExpressibleByIntegerLiteral {
    init(integerLiteral v: Int) { value = v }
}

/// What a model and a batch need in memory, computed from the config alone (overflow-checked), so
/// that a model too large for the machine is an error with both numbers before anything is allocated.
extension CLIPConfig {
    /// Parameters open_clip counts for the whole model (nil if the count overflows 64 bits).
    public var parameterCount: Int? { (visionParameters + textParameters + 1).value }

    /// The image tower's parameters (`visual.*`), nil on overflow.
    public var imageTowerParameters: Int? { visionParameters.value }

    /// The text tower's parameters plus `logit_scale`, as `info` counts them.
    public var textTowerParameters: Int? { (textParameters + 1).value }

    /// Bytes the weights take once built: the open_clip-layout tensors and the GEMM's packed copy.
    public static func weightBytes(parameters: Int?) -> Int? {
        (CheckedInt(parameters) * CheckedInt(2 * MemoryLayout<Float>.stride)).value
    }

    /// Peak bytes of one forward pass of the image tower over `batch` images (input, its
    /// channels-last copy and the widest block's live activations; an estimate, not a bound).
    public func imageActivationBytes(batch: Int) -> Int? {
        let s = CheckedInt(vision.imageSize), input = 2 * 3 * s * s
        let perImage: CheckedInt
        switch vision {
        case .timm(let c):
            let d0 = CheckedInt(ConvNeXtSpec.named(c.modelName)?.dims.first ?? 0), side = CheckedInt(c.imageSize / 4)
            perImage = input + 8 * side * side * d0
        case .vit(let c):
            let tokens = CheckedInt(c.gridSize) * CheckedInt(c.gridSize) + 1
            perImage = input + Self.blockActivations(tokens: tokens, width: c.width, mlpRatio: c.mlpRatio, heads: c.heads)
        }
        return (CheckedInt(batch) * perImage * CheckedInt(MemoryLayout<Float>.stride)).value
    }

    /// Peak bytes of embedding `batch` images one forward pass per image per thread
    /// (`onePassPerThread`): the batch's preprocessed pixels, and `threads` one-image passes at once
    /// (the images left over take one pass of fewer than `threads` images).
    public func imageActivationBytes(batch: Int, onePassPerThreadOn threads: Int) -> Int? {
        let s = CheckedInt(vision.imageSize)
        let pixels = CheckedInt(batch) * 3 * s * s * CheckedInt(MemoryLayout<Float>.stride)
        return (pixels + CheckedInt(imageActivationBytes(batch: max(1, min(batch, threads))))).value
    }

    /// Peak bytes of one forward pass of the text tower over `batch` rows of `length` tokens.
    public func textActivationBytes(batch: Int, length: Int) -> Int? {
        let perRow = Self.blockActivations(tokens: CheckedInt(length), width: text.width, mlpRatio: text.mlpRatio, heads: text.heads)
        return (CheckedInt(batch) * perRow * CheckedInt(MemoryLayout<Float>.stride)).value
    }

    /// Floats live inside one Transformer block per sample: x, its norm, q/k/v, attention scores, MLP hidden.
    static func blockActivations(tokens: CheckedInt, width: Int, mlpRatio: Double, heads: Int) -> CheckedInt {
        let w = CheckedInt(width), hidden = CheckedInt(Int(Double(width) * mlpRatio))
        return tokens * (6 * w + hidden) + CheckedInt(heads) * tokens * tokens
    }

    /// Throws `InsufficientMemory` when embedding `batch` images at a time, one forward pass per
    /// image per thread of the current budget (`onePassPerThread`), needs more memory than is
    /// available. `index`, `embed-image` and `classify` check it once before their first batch.
    public func requireImageEmbeddingMemory(batch: Int) throws {
        try requireMemory(parameters: 0, activations: imageActivationBytes(batch: batch, onePassPerThreadOn: Parallel.budget),
                          what: "embedding \(batch) images at a time")
    }

    /// Throws `InsufficientMemory` when the weights (and, if given, a forward pass over a batch)
    /// need more than the machine has available.
    public func requireMemory(parameters: Int?, activations: Int? = 0, what: String) throws {
        let total = CheckedInt(Self.weightBytes(parameters: parameters)) + CheckedInt(activations)
        try MemoryBudget.require(total.value, for: what)
    }

    private var visionParameters: CheckedInt {
        let e = CheckedInt(embedDim)
        switch vision {
        case .vit(let c):
            let w = CheckedInt(c.width), p = CheckedInt(c.patchSize), g = CheckedInt(c.gridSize)
            return w * 3 * p * p + w + (g * g + 1) * w + 2 * w
                + Self.transformerParameters(width: c.width, layers: c.layers, mlpRatio: c.mlpRatio) + 2 * w + w * e
        case .timm(let c):
            // An unknown timm model is refused by name when the tower is built.
            guard let spec = ConvNeXtSpec.named(c.modelName) else { return 0 }
            var n = CheckedInt(spec.dims[0]) * 16 * 3 + 3 * CheckedInt(spec.dims[0])
            for (i, (depth, dimension)) in zip(spec.depths, spec.dims).enumerated() {
                let d = CheckedInt(dimension)
                if i > 0 {
                    let prev = CheckedInt(spec.dims[i - 1])
                    n = n + 2 * prev + prev * d * 4 + d
                }
                let block = 50 * d + 2 * d + (d * 4 * d + 4 * d) + (4 * d * d + d) + (spec.isV2 ? 8 * d : d)
                n = n + CheckedInt(depth) * block
            }
            let f = CheckedInt(spec.dims.last!), bias = CheckedInt(c.projBias ? embedDim : 0)
            n = n + 2 * f
            switch c.proj {
            case "": return n + f * e + e
            case "linear": return n + f * e + bias
            case "mlp": return n + f * 2 * e + 2 * e + 2 * e * e + bias
            default: return n
            }
        }
    }

    private var textParameters: CheckedInt {
        let w = CheckedInt(text.width)
        return CheckedInt(text.vocabSize) * w + CheckedInt(text.contextLength) * w
            + Self.transformerParameters(width: text.width, layers: text.layers, mlpRatio: text.mlpRatio) + 2 * w + w * CheckedInt(embedDim)
    }

    private static func transformerParameters(width: Int, layers: Int, mlpRatio: Double) -> CheckedInt {
        let w = CheckedInt(width), h = CheckedInt(Int(Double(width) * mlpRatio))
        let block = 2 * w + (3 * w * w + 3 * w) + (w * w + w) + 2 * w + (w * h + h) + (h * w + w)
        return CheckedInt(layers) * block
    }
}
