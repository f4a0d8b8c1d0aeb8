import CLIPEngine
import CLIPNN

/// open_clip's `VisionTransformer` (`visual.conv1`, `class_embedding`, `positional_embedding`,
/// `ln_pre`, `transformer`, `ln_post`, `proj`), token pooling.
public struct VisionTransformer: ImageEncoder {
    public let config: CLIPConfig.ViTConfig
    let conv1: PatchConv2d
    let classEmbedding: Parameter
    let positionalEmbedding: Parameter
    let lnPre: LayerNorm
    let transformer: Transformer
    let lnPost: LayerNorm
    let proj: Projection   // [width, embed_dim], used as x @ proj

    public init(_ s: WeightScope, config c: CLIPConfig.ViTConfig, embedDim: Int, quickGelu: Bool) throws {
        config = c
        let scale = 1 / Float(c.width).squareRoot()
        conv1 = try PatchConv2d(s.scope("conv1"), in: 3, out: c.width, kernel: c.patchSize, bias: false,
                                weightInit: .uniform(bound: 1 / Float(3 * c.patchSize * c.patchSize).squareRoot()))
        classEmbedding = try s.parameter("class_embedding", shape: [c.width], initializer: .normal(std: scale))
        positionalEmbedding = try s.parameter("positional_embedding", shape: [c.gridSize * c.gridSize + 1, c.width],
                                              initializer: .normal(std: scale))
        lnPre = try LayerNorm(s.scope("ln_pre"), dim: c.width, eps: 1e-5)
        transformer = try Transformer(s.scope("transformer"), width: c.width, layers: c.layers, heads: c.heads,
                                      mlpRatio: c.mlpRatio, quickGelu: quickGelu, initStds: nil)
        lnPost = try LayerNorm(s.scope("ln_post"), dim: c.width, eps: 1e-5)
        proj = try Projection(s.parameter("proj", shape: [c.width, embedDim], initializer: .normal(std: scale)))
    }

    func checkInput(_ images: Tensor) throws {
        let size = config.imageSize
        guard images.rank == 4, images.shape[1] == 3, images.shape[2] == size, images.shape[3] == size else {
            throw TensorError.shapeMismatch("ViT expects images [N, 3, \(size), \(size)], got \(images.shape)")
        }
    }

    /// [N, 3, S, S] → class token + positional, [N, patches + 1, width] (before ln_pre).
    func embed(_ nhwc: Tensor) throws -> Tensor {
        let n = nhwc.shape[0], patches = config.gridSize * config.gridSize
        let tokens = try conv1(nhwc).reshaped([n, patches, config.width])
        return try Ops.prependClassToken(tokens, classEmbedding: classEmbedding.value, positional: positionalEmbedding.value)
    }

    public func callAsFunction(_ images: Tensor) throws -> Tensor {
        try checkInput(images)
        var x = try embed(Ops.nchwToNhwc(images))
        try lnPre.applyInPlace(&x)
        try transformer(&x, causal: false)
        // ln_post is per token, so pooling the class token first gives the same result.
        let pooled = try Ops.gatherRows(x, indices: Array(repeating: 0, count: x.shape[0]))
        return try proj(lnPost(pooled))
    }

    struct Saved {
        let nhwc: Tensor, embedded: Tensor, transformer: Transformer.Saved, tokens: Int, pooled: Tensor, normed: Tensor
    }

    /// open_clip's VisionTransformer has no stochastic depth: `rng` is unused.
    public func forwardForTraining(_ images: Tensor, checkpointing: Bool, rng: inout SeededGenerator) throws -> (output: Tensor, saved: SavedActivations) {
        try checkInput(images)
        let nhwc = try Ops.nchwToNhwc(images)
        let embedded = try embed(nhwc)
        let (x, tSaved) = try transformer.forward(lnPre(embedded), causal: false, checkpointing: checkpointing)
        let pooled = try Ops.gatherRows(x, indices: Array(repeating: 0, count: x.shape[0]))
        let normed = try lnPost(pooled)
        let out = try proj(normed)
        return (out, SavedActivations(tower: "VisionTransformer",
                                      value: Saved(nhwc: nhwc, embedded: embedded, transformer: tSaved, tokens: x.shape[1],
                                                   pooled: pooled, normed: normed)))
    }

    public func backward(_ dOutput: Tensor, saved: SavedActivations) throws {
        let s = try saved.get(Saved.self)
        var d = try proj.backward(dOutput, input: s.normed)
        d = try lnPost.backward(d, input: s.pooled)
        d = try Ops.gatherRowsBackward(d, indices: Array(repeating: 0, count: d.shape[0]), sequenceLength: s.tokens)
        d = try transformer.backward(d, saved: s.transformer, causal: false)
        d = try lnPre.backward(d, input: s.embedded)
        let dTokens = try Ops.prependClassTokenBackward(d, classGrad: classEmbedding.gradPointer(),
                                                        positionalGrad: positionalEmbedding.gradPointer())
        let g = config.gridSize
        _ = try conv1.backward(dTokens.reshaped([s.nhwc.shape[0], g, g, config.width]), input: s.nhwc, inputGrad: false)
    }
}
