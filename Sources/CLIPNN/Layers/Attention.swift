import CLIPEngine

/// `nn.MultiheadAttention` as open_clip uses it (self-attention, packed `in_proj_weight`).
public struct MultiheadSelfAttention {
    public let heads: Int
    let inProj: Linear         // packed `in_proj_weight` [3D, D] and `in_proj_bias`
    let outProj: Linear

    public init(_ scope: WeightScope, width: Int, heads: Int, inProjInit: Initializer, outProjInit: Initializer) throws {
        guard heads > 0, width % heads == 0 else {
            throw TensorError.invalidArgument("attention width \(width) is not divisible by \(heads) heads (\(scope.prefix))")
        }
        self.heads = heads
        inProj = try Linear(weight: scope.parameter("in_proj_weight", shape: [3 * width, width], initializer: inProjInit),
                            bias: scope.parameter("in_proj_bias", shape: [3 * width], initializer: .zeros))
        outProj = try Linear(scope.scope("out_proj"), in: width, out: width, weightInit: outProjInit, biasInit: .zeros)
    }

    /// residual += attention(x); x: [B, T, D].
    public func accumulate(_ x: Tensor, causal: Bool, into residual: inout Tensor) throws {
        let qkv = try inProj(x)
        let attended = try OpProfiler.measure("attention (QK^T, softmax, AV)") {
            try Ops.attention(qkv: qkv, heads: heads, causal: causal)
        }
        try outProj.accumulate(attended, into: &residual)
    }
}
