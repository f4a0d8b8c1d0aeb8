import CLIPEngine
import CLIPModels
import CLIPNN
import Foundation
import SwiftProtobuf

public enum ONNXExportError: Error, CustomStringConvertible, Equatable {
    case unsupportedOpset(Int)
    case invalidBatch(String)
    case missingWeight(String)
    case unsupportedModel(String)

    public var description: String {
        switch self {
        case .unsupportedOpset(let o):
            return "ONNX opset \(o) is not supported (supported: \(ONNXExportOptions.supportedOpsets.lowerBound)–\(ONNXExportOptions.supportedOpsets.upperBound))"
        case .invalidBatch(let s): return "invalid batch '\(s)': give 'dynamic' or a positive integer"
        case .missingWeight(let k): return "ONNX export: the model has no weight '\(k)'"
        case .unsupportedModel(let s): return "ONNX export: unsupported model: \(s)"
        }
    }
}

public enum ONNXTower: String, CaseIterable, Sendable {
    case image, text
}

/// How `export-onnx --precision` writes the weights.
public enum ONNXWeightFormat: String, CaseIterable, Sendable {
    /// float32 initializers.
    case fp32
    /// Every weight matrix (rank ≥ 2 in open_clip's state dict) a float16 initializer followed by
    /// a `Cast` to float (half the file; the graph still computes in fp32). Vectors (biases, norms)
    /// and constants stay float32.
    case fp16
    /// What SwiftCLIP's `--precision int8` computes: the weight of every GEMM it quantises (each
    /// `Linear` and patch convolution) an int8 initializer with a scale per output column, each
    /// such product `MatMulInteger` over rows quantised to uint8 per row (scale and zero point per
    /// row), rescaled in float. Everything else stays float32, as in SwiftCLIP (docs/precision.md).
    case int8
}

public struct ONNXExportOptions: Equatable, Sendable {
    public enum Batch: Equatable, Sendable {
        /// `dim_param "batch"`: any batch size at run time.
        case dynamic
        case fixed(Int)

        /// "dynamic" or a positive integer.
        public init(parsing text: String) throws {
            if text == "dynamic" { self = .dynamic; return }
            guard let n = Int(text), n > 0 else { throw ONNXExportError.invalidBatch(text) }
            self = .fixed(n)
        }
    }

    /// 13–16 decompose LayerNorm into basic ops; 17+ use LayerNormalization. GELU is always
    /// decomposed through Erf. From 18, reductions take their axes as an input.
    public static let supportedOpsets = 13...21
    /// protobuf messages cannot exceed 2 GiB: above this many bytes of weights, they go to a side file.
    public static let defaultExternalDataThreshold = 1 << 31 - (64 << 20)

    public var opset: Int
    public var batch: Batch
    /// Total initializer bytes above which weights are written as external data
    /// (`<output>.data`, ONNX's `location`/`offset`/`length` fields) instead of inside the .onnx file.
    public var externalDataThreshold: Int
    /// `export-onnx --precision`: fp32, fp16 or int8 weights (`ONNXWeightFormat`).
    public var weights: ONNXWeightFormat

    public init(opset: Int = 17, batch: Batch = .dynamic, externalDataThreshold: Int = defaultExternalDataThreshold,
                weights: ONNXWeightFormat = .fp32) {
        self.opset = opset
        self.batch = batch
        self.externalDataThreshold = externalDataThreshold
        self.weights = weights
    }
}

/// What `ONNXExporter.write` produced.
public struct ONNXWriteSummary: Equatable, Sendable {
    public var modelBytes: Int
    /// Side file holding the weights when they were stored as external data.
    public var externalDataURL: URL?
    public var externalDataBytes: Int
    public var initializerCount: Int
    public var nodeCount: Int
}

/// Builds ONNX graphs of a CLIPModel's towers from its weights (`CLIPModel.weights.stateDict`, in
/// open_clip's key names and layouts; the initializers keep those names). Inputs:
/// image `pixel_values` float [batch, 3, S, S] (NCHW, preprocessed), text `input_ids` int64
/// [batch, context_length]; output `embedding` float [batch, embed_dim] (not normalised, as
/// `encode_image` / `encode_text`).
public struct ONNXExporter {
    public let model: CLIPModel
    public let options: ONNXExportOptions

