import CLIPEngine

/// Convolution whose kernel equals its stride (ConvNeXt stem 4/4 and downsample 2/2, ViT patch
/// embedding). Declared in PyTorch's OIHW layout under open_clip's key, run as patch gather + GEMM
/// on channels-last maps; the packed GEMM form is a cache of the parameter, in the scope's precision
/// (the only resident copy in an inference-only model, as for `Linear`).
public struct PatchConv2d {
    public let kernel: Int
    public let outChannels: Int
    public let weightParameter: Parameter
    public let biasParameter: Parameter?
    public let precision: Precision
    private let packedCache = DerivedCache<PackedMatrix>()

    public init(_ scope: WeightScope, in inChannels: Int, out outChannels: Int, kernel: Int, bias hasBias: Bool,
                weightInit: Initializer, biasInit: Initializer = .zeros) throws {
        weightParameter = try scope.parameter("weight", shape: [outChannels, inChannels, kernel, kernel], initializer: weightInit)
        biasParameter = hasBias ? try scope.parameter("bias", shape: [outChannels], initializer: biasInit) : nil
        self.kernel = kernel
        self.outChannels = outChannels
        precision = scope.precision
        let packed = try packed()
        weightParameter.releaseValue { try! Ops.oihwWeight(fromPatchConv: packed.unpacked(), kernel: kernel) }
    }

    func packed() throws -> PackedMatrix {
        try packedCache.value(of: [weightParameter]) {
            try PackedMatrix(kByN: Ops.patchConvWeight(fromOIHW: weightParameter.value), precision: precision)
        }
    }

    /// x: [N, H, W, Cin] -> [N, H/k, W/k, Cout].
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let packed = try packed()
        return try OpProfiler.measure("patch conv (stem/downsample/patch embed)") {
            try Ops.patchConv2d(x, packed: packed, bias: biasParameter?.value, kernel: kernel)
        }
    }

    /// Backward of `self(x)`: adds the weight and bias gradients; returns dx when `inputGrad`.
    public func backward(_ dy: Tensor, input x: Tensor, inputGrad: Bool = true) throws -> Tensor? {
        try OpProfiler.measure("backward: patch conv") {
            try Ops.patchConv2dBackward(dy, input: x, weightOIHW: weightParameter.value, kernel: kernel,
                                        weightGrad: weightParameter.gradPointer(), biasGrad: biasParameter?.gradPointer(),
                                        inputGrad: inputGrad)
        }
    }
}

/// Depthwise convolution, stride 1, "same" zero padding (ConvNeXt's 7×7 `conv_dw`). The
/// engine's [k, k, C] weight is a cache of the OIHW parameter.
public struct DepthwiseConv2d {
    public let weightParameter: Parameter
    public let biasParameter: Parameter?
    public let padding: Int
    private let weightCache = DerivedCache<Tensor>()

    public init(_ scope: WeightScope, channels: Int, kernel: Int, bias hasBias: Bool,
                weightInit: Initializer, biasInit: Initializer = .zeros) throws {
        weightParameter = try scope.parameter("weight", shape: [channels, 1, kernel, kernel], initializer: weightInit)
        biasParameter = hasBias ? try scope.parameter("bias", shape: [channels], initializer: biasInit) : nil
        padding = kernel / 2
        _ = try weight()
    }

    func weight() throws -> Tensor {
        try weightCache.value(of: [weightParameter]) { try Ops.depthwiseWeight(fromOIHW: weightParameter.value) }
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let w = try weight()
        return try OpProfiler.measure("depthwise conv 7x7") {
            try Ops.depthwiseConv2d(x, weight: w, bias: biasParameter?.value, padding: padding)
        }
    }

    public func backward(_ dy: Tensor, input x: Tensor) throws -> Tensor {
        let w = try weight()
        return try OpProfiler.measure("backward: depthwise conv 7x7") {
            try Ops.depthwiseConv2dBackward(dy, input: x, weight: w, padding: padding,
                                            weightGrad: weightParameter.gradPointer(), biasGrad: biasParameter?.gradPointer())
                .required("depthwise conv backward")
        }
    }
}
