import CLIPEngine

/// `nn.MultiheadAttention` as open_clip uses it (self-attention, packed `in_proj_weight`).
public struct MultiheadSelfAttention {
    public let heads: Int
    public let inProj: Linear         // packed `in_proj_weight` [3D, D] and `in_proj_bias`
    public let outProj: Linear

    public init(_ scope: WeightScope, width: Int, heads: Int, inProjInit: Initializer, outProjInit: Initializer) throws {
        guard heads > 0, width % heads == 0 else {
            throw TensorError.invalidArgument("attention width \(width) is not divisible by \(heads) heads (\(scope.prefix))")
        }
        self.heads = heads
        inProj = try Linear(weight: scope.parameter("in_proj_weight", shape: [3 * width, width], initializer: inProjInit),
                            bias: scope.parameter("in_proj_bias", shape: [3 * width], initializer: .zeros),
                            precision: scope.precision)
        outProj = try Linear(scope.scope("out_proj"), in: width, out: width, weightInit: outProjInit, biasInit: .zeros)
    }

    /// residual += attention(x); x: [B, T, D].
    public func accumulate(_ x: Tensor, causal: Bool, into residual: inout Tensor) throws {
        try outProj.accumulate(attended(x, causal: causal), into: &residual)
    }

    /// The heads' output before out_proj; `normalizedBy`: the normalisation x still needs, passed
    /// on to in_proj (`Linear`). With it, x may be the residual stream itself: call this, then
    /// `outProj.accumulate(_:into:)` (passing x and &x to one call would copy the stream).
    public func attended(_ x: Tensor, causal: Bool, normalizedBy normalization: InputNormalization? = nil) throws -> Tensor {
        let qkv = try inProj(x, normalizedBy: normalization)
        return try OpProfiler.measure("attention (QK^T, softmax, AV)") {
            try Ops.attention(qkv: qkv, heads: heads, causal: causal)
        }
    }

    /// What the backward needs from a training forward.
    public struct Saved {
        let input: Tensor, qkv: Tensor, attended: Tensor
    }

    /// attention(x) for training, keeping its input, qkv and the heads' output.
    public func forward(_ x: Tensor, causal: Bool) throws -> (Tensor, Saved) {
        let qkv = try inProj(x)
        let attended = try Ops.attention(qkv: qkv, heads: heads, causal: causal)
        return (try outProj(attended), Saved(input: x, qkv: qkv, attended: attended))
    }

    /// Adds the four projections' gradients; returns dx.
    public func backward(_ dy: Tensor, saved s: Saved, causal: Bool) throws -> Tensor {
        let dAttended = try outProj.backward(dy, input: s.attended).required("out_proj backward")
        let dqkv = try OpProfiler.measure("backward: attention") {
            try Ops.attentionBackward(dAttended, qkv: s.qkv, heads: heads, causal: causal)
        }
        return try inProj.backward(dqkv, input: s.input).required("in_proj backward")
    }
}