    public init(model: CLIPModel, options: ONNXExportOptions = ONNXExportOptions()) throws {
        guard ONNXExportOptions.supportedOpsets.contains(options.opset) else { throw ONNXExportError.unsupportedOpset(options.opset) }
        if case .fixed(let n) = options.batch, n < 1 { throw ONNXExportError.invalidBatch(String(n)) }
        self.model = model
        self.options = options
    }

    public static let inputName: [ONNXTower: String] = [.image: "pixel_values", .text: "input_ids"]
    public static let outputName = "embedding"

    /// The whole ModelProto, weights inline.
    public func makeModel(tower: ONNXTower) throws -> Onnx_ModelProto {
        let weights = Dictionary(model.weights.stateDict.map { ($0.key, $0.tensor) }, uniquingKeysWith: { a, _ in a })
        let g = GraphBuilder(opset: options.opset, weights: weights, format: options.weights)
        let input: Onnx_ValueInfoProto
        let output: String
        let config = model.config
        switch tower {
        case .image:
            let size = config.vision.imageSize
            input = valueInfo(Self.inputName[.image]!, type: .float, dims: [nil, 3, size, size])
            switch config.vision {
            case .timm(let c): output = try ConvNeXtGraph(config: c, source: config.source).emit(g, input.name)
            case .vit(let c): output = try ViTGraph(config: c, quickGelu: config.quickGelu).emit(g, input.name)
            }
        case .text:
            input = valueInfo(Self.inputName[.text]!, type: .int64, dims: [nil, config.text.contextLength])
            output = try TextGraph(config: config.text, quickGelu: config.quickGelu).emit(g, input.name)
        }
        // Name the final value `embedding`.
        g.node("Identity", [output])
        var nodes = g.nodes
        nodes[nodes.count - 1].output = [Self.outputName]

        var graph = Onnx_GraphProto()
        graph.name = "swiftclip_\(tower.rawValue)_tower"
        graph.node = nodes
        graph.initializer = g.initializers
        graph.input = [input]
        graph.output = [valueInfo(Self.outputName, type: .float, dims: [nil, config.embedDim])]

        var m = Onnx_ModelProto()
        m.irVersion = Self.irVersion(opset: options.opset)
        m.producerName = "SwiftCLIP"
        m.producerVersion = "0.1"
        m.docString = "SwiftCLIP export of the \(tower.rawValue) tower of \(config.source) (open_clip weight names)"
        var opsetID = Onnx_OperatorSetIdProto()
        opsetID.domain = ""
        opsetID.version = Int64(options.opset)
        m.opsetImport = [opsetID]
        m.graph = graph
        return m
    }

    /// Writes the tower to `url` (temporary file, then rename). Weights go inline unless their total
    /// exceeds `externalDataThreshold`; then into `<url>.data`, written first, referenced by location.
    @discardableResult
    public func write(tower: ONNXTower, to url: URL) throws -> ONNXWriteSummary {
        var m = try makeModel(tower: tower)
        let weightBytes = m.graph.initializer.reduce(0) { $0 + $1.rawData.count }
        var externalURL: URL? = nil
        var offset = 0
        if weightBytes > options.externalDataThreshold {
            let dataURL = url.appendingPathExtension("data")
            try AtomicFileWriter.write(to: dataURL) { w in
                // Small tensors (shape constants that shape inference must read) stay inline, as
                // onnx.external_data_helper does below its 1 KiB size_threshold.
                for i in m.graph.initializer.indices where m.graph.initializer[i].rawData.count >= 1024 {
                    let raw = m.graph.initializer[i].rawData
                    try raw.withUnsafeBytes { try w.write($0) }
                    var t = m.graph.initializer[i]
                    t.rawData = Data()
                    t.dataLocation = .external
                    t.externalData = [entry("location", dataURL.lastPathComponent), entry("offset", String(offset)),
                                      entry("length", String(raw.count))]
                    m.graph.initializer[i] = t
                    offset += raw.count
                }
            }
            externalURL = dataURL
        }
        let bytes: [UInt8] = try m.serializedBytes()
        try AtomicFileWriter.write(to: url) { w in try w.write(bytes) }
        return ONNXWriteSummary(modelBytes: bytes.count, externalDataURL: externalURL,
                                externalDataBytes: externalURL == nil ? 0 : offset,
                                initializerCount: m.graph.initializer.count, nodeCount: m.graph.node.count)
    }

