import CLIPEngine
import CLIPNN

/// An image tower: preprocessed images [N, 3, H, W] (channels-first, as open_clip takes them) in,
/// embeddings [N, embed_dim] out. `forwardForTraining` keeps what `backward` needs; `backward`
/// adds every parameter's gradient (the image gradient is not computed).
public protocol ImageEncoder {
    func callAsFunction(_ images: Tensor) throws -> Tensor
    /// `rng` draws the stochastic-depth masks where the tower has them. `checkpointing`
    /// (open_clip's `--grad-checkpointing`) keeps only each block's input and recomputes the block
    /// in backward: less memory, one more forward of the blocks.
    func forwardForTraining(_ images: Tensor, checkpointing: Bool, rng: inout SeededGenerator) throws -> (output: Tensor, saved: SavedActivations)
    func backward(_ dOutput: Tensor, saved: SavedActivations) throws
}

extension ImageEncoder {
    public func forwardForTraining(_ images: Tensor, rng: inout SeededGenerator) throws -> (output: Tensor, saved: SavedActivations) {
        try forwardForTraining(images, checkpointing: false, rng: &rng)
    }
}

/// The activations a tower's training forward keeps for its backward (opaque to callers).
public struct SavedActivations {
    let tower: String
    let value: Any

    func get<T>(_ type: T.Type) throws -> T {
        guard let v = value as? T else {
            throw TensorError.invalidArgument("backward of \(T.self) given the saved activations of \(tower)")
        }
        return v
    }
}

/// timm's ConvNeXt (V1 and V2) trunk, run channels-last. Keys follow timm: `stem.0`, `stem.1`,
/// `stages.i.downsample.{0,1}`, `stages.i.blocks.j.{conv_dw,norm,mlp.fc1,mlp.grn,mlp.fc2,gamma}`, `head.norm`.
public struct ConvNeXt {
    /// V1's layer scale folded into fc2 (weight [out, in], bias [out], gamma [out]):
    /// gamma·(Wx+b) = (gamma·W)x + gamma·b. Inference packs this weight (so int8 rounds the
    /// product), and the ONNX export's int8 graph writes the same.
    public static func foldLayerScale(weight: Tensor, bias: Tensor?, gamma: Tensor) -> (weight: Tensor, bias: Tensor?) {
        let (out, inF) = (weight.shape[0], weight.count / max(weight.shape[0], 1))
        var w = weight, b = bias
        w.withUnsafeMutableBufferPointer { buf in
            for o in 0..<out { for i in 0..<inF { buf[o * inF + i] *= gamma[flat: o] } }
        }
        if b != nil { b!.withUnsafeMutableBufferPointer { buf in for o in 0..<out { buf[o] *= gamma[flat: o] } } }
        return (w, b)
    }

    struct Block {
        let convDW: DepthwiseConv2d
        let norm: LayerNorm
        let fc1: Linear
        let grn: GlobalResponseNorm?
        let fc2: Linear
        /// V1's layer scale (a trainable parameter); inference folds it into fc2 (cached).
        let gamma: Parameter?
        let folded = DerivedCache<(PackedMatrix, Tensor?)>()

        init(_ s: WeightScope, dim: Int, spec: ConvNeXtSpec) throws {
            let std002 = Initializer.truncatedNormal(std: 0.02)
            convDW = try DepthwiseConv2d(s.scope("conv_dw"), channels: dim, kernel: 7, bias: true, weightInit: std002)
            norm = try LayerNorm(s.scope("norm"), dim: dim, eps: spec.normEps)
            let mlp = s.scope("mlp")
            fc1 = try Linear(mlp.scope("fc1"), in: dim, out: 4 * dim, weightInit: std002, biasInit: .zeros,
                             storedAs1x1Conv: spec.convMLP)
            grn = spec.isV2 ? try GlobalResponseNorm(mlp.scope("grn"), dim: 4 * dim) : nil
            fc2 = try Linear(mlp.scope("fc2"), in: 4 * dim, out: dim, weightInit: std002, biasInit: .zeros,
                             storedAs1x1Conv: spec.convMLP, foldedByOwner: !spec.isV2)
            gamma = spec.isV2 ? nil : try s.parameter("gamma", shape: [dim], initializer: .constant(1e-6))
            if gamma != nil { _ = try foldedFC2() }
        }

