import CLIPEngine

/// Convolution whose kernel equals its stride (ConvNeXt stem 4/4 and downsample 2/2, ViT patch
/// embedding). Declared in PyTorch's OIHW layout under open_clip's key, run as patch gather + GEMM
/// on channels-last maps.
public struct PatchConv2d {
    public let kernel: Int
    public let outChannels: Int
    let gemmWeight: PackedMatrix   // [k*k*Cin, Cout], packed
    let bias: Tensor?

    public init(_ scope: WeightScope, in inChannels: Int, out outChannels: Int, kernel: Int, bias hasBias: Bool,
                weightInit: Initializer, biasInit: Initializer = .zeros) throws {
        let w = try scope.parameter("weight", shape: [outChannels, inChannels, kernel, kernel], initializer: weightInit)
        gemmWeight = try PackedMatrix(kByN: Ops.patchConvWeight(fromOIHW: w))
        bias = hasBias ? try scope.parameter("bias", shape: [outChannels], initializer: biasInit) : nil
        self.kernel = kernel
        self.outChannels = outChannels
    }

    /// x: [N, H, W, Cin] -> [N, H/k, W/k, Cout].
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try OpProfiler.measure("patch conv (stem/downsample/patch embed)") {
            try Ops.patchConv2d(x, packed: gemmWeight, bias: bias, kernel: kernel)
        }
    }
}

/// Depthwise convolution, stride 1, "same" zero padding (ConvNeXt's 7×7 `conv_dw`).
public struct DepthwiseConv2d {
    let weight: Tensor   // [k, k, C]
    let bias: Tensor?
    public let padding: Int

    public init(_ scope: WeightScope, channels: Int, kernel: Int, bias hasBias: Bool,
                weightInit: Initializer, biasInit: Initializer = .zeros) throws {
        let w = try scope.parameter("weight", shape: [channels, 1, kernel, kernel], initializer: weightInit)
        weight = try Ops.depthwiseWeight(fromOIHW: w)
        bias = hasBias ? try scope.parameter("bias", shape: [channels], initializer: biasInit) : nil
        padding = kernel / 2
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try OpProfiler.measure("depthwise conv 7x7") {
            try Ops.depthwiseConv2d(x, weight: weight, bias: bias, padding: padding)
        }
    }
}

/// timm's `GlobalResponseNorm` (ConvNeXt-V2), channels-last.
public struct GlobalResponseNorm {
    public let weight: Tensor
    public let bias: Tensor
    public let eps: Float

    public init(_ scope: WeightScope, dim: Int, eps: Float = 1e-6) throws {
        weight = try scope.parameter("weight", shape: [dim], initializer: .zeros)
        bias = try scope.parameter("bias", shape: [dim], initializer: .zeros)
        self.eps = eps
    }

    public func applyInPlace(_ x: inout Tensor) throws {
        try OpProfiler.measure("global response norm") {
            try Ops.globalResponseNormInPlace(&x, weight: weight, bias: bias, eps: eps)
        }
    }
}