    /// The IR version ONNX pairs with each opset (onnx/helper.py VERSION_TABLE).
    static func irVersion(opset: Int) -> Int64 {
        switch opset {
        case ...14: return 7
        case 15...18: return 8
        case 19...20: return 9
        default: return 10
        }
    }

    private func entry(_ key: String, _ value: String) -> Onnx_StringStringEntryProto {
        var e = Onnx_StringStringEntryProto()
        e.key = key
        e.value = value
        return e
    }

    /// A tensor value's type; nil dims are the batch (dynamic `dim_param "batch"` or the fixed size).
    private func valueInfo(_ name: String, type: Onnx_TensorProto.DataType, dims: [Int?]) -> Onnx_ValueInfoProto {
        var shape = Onnx_TensorShapeProto()
        shape.dim = dims.map { d in
            var dim = Onnx_TensorShapeProto.Dimension()
            if let d {
                dim.dimValue = Int64(d)
            } else if case .fixed(let n) = options.batch {
                dim.dimValue = Int64(n)
            } else {
                dim.dimParam = "batch"
            }
            return dim
        }
        var tensorType = Onnx_TypeProto.Tensor()
        tensorType.elemType = Int32(type.rawValue)
        tensorType.shape = shape
        var t = Onnx_TypeProto()
        t.tensorType = tensorType
        var v = Onnx_ValueInfoProto()
        v.name = name
        v.type = t
        return v
    }
}

// MARK: towers

/// timm's ConvNeXt (V1, V2) plus open_clip's TimmModel head, channels-last between convolutions
/// (so LayerNorm, the pointwise MLP and GRN work on the last axis, as SwiftCLIP runs it).
struct ConvNeXtGraph {
    let config: CLIPConfig.TimmVisionConfig
    let spec: ConvNeXtSpec

    init(config: CLIPConfig.TimmVisionConfig, source: String) throws {
        guard let spec = ConvNeXtSpec.named(config.modelName) else {
            throw ONNXExportError.unsupportedModel("timm model '\(config.modelName)' in \(source)")
        }
        self.config = config
        self.spec = spec
    }

    func emit(_ g: GraphBuilder, _ pixels: String) throws -> String {
        let t = "visual.trunk", eps = spec.normEps
        var size = config.imageSize
        var x = try g.patchConv(pixels, channelsLast: false, weightKey: "\(t).stem.0.weight", biasKey: "\(t).stem.0.bias",
                                kernel: 4, height: size, width: size)
        size /= 4
        x = try g.layerNorm(x, "\(t).stem.1", eps: eps)
        for (i, (depth, dim)) in zip(spec.depths, spec.dims).enumerated() {
            let stage = "\(t).stages.\(i)"
            if i > 0 {
                x = try g.patchConv(g.layerNorm(x, "\(stage).downsample.0", eps: eps), channelsLast: true,
                                    weightKey: "\(stage).downsample.1.weight", biasKey: "\(stage).downsample.1.bias",
                                    kernel: 2, height: size, width: size)
                size /= 2
            }
            for j in 0..<depth { x = try block(g, x, prefix: "\(stage).blocks.\(j)", dim: dim) }
        }
        var pooled = try g.layerNorm(g.reduce("ReduceMean", x, axes: [1, 2], keepdims: false), "\(t).head.norm", eps: eps)
        if config.proj.isEmpty { pooled = try g.linear(pooled, "\(t).head.fc") }
        switch config.proj {
        case "linear": return try g.linear(pooled, "visual.head.proj", bias: config.projBias)
        case "mlp": return try g.linear(g.gelu(g.linear(pooled, "visual.head.mlp.fc1")), "visual.head.mlp.fc2", bias: config.projBias)
        default: return pooled
        }
    }

