import CLIPEngine
import CLIPNN

/// open_clip's `Transformer` of pre-LN `ResidualAttentionBlock`s (`resblocks.i.{ln_1,attn,ln_2,mlp.c_fc,mlp.c_proj}`),
/// shared by the ViT image tower and the text tower. LayerNorm eps 1e-5 (nn.LayerNorm's default).
public struct Transformer {
    /// Standard deviations open_clip's `CLIP.init_parameters` uses for the text tower; nil keeps
    /// PyTorch's defaults (as open_clip's VisionTransformer does).
    public struct InitStds {
        var attention: Float, projection: Float, fc: Float

        public init(width: Int, layers: Int) {
            attention = 1 / Float(width).squareRoot()
            projection = attention / Float(2 * layers).squareRoot()
            fc = 1 / Float(2 * width).squareRoot()
        }
    }

    struct Block {
        let ln1: LayerNorm, attn: MultiheadSelfAttention, ln2: LayerNorm, fc: Linear, proj: Linear

        func callAsFunction(_ x: inout Tensor, causal: Bool, activation: Activation) throws {
            try attn.accumulate(ln1(x), causal: causal, into: &x)
            try proj.accumulate(fc(ln2(x), activation: activation), into: &x)
        }
    }

    let blocks: [Block]
    public let activation: Activation

    public init(_ s: WeightScope, width: Int, layers: Int, heads: Int, mlpRatio: Double, quickGelu: Bool, initStds: InitStds?) throws {
        activation = quickGelu ? .quickGelu : .gelu
        let hidden = Int(Double(width) * mlpRatio)
        let xavier = Initializer.uniform(bound: (6 / Float(width + 3 * width)).squareRoot())
        blocks = try (0..<layers).map { i in
            let b = s.scope("resblocks").scope(i)
            let mlp = b.scope("mlp")
            return Block(
                ln1: try LayerNorm(b.scope("ln_1"), dim: width, eps: 1e-5),
                attn: try MultiheadSelfAttention(b.scope("attn"), width: width, heads: heads,
                                                 inProjInit: initStds.map { .normal(std: $0.attention) } ?? xavier,
                                                 outProjInit: initStds.map { .normal(std: $0.projection) }
                                                     ?? .uniform(bound: 1 / Float(width).squareRoot())),
                ln2: try LayerNorm(b.scope("ln_2"), dim: width, eps: 1e-5),
                fc: try Linear(mlp.scope("c_fc"), in: width, out: hidden, weightInit: initStds.map { .normal(std: $0.fc) }),
                proj: try Linear(mlp.scope("c_proj"), in: hidden, out: width, weightInit: initStds.map { .normal(std: $0.projection) }))
        }
    }

    /// x: [B, T, width], updated in place.
    public func callAsFunction(_ x: inout Tensor, causal: Bool) throws {
        for block in blocks { try block(&x, causal: causal, activation: activation) }
    }
}

/// open_clip's `VisionTransformer` (`visual.conv1`, `class_embedding`, `positional_embedding`,
/// `ln_pre`, `transformer`, `ln_post`, `proj`), token pooling.
public struct VisionTransformer: ImageEncoder {
    public let config: CLIPConfig.ViTConfig
    let conv1: PatchConv2d
    let classEmbedding: Tensor
    let positionalEmbedding: Tensor
    let lnPre: LayerNorm
    let transformer: Transformer
    let lnPost: LayerNorm
    let proj: Tensor   // [width, embed_dim], used as x @ proj

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
        proj = try s.parameter("proj", shape: [c.width, embedDim], initializer: .normal(std: scale))
    }

    public func callAsFunction(_ images: Tensor) throws -> Tensor {
        let size = config.imageSize
        guard images.rank == 4, images.shape[1] == 3, images.shape[2] == size, images.shape[3] == size else {
            throw TensorError.shapeMismatch("ViT expects images [N, 3, \(size), \(size)], got \(images.shape)")
        }
        let n = images.shape[0], width = config.width, patches = config.gridSize * config.gridSize
        let tokens = try conv1(Ops.nchwToNhwc(images))          // [N, g, g, width]
        var x = Tensor(uninitializedShape: [n, patches + 1, width])
        x.withUnsafeMutableBufferPointer { out in
            let pos = positionalEmbedding.storage.pointer, cls = classEmbedding.storage.pointer
            let src = tokens.storage.pointer
            for b in 0..<n {
                let dst = out.baseAddress! + b * (patches + 1) * width
                for c in 0..<width { dst[c] = cls[c] + pos[c] }
                for p in 0..<patches {
                    let row = dst + (p + 1) * width, inRow = src + (b * patches + p) * width, posRow = pos + (p + 1) * width
                    for c in 0..<width { row[c] = inRow[c] + posRow[c] }
                }
            }
        }
        try lnPre.applyInPlace(&x)
        try transformer(&x, causal: false)
        // ln_post is per token, so pooling the class token first gives the same result.
        var pooled = Tensor(uninitializedShape: [n, width])
        pooled.withUnsafeMutableBufferPointer { out in
            for b in 0..<n { (out.baseAddress! + b * width).update(from: x.storage.pointer + b * (patches + 1) * width, count: width) }
        }
        return try Ops.matmul(lnPost(pooled), proj)
    }
}
