import CLIPEngine
import CLIPNN

/// open_clip's text tower: `token_embedding`, `positional_embedding`, causal `transformer`,
/// `ln_final`, pooling at the end-of-text token (argmax of the ids), `text_projection`.
public struct TextTransformer {
    public let config: CLIPConfig.TextConfig
    let tokenEmbedding: Tensor       // [vocab, width]
    let positionalEmbedding: Tensor  // [context, width]
    let transformer: Transformer
    let lnFinal: LayerNorm
    let textProjection: Tensor       // [width, embed_dim]

    public init(_ s: WeightScope, config c: CLIPConfig.TextConfig, embedDim: Int, quickGelu: Bool) throws {
        config = c
        tokenEmbedding = try s.scope("token_embedding").parameter("weight", shape: [c.vocabSize, c.width], initializer: .normal(std: 0.02))
        positionalEmbedding = try s.parameter("positional_embedding", shape: [c.contextLength, c.width], initializer: .normal(std: 0.01))
        transformer = try Transformer(s.scope("transformer"), width: c.width, layers: c.layers, heads: c.heads, mlpRatio: c.mlpRatio,
                                      quickGelu: quickGelu, initStds: .init(width: c.width, layers: c.layers))
        lnFinal = try LayerNorm(s.scope("ln_final"), dim: c.width, eps: 1e-5)
        textProjection = try s.parameter("text_projection", shape: [c.width, embedDim], initializer: .normal(std: 1 / Float(c.width).squareRoot()))
    }

    /// tokens: N rows of equal length ≤ context_length -> [N, embed_dim].
    public func callAsFunction(_ tokens: [[Int]]) throws -> Tensor {
        guard let length = tokens.first?.count, length > 0 else {
            throw TensorError.invalidArgument("no tokens to encode")
        }
        guard tokens.allSatisfy({ $0.count == length }), length <= config.contextLength else {
            throw TensorError.shapeMismatch("token rows must all have the same length ≤ context_length \(config.contextLength)")
        }
        let n = tokens.count, width = config.width
        // Pool at the first maximum id (the end-of-text token). The mask is causal, so positions after
        // the last pooled one never influence the result: run only up to it.
        let eot = tokens.map { row in row.indices.max { row[$0] < row[$1] || (row[$0] == row[$1] && $0 > $1) }! }
        let used = eot.max()! + 1
        var x = try Ops.embedding(tokenEmbedding, ids: tokens.flatMap { $0.prefix(used) })
        x = try x.reshaped([n, used, width])
        x.withUnsafeMutableBufferPointer { buf in
            let pos = positionalEmbedding.storage.pointer
            for b in 0..<n { for i in 0..<used * width { buf[b * used * width + i] += pos[i] } }
        }
        try transformer(&x, causal: true)
        var pooled = Tensor(uninitializedShape: [n, width])
        pooled.withUnsafeMutableBufferPointer { out in
            for b in 0..<n { (out.baseAddress! + b * width).update(from: x.storage.pointer + (b * used + eot[b]) * width, count: width) }
        }
        // ln_final is per token: applying it after pooling is the same.
        return try Ops.matmul(lnFinal(pooled), textProjection)
    }
}