    func block(_ g: GraphBuilder, _ x: String, prefix p: String, dim: Int) throws -> String {
        let dw = g.conv(g.transpose(x, GraphBuilder.toNCHW), weight: try g.weight("\(p).conv_dw.weight"), bias: try g.weight("\(p).conv_dw.bias"),
                        kernel: 7, stride: 1, pad: 3, group: dim)
        var y = try g.layerNorm(g.transpose(dw, GraphBuilder.toNHWC), "\(p).norm", eps: spec.normEps)
        y = g.gelu(try g.linear(y, "\(p).mlp.fc1"))
        if spec.isV2 { y = try grn(g, y, prefix: "\(p).mlp.grn") }
        if spec.isV2 {
            y = try g.linear(y, "\(p).mlp.fc2")
        } else if g.format == .int8 {
            // SwiftCLIP quantises fc2 with the layer scale folded in (ConvNeXt.foldLayerScale).
            let folded = ConvNeXt.foldLayerScale(weight: try g.tensor("\(p).mlp.fc2.weight"), bias: try g.tensor("\(p).mlp.fc2.bias"),
                                                 gamma: try g.tensor("\(p).gamma"))
            guard let bias = folded.bias else { throw ONNXExportError.missingWeight("\(p).mlp.fc2.bias") }
            g.define("\(p).mlp.fc2_gamma.weight", folded.weight)
            g.define("\(p).mlp.fc2_gamma.bias", bias)
            y = try g.linear(y, "\(p).mlp.fc2_gamma")
        } else {
            y = g.op("Mul", try g.linear(y, "\(p).mlp.fc2"), try g.weight("\(p).gamma"))
        }
        return g.op("Add", x, y)
    }

    /// timm's GlobalResponseNorm on [N, H, W, C]: Gx = ‖x‖₂ over H, W; Nx = Gx / (mean_C Gx + 1e-6);
    /// y = x + (β + γ·(x·Nx)).
    func grn(_ g: GraphBuilder, _ x: String, prefix p: String) throws -> String {
        let gx = g.op("Sqrt", g.reduce("ReduceSumSquare", x, axes: [1, 2], keepdims: true))
        let nx = g.op("Div", gx, g.op("Add", g.reduce("ReduceMean", gx, axes: [3], keepdims: true), g.floatScalar(1e-6)))
        let scaled = g.op("Mul", try g.weight("\(p).weight"), g.op("Mul", x, nx))
        return g.op("Add", x, g.op("Add", try g.weight("\(p).bias"), scaled))
    }
}

/// open_clip's Transformer of pre-LN residual attention blocks on [B, T, width].
struct TransformerGraph {
    let width: Int, heads: Int, layers: Int, quickGelu: Bool

    func emit(_ g: GraphBuilder, _ input: String, prefix: String, causalMask: String?) throws -> String {
        var x = input
        for i in 0..<layers {
            let b = "\(prefix).resblocks.\(i)"
            x = g.op("Add", x, try attention(g, g.layerNorm(x, "\(b).ln_1", eps: 1e-5), prefix: "\(b).attn", mask: causalMask))
            let h = g.activation(try g.linear(g.layerNorm(x, "\(b).ln_2", eps: 1e-5), "\(b).mlp.c_fc"), quick: quickGelu)
            x = g.op("Add", x, try g.linear(h, "\(b).mlp.c_proj"))
        }
        return x
    }

    /// nn.MultiheadAttention (packed in_proj), softmax(q·kᵀ/√d + mask)·v.
    func attention(_ g: GraphBuilder, _ x: String, prefix p: String, mask: String?) throws -> String {
        let d = width / heads
        func project(_ part: Int, _ name: String, perm: [Int]) throws -> String {
            let rows = part * width..<(part + 1) * width
            let y = g.op("Add", try g.matMul(x, linearWeight: "\(p).in_proj_weight", rows: rows, suffix: ".\(name)"),
                         try g.weightSlice("\(p).in_proj_bias", rows, suffix: ".\(name)"))
            return g.transpose(g.reshape(y, [0, 0, Int64(heads), Int64(d)]), perm)
        }
        let q = try project(0, "q", perm: [0, 2, 1, 3])   // [B, H, T, d]
        let k = try project(1, "k", perm: [0, 2, 3, 1])   // [B, H, d, T]
        let v = try project(2, "v", perm: [0, 2, 1, 3])   // [B, H, T, d]
        var scores = g.op("Mul", g.op("MatMul", q, k), g.floatScalar(1 / Float(d).squareRoot()))
        if let mask { scores = g.op("Add", scores, mask) }
        let probs = g.op("Softmax", scores, attributes: [GraphBuilder.attribute("axis", int: -1)])
        let merged = g.reshape(g.transpose(g.op("MatMul", probs, v), [0, 2, 1, 3]), [0, 0, Int64(width)])
        return try g.linear(merged, "\(p).out_proj")
    }
}