        /// fc2 with gamma folded in: gamma·(Wx+b) = (gamma·W)x + gamma·b.
        func foldedFC2() throws -> (PackedMatrix, Tensor?) {
            guard let gamma else { throw TensorError.invalidArgument("ConvNeXt V2 block has no layer scale") }
            let params = [fc2.weightParameter, gamma] + (fc2.biasParameter.map { [$0] } ?? [])
            return try folded.value(of: params) {
                let (w, b) = ConvNeXt.foldLayerScale(weight: fc2.weight, bias: fc2.bias, gamma: gamma.value)
                return (try PackedMatrix(linearWeight: w, precision: fc2.precision), b)
            }
        }

        func callAsFunction(_ x: inout Tensor) throws {
            // A bf16 GEMM normalises its input while converting it: LayerNorm's and GRN's outputs
            // then never exist in fp32 (fewer passes over the 4C-wide map at batch 1). fp32 inference
            // normalises in place first (the training forward hands fp32 GEMMs the normalisations:
            // `forward`). Fusing them into fp32 inference too measured no faster: one thread, batch
            // 1, 91.9 / 92.2 ms against 90.8 / 89.6 ms in place (Zen 4, quiet, 2026-12-07).
            let fused = fc1.precision.fusesInputNormalization
            var y = try convDW(x)
            if !fused { try norm.applyInPlace(&y) }
            var h = try fc1(y, activation: .gelu, normalizedBy: fused ? norm.inputNormalization : nil)
            var fc2Input: InputNormalization? = nil
            if let grn {
                if fused { fc2Input = try grn.inputNormalization(for: h) } else { try grn.applyInPlace(&h) }
            }
            if gamma != nil {
                let (packed, bias) = try foldedFC2()
                try OpProfiler.measure("linear (GEMM + bias/activation)") {
                    try Ops.linearAccumulate(h, packed: packed, bias: bias, into: &x, normalizedBy: fc2Input)
                }
            } else {
                try fc2.accumulate(h, into: &x, normalizedBy: fc2Input)
            }
        }

        /// What backward needs: the block input, conv_dw's output and fc1's pre-activation (6 floats
        /// per pixel·channel; LayerNorm, GELU and GRN outputs are recomputed from them, which costs
        /// element-wise passes only), GRN's statistics (N·4C sums), fc2's output where V1's gamma
        /// needs it. A checkpointed block (`--grad-checkpointing`) keeps its input alone and reruns
        /// its forward in backward.
        struct Saved {
            let input: Tensor
            let dropFactors: [Float]?
            let intermediates: (dw: Tensor, z: Tensor, squares: [Double]?, u: Tensor?)?
        }

        /// x + s·gamma·mlp(norm(conv_dw(x))); gamma only in V1, s the per-sample stochastic-depth
        /// factors (nil: all 1). `keep: false` saves the input only.
        func forward(_ x: Tensor, dropFactors: [Float]?, keep: Bool = true) throws -> (Tensor, Saved) {
            let dw = try convDW(x)
            // LayerNorm's and GRN's outputs go to the GEMMs as normalisations, which they apply
            // while reading their input where they can (`Linear.fusesNormalization`).
            let z = try fc1(dw, normalizedBy: norm.inputNormalization)
            let h: Tensor
            var squares: [Double]? = nil, fc2Input: InputNormalization? = nil
            if let grn {
                let (gelu, sums) = try geluWithSquareSums(z)
                (h, squares) = (gelu, sums)
                fc2Input = try grn.inputNormalization(for: gelu, squareSums: sums)
            } else {
                h = OpProfiler.measure("gelu") { Ops.activation(z, .gelu) }
            }
            var out = x
            var u: Tensor? = nil
            if gamma == nil && dropFactors == nil {
                try fc2.accumulate(h, into: &out, normalizedBy: fc2Input)
            } else {
                let branch = try fc2(h, normalizedBy: fc2Input)
                if gamma != nil { u = branch }
                try Ops.addScaledBranch(&out, branch, sampleScale: dropFactors, channelScale: gamma?.value)
            }
            return (out, Saved(input: x, dropFactors: dropFactors, intermediates: keep ? (dw, z, squares, u) : nil))
        }

