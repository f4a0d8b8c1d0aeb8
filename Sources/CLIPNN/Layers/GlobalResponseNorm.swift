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

    /// `squareSums`: the input's Σ_hw x² per (n, c) when already known (`Ops.geluWithSquareSums`).
    public func callAsFunction(_ x: Tensor, squareSums: [Double]? = nil) throws -> Tensor {
        try OpProfiler.measure("global response norm") {
            try Ops.globalResponseNorm(x, weight: weightParameter.value, bias: biasParameter.value, eps: eps, squareSums: squareSums)
        }
    }

    /// (GELU(z), self(GELU(z))) in one pass, given the statistics `squareSums` of GELU(z) (what
    /// `Ops.geluWithSquareSums` returned in the forward).
    public func afterGelu(_ z: Tensor, squareSums: [Double]) throws -> (gelu: Tensor, output: Tensor) {
        try OpProfiler.measure("gelu + global response norm") {
            try Ops.geluThenGlobalResponseNorm(z, weight: weightParameter.value, bias: biasParameter.value, eps: eps,
                                               squareSums: squareSums)
        }
    }

    /// This GRN over `x` for the GEMM that reads its output (`Linear(…, normalizedBy:)`): its
    /// statistics now, its affine map later, where that GEMM converts its input.
    /// `squareSums`: x's Σ_hw x² per (n, c) when already known (`Ops.geluWithSquareSums`).
    public func inputNormalization(for x: Tensor, squareSums: [Double]? = nil) throws -> InputNormalization {
        try OpProfiler.measure("global response norm") {
            try Ops.globalResponseNormAffine(x, weight: weightParameter.value, bias: biasParameter.value, eps: eps,
                                             squareSums: squareSums)
        }
    }

    public func applyInPlace(_ x: inout Tensor, squareSums: [Double]? = nil) throws {
        try OpProfiler.measure("global response norm") {
            try Ops.globalResponseNormInPlace(&x, weight: weightParameter.value, bias: biasParameter.value, eps: eps,
                                              squareSums: squareSums)
        }
    }

    /// dx; or, given `geluInput` z with x = GELU(z), the gradient at z (GELU's backward fused in).
    public func backward(_ dy: Tensor, input x: Tensor, squareSums: [Double]? = nil, geluInput z: Tensor? = nil) throws -> Tensor {
        try OpProfiler.measure(z == nil ? "backward: global response norm" : "backward: global response norm + gelu") {
            try Ops.globalResponseNormBackward(dy, input: x, weight: weightParameter.value, eps: eps, squareSums: squareSums,
                                               geluInput: z, weightGrad: weightParameter.gradPointer(),
                                               biasGrad: biasParameter.gradPointer())
        }
    }
}