/// open_clip's VisionTransformer: patch conv, class token, positional embedding, ln_pre,
/// Transformer, ln_post on the class token, `proj`.
struct ViTGraph {
    let config: CLIPConfig.ViTConfig
    let quickGelu: Bool

    func emit(_ g: GraphBuilder, _ pixels: String) throws -> String {
        let c = config, w = Int64(c.width)
        let patches = try g.patchConv(pixels, channelsLast: false, weightKey: "visual.conv1.weight", biasKey: nil,
                                      kernel: c.patchSize, height: c.imageSize, width: c.imageSize)
        let tokens = g.reshape(patches, [0, -1, w])           // [B, P, W]
        let batch = g.op("Gather", g.op("Shape", pixels), g.int64Constant([0]), attributes: [GraphBuilder.attribute("axis", int: 0)])
        let clsShape = g.op("Concat", batch, g.int64Constant([1, w]), attributes: [GraphBuilder.attribute("axis", int: 0)])
        let cls = g.op("Expand", try g.weight("visual.class_embedding", reshapedTo: [1, 1, c.width]), clsShape)
        var x = g.op("Concat", cls, tokens, attributes: [GraphBuilder.attribute("axis", int: 1)])
        x = try g.layerNorm(g.op("Add", x, try g.weight("visual.positional_embedding")), "visual.ln_pre", eps: 1e-5)
        x = try TransformerGraph(width: c.width, heads: c.heads, layers: c.layers, quickGelu: quickGelu)
            .emit(g, x, prefix: "visual.transformer", causalMask: nil)
        let pooled = g.op("Gather", x, g.int64Constant([0], dims: []), attributes: [GraphBuilder.attribute("axis", int: 1)])
        return g.op("MatMul", try g.layerNorm(pooled, "visual.ln_post", eps: 1e-5), try g.weight("visual.proj"))
    }
}

/// open_clip's text tower: token + positional embeddings, causal Transformer, pooling at the first
/// maximum token id (the end-of-text token), ln_final, `text_projection`.
struct TextGraph {
    let config: CLIPConfig.TextConfig
    let quickGelu: Bool

    func emit(_ g: GraphBuilder, _ ids: String) throws -> String {
        let c = config, n = c.contextLength
        var x = g.op("Gather", try g.weight("token_embedding.weight"), ids, attributes: [GraphBuilder.attribute("axis", int: 0)])
        x = g.op("Add", x, try g.weight("positional_embedding"))
        // Additive causal mask [T, T]: -inf above the diagonal (every row keeps its diagonal, so softmax stays finite).
        var mask = [Float](repeating: 0, count: n * n)
        for i in 0..<n { for j in (i + 1)..<max(i + 1, n) { mask[i * n + j] = -.infinity } }
        let maskName = g.floatInitializer("causal_mask", mask, dims: [n, n])
        x = try TransformerGraph(width: c.width, heads: c.heads, layers: c.layers, quickGelu: quickGelu)
            .emit(g, x, prefix: "transformer", causalMask: maskName)
        // ArgMax on int64 is missing from some runtimes: ids < 2^24 are exact in float32. ArgMax keeps
        // the first maximum, as open_clip's `argmax` does.
        let floatIDs = g.cast(ids, to: .float)
        let eot = g.op("ArgMax", floatIDs, attributes: [GraphBuilder.attribute("axis", int: 1), GraphBuilder.attribute("keepdims", int: 1)])
        let pooled = g.op("GatherND", x, eot, attributes: [GraphBuilder.attribute("batch_dims", int: 1)])   // [B, W]
        return g.op("MatMul", try g.layerNorm(pooled, "ln_final", eps: 1e-5), try g.weight("text_projection"))
    }
}
