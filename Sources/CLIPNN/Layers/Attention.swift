import CLIPEngine

/// `nn.MultiheadAttention` as open_clip uses it (self-attention, packed `in_proj_weight`).
public struct MultiheadSelfAttention {
    public let heads: Int
    let inProjWeight: Tensor   // [3D, D]
    let inProjBias: Tensor     // [3D]
    let outProj: Linear

    public init(_ scope: WeightScope, width: Int, heads: Int, inProjInit: Initializer, outProjInit: Initializer) throws {
        guard heads > 0, width % heads == 0 else {
            throw TensorError.invalidArgument("attention width \(width) is not divisible by \(heads) heads (\(scope.prefix))")
        }
        self.heads = heads
        inProjWeight = try scope.parameter("in_proj_weight", shape: [3 * width, width], initializer: inProjInit)
        inProjBias = try scope.parameter("in_proj_bias", shape: [3 * width], initializer: .zeros)
        outProj = try Linear(scope.scope("out_proj"), in: width, out: width, weightInit: outProjInit, biasInit: .zeros)
    }

    /// x: [B, T, D] -> [B, T, D].
    public func callAsFunction(_ x: Tensor, causal: Bool) throws -> Tensor {
        let qkv = try OpProfiler.measure("linear (GEMM + bias/activation)") {
            try Ops.linear(x, weight: inProjWeight, bias: inProjBias)
        }
        let attended = try OpProfiler.measure("attention (QK^T, softmax, AV)") {
            try Ops.attention(qkv: qkv, heads: heads, causal: causal)
        }
        return try outProj(attended)
    }
}
