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
            if fc.precision.fusesInputNormalization {
                // bf16: ln_1 and ln_2 run inside in_proj's and c_fc's conversion of their input.
                let attended = try attn.attended(x, causal: causal, normalizedBy: ln1.inputNormalization)
                try attn.outProj.accumulate(attended, into: &x)
                let hidden = try fc(x, activation: activation, normalizedBy: ln2.inputNormalization)
                try proj.accumulate(hidden, into: &x)
            } else {
                try attn.accumulate(ln1(x), causal: causal, into: &x)
                try proj.accumulate(fc(ln2(x), activation: activation), into: &x)
            }
        }

        /// The block input, attention's saved tensors, the mid residual and c_fc's pre-activation;
        /// ln_2's output and the activation are recomputed in backward (element-wise). A
        /// checkpointed block (`--grad-checkpointing`) keeps its input alone and reruns its forward.
        struct Saved {
            let x0: Tensor
            let intermediates: (attn: MultiheadSelfAttention.Saved, x1: Tensor, z: Tensor)?
        }

        func forward(_ x0: Tensor, causal: Bool, activation: Activation, keep: Bool = true) throws -> (Tensor, Saved) {
            let (a, attnSaved) = try attn.forward(ln1(x0), causal: causal)
            var x1 = x0
            try Ops.accumulate(&x1, a)
            let z = try fc(ln2(x1))
            var x2 = x1
            try proj.accumulate(Ops.activation(z, activation), into: &x2)
            return (x2, Saved(x0: x0, intermediates: keep ? (attnSaved, x1, z) : nil))
        }

        func backward(_ dOut: Tensor, saved s: Saved, causal: Bool, activation: Activation) throws -> Tensor {
            guard let (attnSaved, x1, z) = s.intermediates else {
                return try backward(dOut, saved: forward(s.x0, causal: causal, activation: activation).1, causal: causal, activation: activation)
            }
            var d = try proj.backward(dOut, input: Ops.activation(z, activation)).required("c_proj backward")
            d = try Ops.activationBackward(d, preActivation: z, activation)
            d = try fc.backward(d, input: ln2(x1)).required("c_fc backward")
            var dx1 = try ln2.backward(d, input: x1)
            try Ops.accumulate(&dx1, dOut)
            let dNormed1 = try attn.backward(dx1, saved: attnSaved, causal: causal)
            var dx0 = try ln1.backward(dNormed1, input: s.x0)
            try Ops.accumulate(&dx0, dx1)
            return dx0
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

    struct Saved { let blocks: [Block.Saved] }

    func forward(_ x: Tensor, causal: Bool, checkpointing: Bool = false) throws -> (Tensor, Saved) {
        var x = x
        var kept: [Block.Saved] = []
        for block in blocks {
            let (y, s) = try block.forward(x, causal: causal, activation: activation, keep: !checkpointing)
            kept.append(s)
            x = y
        }
        return (x, Saved(blocks: kept))
    }

    func backward(_ dOut: Tensor, saved s: Saved, causal: Bool) throws -> Tensor {
        var d = dOut
        for (i, block) in blocks.enumerated().reversed() {
            d = try block.backward(d, saved: s.blocks[i], causal: causal, activation: activation)
        }
        return d
    }
}
