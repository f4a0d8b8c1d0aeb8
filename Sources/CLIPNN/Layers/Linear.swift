import CLIPEngine

/// `nn.Linear`: weight [out, in] (PyTorch layout, used as-is with a transposed GEMM), optional bias.
/// A 1×1 `nn.Conv2d` on a channels-last map is the same computation; `storedAs1x1Conv` declares
/// the weight as [out, in, 1, 1], the shape timm's `conv_mlp` ConvNeXts save.
public struct Linear {
    public let weight: Tensor
    public let bias: Tensor?
    /// The weight packed for the engine's GEMM (done once, here).
    let packed: PackedMatrix

    public var inFeatures: Int { weight.shape[1] }
    public var outFeatures: Int { weight.shape[0] }

    /// PyTorch's default init (uniform ±1/sqrt(in)) unless the model says otherwise.
    public init(_ scope: WeightScope, in inFeatures: Int, out outFeatures: Int, bias hasBias: Bool = true,
                weightInit: Initializer? = nil, biasInit: Initializer? = nil, storedAs1x1Conv: Bool = false) throws {
        let bound = 1 / Float(inFeatures).squareRoot()
        let stored = try scope.parameter("weight", shape: [outFeatures, inFeatures] + (storedAs1x1Conv ? [1, 1] : []),
                                         initializer: weightInit ?? .uniform(bound: bound))
        weight = try stored.reshaped([outFeatures, inFeatures])
        packed = try PackedMatrix(linearWeight: weight)
        bias = hasBias ? try scope.parameter("bias", shape: [outFeatures], initializer: biasInit ?? .uniform(bound: bound)) : nil
    }

    public func callAsFunction(_ x: Tensor, activation: Activation = .none) throws -> Tensor {
        try OpProfiler.measure("linear (GEMM + bias/activation)") {
            try Ops.linear(x, packed: packed, bias: bias, activation: activation)
        }
    }

    /// residual += self(x): the last layer of a residual branch, added in the GEMM's output pass.
    public func accumulate(_ x: Tensor, into residual: inout Tensor) throws {
        try OpProfiler.measure("linear (GEMM + bias/activation)") {
            try Ops.linearAccumulate(x, packed: packed, bias: bias, into: &residual)
        }
    }
}

/// `nn.LayerNorm` over the last dimension.
public struct LayerNorm {
    public let weight: Tensor
    public let bias: Tensor
    public let eps: Float

    public init(_ scope: WeightScope, dim: Int, eps: Float) throws {
        weight = try scope.parameter("weight", shape: [dim], initializer: .ones)
        bias = try scope.parameter("bias", shape: [dim], initializer: .zeros)
        self.eps = eps
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try OpProfiler.measure("layer norm") { try Ops.layerNorm(x, weight: weight, bias: bias, eps: eps) }
    }

    public func applyInPlace(_ x: inout Tensor) throws {
        try OpProfiler.measure("layer norm") { try Ops.layerNormInPlace(&x, weight: weight, bias: bias, eps: eps) }
    }
}

extension Linear {
    /// The same layer with output row i scaled by `scale[i]` (folds a following per-channel scale,
    /// such as ConvNeXt's layer scale, into the weights at load time).
    public func scaledRows(by scale: Tensor) throws -> Linear {
        guard scale.shape == [outFeatures] else {
            throw TensorError.shapeMismatch("row scale \(scale.shape) for Linear with \(outFeatures) outputs")
        }
        var w = weight
        let inF = inFeatures
        w.withUnsafeMutableBufferPointer { buf in
            for o in 0..<outFeatures { for i in 0..<inF { buf[o * inF + i] *= scale[flat: o] } }
        }
        var b = bias
        if b != nil {
            b!.withUnsafeMutableBufferPointer { buf in for o in 0..<outFeatures { buf[o] *= scale[flat: o] } }
        }
        return try Linear(weight: w, bias: b)
    }

    init(weight: Tensor, bias: Tensor?) throws {
        self.weight = weight
        self.bias = bias
        packed = try PackedMatrix(linearWeight: weight)
    }
}