        func geluWithSquareSums(_ z: Tensor) throws -> (Tensor, squareSums: [Double]) {
            try OpProfiler.measure("gelu (+ GRN statistics)") { try Ops.geluWithSquareSums(z) }
        }

        func backward(_ dOut: Tensor, saved s: Saved) throws -> Tensor {
            guard let (dw, z, squares, u) = s.intermediates else {
                return try backward(dOut, saved: forward(s.input, dropFactors: s.dropFactors).1)
            }
            var dBranch = dOut
            if let gamma, let u {
                dBranch = try Ops.scaledBranchBackward(dOut, branch: u, sampleScale: s.dropFactors, channelScale: gamma.value,
                                                       channelScaleGrad: gamma.gradPointer())
            } else if let factors = s.dropFactors {
                dBranch = try Ops.scaledBranchBackward(dOut, branch: dOut, sampleScale: factors, channelScale: nil, channelScaleGrad: nil)
            }
            let normed = try norm(dw)
            let dz: Tensor
            if let grn {
                // V2: GELU and GRN recomputed in one pass from the forward's statistics; GRN's and
                // GELU's backward in one.
                guard let squares else { throw TensorError.invalidArgument("ConvNeXt-V2 block backward: GRN statistics not kept") }
                let h: Tensor, dg: Tensor
                do {   // GRN's output is released before the 4C-wide gradients are made
                    let (gelu, y) = try grn.afterGelu(z, squareSums: squares)
                    (h, dg) = (gelu, try fc2.backward(dBranch, input: y).required("fc2 backward"))
                }
                dz = try grn.backward(dg, input: h, squareSums: squares, geluInput: z)
            } else {
                let h = OpProfiler.measure("gelu") { Ops.activation(z, .gelu) }
                let dh = try fc2.backward(dBranch, input: h).required("fc2 backward")
                dz = try OpProfiler.measure("backward: gelu") { try Ops.activationBackward(dh, preActivation: z, .gelu) }
            }
            let dNormed = try fc1.backward(dz, input: normed).required("fc1 backward")
            let dDW = try norm.backward(dNormed, input: dw)
            var dx = try convDW.backward(dDW, input: s.input)
            try Ops.accumulate(&dx, dOut)
            return dx
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

    func checkInput(_ images: Tensor) throws {
        guard images.rank == 4, images.shape[1] == 3, images.shape[2] >= 32, images.shape[3] >= 32 else {
            throw TensorError.shapeMismatch("ConvNeXt expects images [N, 3, H, W] with H, W ≥ 32, got \(images.shape)")
        }
    }

    /// Pooled, normed features [N, numFeatures] (or [N, classes] through `head.fc`).
    public func callAsFunction(_ images: Tensor) throws -> Tensor {
        try head(Ops.meanPool2d(stageOutputs(images, keepingAll: false)[0]))
    }

    /// Each stage's output map, channels-last [N, H_i, W_i, dims[i]] (strides 4, 8, 16, 32), for any
    /// input the stem accepts (H, W ≥ 32; sizes floor-divide as PyTorch's convolutions). With
    /// `keepingAll` false only the last stage's map is returned.
    public func stageOutputs(_ images: Tensor, keepingAll: Bool = true) throws -> [Tensor] {
        try checkInput(images)
        var x = try stem.conv(Ops.nchwToNhwc(images))
        try stem.norm.applyInPlace(&x)
        var outputs: [Tensor] = []
        for stage in stages {
            if let ds = stage.downsample {
                try ds.norm.applyInPlace(&x)
                x = try ds.conv(x)
            }
            for block in stage.blocks { try block(&x) }
            if keepingAll { outputs.append(x) }
        }
        return keepingAll ? outputs : [x]
    }

    /// timm's head after the pool: `head.norm` (and `head.fc` when the trunk projects) on rows
    /// [M, numFeatures] — pooled images, pooled regions or single locations of the last map.
    public func head(_ pooled: Tensor) throws -> Tensor {
        let normed = try headNorm(pooled)
        return try headFC.map { try $0(normed) } ?? normed
    }

    struct Saved {
        var stemInput: Tensor, stemOut: Tensor
        var downsample: [(normInput: Tensor, convInput: Tensor)?] = []
        var blocks: [[Block.Saved]] = []
        var poolInputShape: [Int], pooled: Tensor, headInput: Tensor?
    }

    /// Training forward; `dropPath` is timm's `drop_path_rate` (stochastic depth, drawn from `rng`).
    func forward(_ images: Tensor, dropPath: Double, checkpointing: Bool = false, rng: inout SeededGenerator) throws -> (Tensor, Saved) {
        try checkInput(images)
        let rates = StochasticDepth.rates(depths: spec.depths, rate: dropPath)
        let stemInput = try Ops.nchwToNhwc(images)
        let stemOut = try stem.conv(stemInput)
        var x = try stem.norm(stemOut)
        var saved = Saved(stemInput: stemInput, stemOut: stemOut, poolInputShape: [], pooled: x, headInput: nil)
        for (i, stage) in stages.enumerated() {
            if let ds = stage.downsample {
                let normed = try ds.norm(x)
                saved.downsample.append((x, normed))
                x = try ds.conv(normed)
            } else {
                saved.downsample.append(nil)
            }
            var kept: [Block.Saved] = []
            for (j, block) in stage.blocks.enumerated() {
                let factors = StochasticDepth.sampleFactors(batch: images.shape[0], rate: rates[i][j], rng: &rng)
                let (y, s) = try block.forward(x, dropFactors: factors, keep: !checkpointing)
                kept.append(s)
                x = y
            }
            saved.blocks.append(kept)
        }
        saved.poolInputShape = x.shape
        saved.pooled = try Ops.meanPool2d(x)
        let normed = try headNorm(saved.pooled)
        if let headFC {
            saved.headInput = normed
            return (try headFC(normed), saved)
        }
        return (normed, saved)
    }

    func backward(_ dOut: Tensor, saved s: Saved) throws {
        var d = dOut
        if let headFC, let input = s.headInput { d = try headFC.backward(d, input: input).required("head.fc backward") }
        d = try headNorm.backward(d, input: s.pooled)
        var dx = try Ops.meanPool2dBackward(d, inputShape: s.poolInputShape)
        for (i, stage) in stages.enumerated().reversed() {
            for (j, block) in stage.blocks.enumerated().reversed() { dx = try block.backward(dx, saved: s.blocks[i][j]) }
            if let ds = stage.downsample, let kept = s.downsample[i] {
                dx = try ds.conv.backward(dx, input: kept.convInput).required("downsample conv backward")
                dx = try ds.norm.backward(dx, input: kept.normInput)
            }
        }
        dx = try stem.norm.backward(dx, input: s.stemOut)
        _ = try stem.conv.backward(dx, input: s.stemInput, inputGrad: false)
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
    /// `timm_drop_path` (stochastic depth in training).
    public let dropPath: Double
    /// The trunk's parameters (`visual.trunk.*`): open_clip's `lock_image_tower` freezes these
    /// and leaves the head trainable.
    public let trunkParameters: [Parameter]

    /// `spec` overrides the depths and dims the timm name stands for (timm.create_model's `depths=`
    /// / `dims=` overrides; the training fixtures use tiny ones).
    public init(_ s: WeightScope, config c: CLIPConfig.TimmVisionConfig, embedDim: Int, source: String,
                spec override: ConvNeXtSpec? = nil) throws {
        guard let spec = override ?? ConvNeXtSpec.named(c.modelName) else {
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
        trunkParameters = s.builder.tree.parameters(under: s.scope("trunk").prefix + ".")
        dropPath = c.dropPath
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
        try project(trunk(images))
    }

    /// open_clip's `head` (linear or MLP projection) on trunk features [M, numFeatures].
    func project(_ features: Tensor) throws -> Tensor {
        switch head {
        case .linear(let proj): return try proj(features)
        case .mlp(let fc1, let fc2): return try fc2(fc1(features, activation: .gelu))
        case .none: return features
        }
    }

    /// The trunk's stage maps, channels-last (`ConvNeXt.stageOutputs`): what dense and region
    /// CLIP features are made of.
    public func stageOutputs(_ images: Tensor, keepingAll: Bool = true) throws -> [Tensor] {
        try trunk.stageOutputs(images, keepingAll: keepingAll)
    }

    /// Width of the last stage map (what `embed(lastStageRows:)` takes).
    public var lastStageWidth: Int { trunk.numFeatures }
    /// Widths of the four stage maps.
    public var stageWidths: [Int] { trunk.spec.dims }

    /// CLIP embeddings [M, embed_dim] of rows [M, lastStageWidth] of the last stage map — one
    /// location each, or a region pooled first (the head's LayerNorm is not linear, so a region is
    /// pooled before the head, as the image itself is): `trunk.head` (norm, `fc`) then `head`.
    public func embed(lastStageRows rows: Tensor) throws -> Tensor {
        guard rows.rank == 2, rows.shape[1] == trunk.numFeatures else {
            throw TensorError.shapeMismatch("embed(lastStageRows:) expects [M, \(trunk.numFeatures)], got \(rows.shape)")
        }
        return try project(trunk.head(rows))
    }

    struct Saved { let trunk: ConvNeXt.Saved?, features: Tensor, z: Tensor?, h: Tensor? }

    /// A frozen trunk (`--lock-image`) runs its inference path (no stochastic depth: timm's
    /// drop_path would still draw in train mode, but a frozen trunk is not trained); only the head trains.
    public func forwardForTraining(_ images: Tensor, checkpointing: Bool, rng: inout SeededGenerator) throws -> (output: Tensor, saved: SavedActivations) {
        let features: Tensor, trunkSaved: ConvNeXt.Saved?
        if trunkParameters.allSatisfy(\.isFrozen) {
            (features, trunkSaved) = (try trunk(images), nil)
        } else {
            (features, trunkSaved) = try trunk.forward(images, dropPath: dropPath, checkpointing: checkpointing, rng: &rng)
        }
        let out: Tensor
        var z: Tensor? = nil, h: Tensor? = nil
        switch head {
        case .linear(let proj): out = try proj(features)
        case .mlp(let fc1, let fc2):
            z = try fc1(features)
            h = Ops.activation(z!, .gelu)
            out = try fc2(h!)
        case .none: out = features
        }
        return (out, SavedActivations(tower: "TimmImageTower", value: Saved(trunk: trunkSaved, features: features, z: z, h: h)))
    }

    public func backward(_ dOutput: Tensor, saved: SavedActivations) throws {
        let s = try saved.get(Saved.self)
        var d = dOutput
        switch head {
        case .linear(let proj): d = try proj.backward(d, input: s.features).required("head.proj backward")
        case .mlp(let fc1, let fc2):
            guard let z = s.z, let h = s.h else { throw TensorError.invalidArgument("mlp head: missing saved activations") }
            d = try fc2.backward(d, input: h).required("head.mlp.fc2 backward")
            d = try Ops.activationBackward(d, preActivation: z, .gelu)
            d = try fc1.backward(d, input: s.features).required("head.mlp.fc1 backward")
        case .none: break
        }
        if let t = s.trunk { try trunk.backward(d, saved: t) }
    }
}
