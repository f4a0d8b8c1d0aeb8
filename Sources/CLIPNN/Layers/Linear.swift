import CLIPEngine

/// `nn.Linear`: weight [out, in] (PyTorch layout), optional bias. A 1×1 `nn.Conv2d` on a
/// channels-last map is the same computation; `storedAs1x1Conv` declares the weight as
/// [out, in, 1, 1], the shape timm's `conv_mlp` ConvNeXts save. The packed GEMM form is a cache of
/// the parameter, rebuilt after the value changes, in the scope's `precision` (the parameter
/// stays fp32: training, saving and export read it). In an inference-only model the packed form
/// is the only resident copy: the fp32 value is released and rebuilt from it when read.
public struct Linear {
    public let weightParameter: Parameter
    public let biasParameter: Parameter?
    public let inFeatures: Int
    public let outFeatures: Int
    /// The format of the packed weight the forward pass multiplies by.
    public let precision: Precision
    private let packedCache = DerivedCache<PackedMatrix>()

    /// PyTorch's default init (uniform ±1/sqrt(in)) unless the model says otherwise.
    public init(_ scope: WeightScope, in inFeatures: Int, out outFeatures: Int, bias hasBias: Bool = true,
                weightInit: Initializer? = nil, biasInit: Initializer? = nil, storedAs1x1Conv: Bool = false,
                foldedByOwner: Bool = false) throws {
        let bound = 1 / Float(inFeatures).squareRoot()
        let w = try scope.parameter("weight", shape: [outFeatures, inFeatures] + (storedAs1x1Conv ? [1, 1] : []),
                                    initializer: weightInit ?? .uniform(bound: bound))
        let b = hasBias ? try scope.parameter("bias", shape: [outFeatures], initializer: biasInit ?? .uniform(bound: bound)) : nil
        try self.init(weight: w, bias: b, precision: scope.precision, foldedByOwner: foldedByOwner)
    }

    /// A layer over already declared parameters (attention's packed `in_proj_weight`).
    /// `foldedByOwner`: the owner multiplies by its own derived form of the weight (V1's fc2 with
    /// the layer scale folded in), so this layer neither packs it nor releases it.
    public init(weight: Parameter, bias: Parameter?, precision: Precision = .fp32, foldedByOwner: Bool = false) throws {
        guard weight.shape.count >= 2, weight.shape.dropFirst(2).allSatisfy({ $0 == 1 }) else {
            throw TensorError.shapeMismatch("Linear weight '\(weight.key)' has shape \(weight.shape) (need [out, in] or [out, in, 1, 1])")
        }
        if let bias, bias.shape != [weight.shape[0]] {
            throw TensorError.shapeMismatch("Linear bias '\(bias.key)' has shape \(bias.shape) for weight \(weight.shape)")
        }
        weightParameter = weight
        biasParameter = bias
        outFeatures = weight.shape[0]
        inFeatures = weight.shape[1]
        self.precision = precision
        if !foldedByOwner {
            let packed = try packed()
            let shape = weight.shape
            weight.releaseValue { try! packed.unpacked(transposed: true).reshaped(shape) }
        }
    }

    /// The weight as [out, in] (a view of the parameter's value).
    public var weight: Tensor { (try? weightParameter.value.reshaped([outFeatures, inFeatures])) ?? weightParameter.value }
    public var bias: Tensor? { biasParameter?.value }

    func packed() throws -> PackedMatrix {
        try packedCache.value(of: [weightParameter]) { try PackedMatrix(linearWeight: weight, precision: precision) }
    }

    /// `normalizedBy`: the normalisation x still needs (`Ops.linear`), fused where the GEMM converts x.
    public func callAsFunction(_ x: Tensor, activation: Activation = .none,
                               normalizedBy normalization: InputNormalization? = nil) throws -> Tensor {
        let packed = try packed()
        return try OpProfiler.measure("linear (GEMM + bias/activation)") {
            try Ops.linear(x, packed: packed, bias: bias, activation: activation, normalizedBy: normalization)
        }
    }

    /// residual += self(x): the last layer of a residual branch, added in the GEMM's output pass.
    public func accumulate(_ x: Tensor, into residual: inout Tensor, normalizedBy normalization: InputNormalization? = nil) throws {
        let packed = try packed()
        try OpProfiler.measure("linear (GEMM + bias/activation)") {
            try Ops.linearAccumulate(x, packed: packed, bias: bias, into: &residual, normalizedBy: normalization)
        }
    }


    /// Backward of `self(x)` (no activation): adds the weight and bias gradients, returns dx
    /// (nil when `inputGrad` is false).
    public func backward(_ dy: Tensor, input x: Tensor, inputGrad: Bool = true) throws -> Tensor? {
        try OpProfiler.measure("backward: linear") {
            try Ops.linearBackward(dy, input: x, weight: weight, weightGrad: weightParameter.gradPointer(),
                                   biasGrad: biasParameter?.gradPointer(), inputGrad: inputGrad, precision: precision)
        }
    }
}

/// A fixed matrix product x · W with W [in, out] stored as-is (open_clip's `text_projection`,
/// the ViT's `proj`).
public struct Projection {
    public let parameter: Parameter

    public init(_ parameter: Parameter) throws {
        guard parameter.shape.count == 2 else {
            throw TensorError.shapeMismatch("projection '\(parameter.key)' has shape \(parameter.shape) (need [in, out])")
        }
        self.parameter = parameter
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor { try Ops.matmul(x, parameter.value) }

    public func backward(_ dy: Tensor, input x: Tensor) throws -> Tensor {
        guard let dx = try Ops.matmulBackward(dy, input: x, weight: parameter.value, weightGrad: parameter.gradPointer()) else {
            throw TensorError.invalidArgument("projection backward produced no input gradient")
        }
        return dx
    }
}

extension Optional where Wrapped == Tensor {
    /// The input gradient a backward call was asked for (it is nil only when not requested).
    public func required(_ what: String) throws -> Tensor {
        guard let t = self else { throw TensorError.invalidArgument("\(what): no input gradient computed") }
        return t
    }
}
