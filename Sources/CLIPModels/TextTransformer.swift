import CLIPEngine
import CLIPNN

/// open_clip's text tower: `token_embedding`, `positional_embedding`, causal `transformer`,
/// `ln_final`, pooling at the end-of-text token (argmax of the ids), `text_projection`.
public struct TextTransformer {
    public let config: CLIPConfig.TextConfig
    let tokenEmbedding: Parameter       // [vocab, width]
    let positionalEmbedding: Parameter  // [context, width]
    let transformer: Transformer
    let lnFinal: LayerNorm
    let textProjection: Projection      // [width, embed_dim]

    public init(_ s: WeightScope, config c: CLIPConfig.TextConfig, embedDim: Int, quickGelu: Bool) throws {
        config = c
        tokenEmbedding = try s.scope("token_embedding").parameter("weight", shape: [c.vocabSize, c.width], initializer: .normal(std: 0.02))
        positionalEmbedding = try s.parameter("positional_embedding", shape: [c.contextLength, c.width], initializer: .normal(std: 0.01))
        transformer = try Transformer(s.scope("transformer"), width: c.width, layers: c.layers, heads: c.heads, mlpRatio: c.mlpRatio,
                                      quickGelu: quickGelu, initStds: .init(width: c.width, layers: c.layers))
        lnFinal = try LayerNorm(s.scope("ln_final"), dim: c.width, eps: 1e-5)
        textProjection = try Projection(s.parameter("text_projection", shape: [c.width, embedDim],
                                                    initializer: .normal(std: 1 / Float(c.width).squareRoot())))
    }

    /// Validated ids: the end-of-text position of each row (first maximum id) and the prefix
    /// length the causal mask lets us stop at (positions after the last pooled one never
    /// influence the result).
    func plan(_ tokens: [[Int]]) throws -> (eot: [Int], used: Int, ids: [Int]) {
        guard let length = tokens.first?.count, length > 0 else {
            throw TensorError.invalidArgument("no tokens to encode")
        }
        guard tokens.allSatisfy({ $0.count == length }), length <= config.contextLength else {
            throw TensorError.shapeMismatch("token rows must all have the same length ≤ context_length \(config.contextLength)")
        }
        var eot: [Int] = []
        for row in tokens {
            var best = 0
            for i in row.indices where row[i] > row[best] { best = i }
            eot.append(best)
        }
        let used = (eot.max() ?? 0) + 1
        return (eot, used, tokens.flatMap { $0.prefix(used) })
    }

    func embed(_ ids: [Int], rows n: Int, used: Int) throws -> Tensor {
        var x = try Ops.embedding(tokenEmbedding.value, ids: ids).reshaped([n, used, config.width])
        try Ops.addPositional(&x, positionalEmbedding.value)
        return x
    }

    /// tokens: N rows of equal length ≤ context_length -> [N, embed_dim].
    public func callAsFunction(_ tokens: [[Int]]) throws -> Tensor {
        let (eot, used, ids) = try plan(tokens)
        var x = try embed(ids, rows: tokens.count, used: used)
        try transformer(&x, causal: true)
        // ln_final is per token: applying it after pooling is the same.
        return try textProjection(lnFinal(Ops.gatherRows(x, indices: eot)))
    }

    public struct Saved {
        let ids: [Int], eot: [Int], used: Int, transformer: Transformer.Saved, pooled: Tensor, normed: Tensor
    }

    /// Training forward: the features and what `backward` needs.
    /// `checkpointing`: keep only each block's input, recompute the block in backward.
    public func forwardForTraining(_ tokens: [[Int]], checkpointing: Bool = false) throws -> (output: Tensor, saved: Saved) {
        let (eot, used, ids) = try plan(tokens)
        let (x, tSaved) = try transformer.forward(embed(ids, rows: tokens.count, used: used), causal: true, checkpointing: checkpointing)
        let pooled = try Ops.gatherRows(x, indices: eot)
        let normed = try lnFinal(pooled)
        return (try textProjection(normed), Saved(ids: ids, eot: eot, used: used, transformer: tSaved, pooled: pooled, normed: normed))
    }

    /// Adds every text-tower parameter's gradient for dOutput = ∂loss/∂features.
    public func backward(_ dOutput: Tensor, saved s: Saved) throws {
        var d = try textProjection.backward(dOutput, input: s.normed)
        d = try lnFinal.backward(d, input: s.pooled)
        d = try Ops.gatherRowsBackward(d, indices: s.eot, sequenceLength: s.used)
        d = try transformer.backward(d, saved: s.transformer, causal: true)
        if let g = positionalEmbedding.gradPointer() { try Ops.addPositionalBackward(d, tableGrad: g) }
        if let g = tokenEmbedding.gradPointer() {
            try Ops.embeddingBackward(d, ids: s.ids, vocabulary: config.vocabSize, tableGrad: g)
        }
    }
}
