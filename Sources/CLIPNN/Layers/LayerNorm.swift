import CLIPEngine

/// `nn.LayerNorm` over the last dimension.
public struct LayerNorm {
    public let weightParameter: Parameter
    public let biasParameter: Parameter
    public let eps: Float

    public init(_ scope: WeightScope, dim: Int, eps: Float) throws {
        weightParameter = try scope.parameter("weight", shape: [dim], initializer: .ones)
        biasParameter = try scope.parameter("bias", shape: [dim], initializer: .zeros)
        self.eps = eps
    }

    public var weight: Tensor { weightParameter.value }
    public var bias: Tensor { biasParameter.value }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try OpProfiler.measure("layer norm") { try Ops.layerNorm(x, weight: weight, bias: bias, eps: eps) }
    }

    /// This LayerNorm for the GEMM that reads its output (`Linear(…, normalizedBy:)`).
    public var inputNormalization: InputNormalization { .layerNorm(weight: weight, bias: bias, eps: eps) }

    public func applyInPlace(_ x: inout Tensor) throws {
        try OpProfiler.measure("layer norm") { try Ops.layerNormInPlace(&x, weight: weight, bias: bias, eps: eps) }
    }

    /// Backward of `self(x)`: adds dγ, dβ; returns dx.
    public func backward(_ dy: Tensor, input x: Tensor) throws -> Tensor {
        try OpProfiler.measure("backward: layer norm") {
            try Ops.layerNormBackward(dy, input: x, weight: weight, eps: eps,
                                      weightGrad: weightParameter.gradPointer(), biasGrad: biasParameter.gradPointer())
        }
    }
}
