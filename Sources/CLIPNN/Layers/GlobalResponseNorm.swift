import CLIPEngine

/// timm's `GlobalResponseNorm` (ConvNeXt-V2), channels-last.
public struct GlobalResponseNorm {
    public let weightParameter: Parameter
    public let biasParameter: Parameter
    public let eps: Float

    public init(_ scope: WeightScope, dim: Int, eps: Float = 1e-6) throws {
        weightParameter = try scope.parameter("weight", shape: [dim], initializer: .zeros)
        biasParameter = try scope.parameter("bias", shape: [dim], initializer: .zeros)
        self.eps = eps
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try OpProfiler.measure("global response norm") {
            try Ops.globalResponseNorm(x, weight: weightParameter.value, bias: biasParameter.value, eps: eps)
        }
    }

    public func applyInPlace(_ x: inout Tensor) throws {
        try OpProfiler.measure("global response norm") {
            try Ops.globalResponseNormInPlace(&x, weight: weightParameter.value, bias: biasParameter.value, eps: eps)
        }
    }

    public func backward(_ dy: Tensor, input x: Tensor) throws -> Tensor {
        try OpProfiler.measure("backward: global response norm") {
            try Ops.globalResponseNormBackward(dy, input: x, weight: weightParameter.value, eps: eps,
                                               weightGrad: weightParameter.gradPointer(), biasGrad: biasParameter.gradPointer())
        }
    }
}
