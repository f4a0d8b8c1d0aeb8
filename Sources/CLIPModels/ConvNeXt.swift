import CLIPEngine
import CLIPNN

/// An image tower: preprocessed images [N, 3, H, W] (channels-first, as open_clip takes them) in,
/// embeddings [N, embed_dim] out.
public protocol ImageEncoder {
    func callAsFunction(_ images: Tensor) throws -> Tensor
}

/// timm's ConvNeXt (V1 and V2) trunk, run channels-last. Keys follow timm: `stem.0`, `stem.1`,
/// `stages.i.downsample.{0,1}`, `stages.i.blocks.j.{conv_dw,norm,mlp.fc1,mlp.grn,mlp.fc2,gamma}`, `head.norm`.
public struct ConvNeXt {
    struct Block {
        let convDW: DepthwiseConv2d
        let norm: LayerNorm
        let fc1: Linear
        let grn: GlobalResponseNorm?
        /// fc2 with V1's layer scale `gamma` folded in (gamma·(Wx+b) = (gamma·W)x + gamma·b).
        let fc2: Linear

        init(_ s: WeightScope, dim: Int, spec: ConvNeXtSpec) throws {
            let std002 = Initializer.truncatedNormal(std: 0.02)
            convDW = try DepthwiseConv2d(s.scope("conv_dw"), channels: dim, kernel: 7, bias: true, weightInit: std002)
            norm = try LayerNorm(s.scope("norm"), dim: dim, eps: spec.normEps)
            let mlp = s.scope("mlp")
            fc1 = try Linear(mlp.scope("fc1"), in: dim, out: 4 * dim, weightInit: std002, biasInit: .zeros,
                             storedAs1x1Conv: spec.convMLP)
            grn = spec.isV2 ? try GlobalResponseNorm(mlp.scope("grn"), dim: 4 * dim) : nil
            let fc2Raw = try Linear(mlp.scope("fc2"), in: 4 * dim, out: dim, weightInit: std002, biasInit: .zeros,
                                    storedAs1x1Conv: spec.convMLP)
            if spec.isV2 {
                fc2 = fc2Raw
            } else {
                let gamma = try s.parameter("gamma", shape: [dim], initializer: .constant(1e-6))
                fc2 = try fc2Raw.scaledRows(by: gamma)
            }
        }

        func callAsFunction(_ x: inout Tensor) throws {
            var y = try convDW(x)
            try norm.applyInPlace(&y)
            var h = try fc1(y, activation: .gelu)
            if let grn { try grn.applyInPlace(&h) }
            try fc2.accumulate(h, into: &x)
        }
    }

    struct Stage {
        let downsample: (norm: LayerNorm, conv: PatchConv2d)?
        let blocks: [Block]
    }

    public let spec: ConvNeXtSpec
    let stem: (conv: PatchConv2d, norm: LayerNorm)
    let stages: [Stage]
    let headNorm: LayerNorm
    /// timm's classifier `head.fc`, present when open_clip lets the trunk project (`timm_proj` "").
    let headFC: Linear?

    public var numFeatures: Int { spec.dims.last! }

    public init(_ s: WeightScope, spec: ConvNeXtSpec, classes: Int) throws {
        self.spec = spec
        let std002 = Initializer.truncatedNormal(std: 0.02)
        stem = (try PatchConv2d(s.scope("stem").scope(0), in: 3, out: spec.dims[0], kernel: 4, bias: true, weightInit: std002),
                try LayerNorm(s.scope("stem").scope(1), dim: spec.dims[0], eps: spec.normEps))
        var stages: [Stage] = []
        for (i, (depth, dim)) in zip(spec.depths, spec.dims).enumerated() {
            let st = s.scope("stages").scope(i)
            var downsample: (LayerNorm, PatchConv2d)? = nil
            if i > 0 {
                let ds = st.scope("downsample")
                downsample = (try LayerNorm(ds.scope(0), dim: spec.dims[i - 1], eps: spec.normEps),
                              try PatchConv2d(ds.scope(1), in: spec.dims[i - 1], out: dim, kernel: 2, bias: true, weightInit: std002))
            }
            let blocks = try (0..<depth).map { try Block(st.scope("blocks").scope($0), dim: dim, spec: spec) }
            stages.append(Stage(downsample: downsample, blocks: blocks))
        }
        self.stages = stages
        headNorm = try LayerNorm(s.scope("head").scope("norm"), dim: spec.dims.last!, eps: spec.normEps)
        headFC = classes > 0
            ? try Linear(s.scope("head").scope("fc"), in: spec.dims.last!, out: classes, weightInit: std002, biasInit: .zeros)
            : nil
    }

    /// Pooled, normed features [N, numFeatures] (or [N, classes] through `head.fc`).
    public func callAsFunction(_ images: Tensor) throws -> Tensor {
        guard images.rank == 4, images.shape[1] == 3, images.shape[2] >= 32, images.shape[3] >= 32 else {
            throw TensorError.shapeMismatch("ConvNeXt expects images [N, 3, H, W] with H, W ≥ 32, got \(images.shape)")
        }
        var x = try stem.conv(Ops.nchwToNhwc(images))
        try stem.norm.applyInPlace(&x)
        for stage in stages {
            if let ds = stage.downsample {
                try ds.norm.applyInPlace(&x)
                x = try ds.conv(x)
            }
            for block in stage.blocks { try block(&x) }
        }
        let pooled = try headNorm(Ops.meanPool2d(x))
        return try headFC.map { try $0(pooled) } ?? pooled
    }
}

/// open_clip's `TimmModel`: a timm trunk plus its projection head (`visual.trunk.*`, `visual.head.*`).
public struct TimmImageTower: ImageEncoder {
    enum Head {
        case linear(Linear)
        case mlp(fc1: Linear, fc2: Linear)
        case none
    }

    let trunk: ConvNeXt
    let head: Head

    public init(_ s: WeightScope, config c: CLIPConfig.TimmVisionConfig, embedDim: Int, source: String) throws {
        guard let spec = ConvNeXtSpec.named(c.modelName) else {
            throw ConfigError.unsupported("vision_cfg.timm_model_name '\(c.modelName)' (supported: \(ConvNeXtSpec.knownNames.joined(separator: ", ")))", source: source)
        }
        let features = spec.dims.last!
        // open_clip: with timm_proj "" the trunk's classifier projects to embed_dim; with "none" the
        // trunk's features pass through and must already be embed_dim wide.
        let trunkClasses = c.proj.isEmpty ? embedDim : 0
        if c.proj == "none" && features != embedDim {
            throw ConfigError.unsupported("timm_proj 'none' with \(c.modelName) features \(features) ≠ embed_dim \(embedDim)", source: source)
        }
        trunk = try ConvNeXt(s.scope("trunk"), spec: spec, classes: trunkClasses)
        let h = s.scope("head")
        switch c.proj {
        case "linear":
            head = .linear(try Linear(h.scope("proj"), in: features, out: embedDim, bias: c.projBias))
        case "mlp":
            head = .mlp(fc1: try Linear(h.scope("mlp").scope("fc1"), in: features, out: 2 * embedDim),
                        fc2: try Linear(h.scope("mlp").scope("fc2"), in: 2 * embedDim, out: embedDim, bias: c.projBias))
        default:
            head = .none
        }
    }

    public func callAsFunction(_ images: Tensor) throws -> Tensor {
        let features = try trunk(images)
        switch head {
        case .linear(let proj): return try proj(features)
        case .mlp(let fc1, let fc2): return try fc2(fc1(features, activation: .gelu))
        case .none: return features
        }
    }
}
