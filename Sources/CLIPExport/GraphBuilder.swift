import CLIPEngine
import Foundation

/// Accumulates an ONNX graph: nodes in topological order, initializers (the model's weights in
/// open_clip's key names, plus derived tensors such as transposed Linear weights), unique names.
/// Helpers emit the few op patterns SwiftCLIP's towers need, choosing the form valid at `opset`.
final class GraphBuilder {
    let opset: Int
    private(set) var nodes: [Onnx_NodeProto] = []
    private(set) var initializers: [Onnx_TensorProto] = []
    private var initializerNames = Set<String>()
    private var counters: [String: Int] = [:]
    private var weights: [String: Tensor]
    /// How weights are stored (`ONNXExportOptions.weights`). fp16: weight matrices as float16
    /// initializers + Cast, the Cast output of each by initializer name. int8: the GEMMs SwiftCLIP
    /// quantises run as its int8 GEMM (`GraphBuilder+Int8.swift`), each input's quantised rows
    /// emitted once, by the name of the float value they quantise.
    let format: ONNXWeightFormat
    private var castWeights: [String: String] = [:]
    var quantizedRowsByInput: [String: QuantizedRows] = [:]

    init(opset: Int, weights: [String: Tensor], format: ONNXWeightFormat = .fp32) {
        self.opset = opset
        self.weights = weights
        self.format = format
    }

    // MARK: names, nodes, attributes

    /// A fresh value name such as `LayerNorm_12`.
    func fresh(_ hint: String) -> String {
        let n = counters[hint, default: 0]
        counters[hint] = n + 1
        return "\(hint)_\(n)"
    }

    /// Appends one node and returns its outputs' names.
    @discardableResult
    func node(_ op: String, _ inputs: [String], outputs: Int = 1, attributes: [Onnx_AttributeProto] = []) -> [String] {
        var n = Onnx_NodeProto()
        n.opType = op
        n.name = fresh(op)
        n.input = inputs
        n.output = (0..<outputs).map { outputs == 1 ? "\(n.name)_out" : "\(n.name)_out\($0)" }
        n.attribute = attributes
        nodes.append(n)
        return n.output
    }

    /// One-output node.
    func op(_ op: String, _ inputs: String..., attributes: [Onnx_AttributeProto] = []) -> String {
        node(op, inputs, attributes: attributes)[0]
    }

    static func attribute(_ name: String, int value: Int) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .int
        a.i = Int64(value)
        return a
    }

    static func attribute(_ name: String, ints values: [Int]) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .ints
        a.ints = values.map(Int64.init)
        return a
    }

    static func attribute(_ name: String, float value: Float) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .float
        a.f = value
        return a
    }

    // MARK: initializers

    func addInitializer(_ name: String, dims: [Int], type: Onnx_TensorProto.DataType, raw: Data) {
        precondition(!initializerNames.contains(name), "initializer '\(name)' added twice")
        initializerNames.insert(name)
        var t = Onnx_TensorProto()
        t.name = name
        t.dims = dims.map(Int64.init)
        t.dataType = Int32(type.rawValue)
        t.rawData = raw
        initializers.append(t)
    }

    /// Float32 initializer, little-endian raw data (every platform Swift runs on is little-endian).
    func floatInitializer(_ name: String, _ values: UnsafeBufferPointer<Float>, dims: [Int]) -> String {
        if !initializerNames.contains(name) {
            addInitializer(name, dims: dims, type: .float, raw: Data(buffer: values))
        }
        return name
    }

    func floatInitializer(_ name: String, _ values: [Float], dims: [Int]) -> String {
        values.withUnsafeBufferPointer { floatInitializer(name, $0, dims: dims) }
    }

    /// A weight's initializer: float32, or for a matrix in the fp16 format float16 + `Cast` to float.
    func weightInitializer(_ name: String, _ values: UnsafeBufferPointer<Float>, dims: [Int], matrix: Bool) -> String {
        guard format == .fp16 && matrix else { return floatInitializer(name, values, dims: dims) }
        if let cast = castWeights[name] { return cast }
        let halves = values.map { Float16($0).bitPattern.littleEndian }
        addInitializer(name + ".fp16", dims: dims, type: .float16, raw: halves.withUnsafeBufferPointer { Data(buffer: $0) })
        let floats = cast(name + ".fp16", to: .float)
        castWeights[name] = floats
        return floats
    }

    func int64Constant(_ values: [Int64], dims: [Int]? = nil) -> String {
        let name = "const_i64_" + values.map(String.init).joined(separator: "_") + (dims == [] ? "_scalar" : "")
        if !initializerNames.contains(name) {
            addInitializer(name, dims: dims ?? [values.count], type: .int64,
                           raw: values.map(\.littleEndian).withUnsafeBufferPointer { Data(buffer: $0) })
        }
        return name
    }

    func floatScalar(_ value: Float) -> String {
        floatInitializer("const_f32_\(value.bitPattern)", [value], dims: [])
    }

    /// A model weight by its open_clip key, as stored (open_clip's layout), or one `define`d.
    func tensor(_ key: String) throws -> Tensor {
        guard let t = weights[key] else { throw ONNXExportError.missingWeight(key) }
        return t
    }

    /// Adds a weight derived from the model's (V1's fc2 with the layer scale folded in) under a new key.
    func define(_ key: String, _ t: Tensor) {
        precondition(weights[key] == nil, "weight '\(key)' defined twice")
        weights[key] = t
    }

    func weight(_ key: String) throws -> String {
        let t = try tensor(key)
        return t.withUnsafeBufferPointer { weightInitializer(key, $0, dims: t.shape, matrix: t.rank >= 2) }
    }

    /// A weight reshaped (same data, new dims), e.g. the class embedding as [1, 1, width].
    func weight(_ key: String, reshapedTo dims: [Int]) throws -> String {
        let t = try tensor(key)
        precondition(dims.reduce(1, *) == t.count)
        return t.withUnsafeBufferPointer { weightInitializer("\(key).reshaped", $0, dims: dims, matrix: t.rank >= 2) }
    }

    /// Rows `rows` of a Linear weight [out, in] (or [out, in, 1, 1]) transposed to [in, rows.count],
    /// so that `MatMul(x, W)` is PyTorch's `x @ weight[rows].T`.
    func transposedWeight(_ key: String, rows: Range<Int>? = nil, suffix: String = "") throws -> String {
        let t = try tensor(key)
        let out = t.shape[0], input = t.count / max(out, 1)
        let r = rows ?? 0..<out
        let name = "\(key)\(suffix).T"
        if let cast = castWeights[name] { return cast }
        if initializerNames.contains(name) { return name }
        var data = [Float](repeating: 0, count: input * r.count)
        t.withUnsafeBufferPointer { w in
            for (j, o) in r.enumerated() { for i in 0..<input { data[i * r.count + j] = w[o * input + i] } }
        }
        return data.withUnsafeBufferPointer { weightInitializer(name, $0, dims: [input, r.count], matrix: true) }
    }

    /// A slice of a 1-D weight (e.g. the q, k or v part of `in_proj_bias`).
    func weightSlice(_ key: String, _ range: Range<Int>, suffix: String) throws -> String {
        let t = try tensor(key)
        return t.withUnsafeBufferPointer { floatInitializer("\(key)\(suffix)", UnsafeBufferPointer(rebasing: $0[range]), dims: [range.count]) }
    }

    // MARK: op patterns

    static let toNHWC = [0, 2, 3, 1], toNCHW = [0, 3, 1, 2]

    func transpose(_ x: String, _ perm: [Int]) -> String {
        op("Transpose", x, attributes: [Self.attribute("perm", ints: perm)])
    }

    func reshape(_ x: String, _ shape: [Int64]) -> String {
        op("Reshape", x, int64Constant(shape))
    }

    /// ReduceMean / ReduceSumSquare over `axes`: an attribute before opset 18, an input from 18.
    func reduce(_ kind: String, _ x: String, axes: [Int], keepdims: Bool) -> String {
        let keep = Self.attribute("keepdims", int: keepdims ? 1 : 0)
        if opset >= 18 {
            return node(kind, [x, int64Constant(axes.map(Int64.init))], attributes: [keep])[0]
        }
        return op(kind, x, attributes: [Self.attribute("axes", ints: axes), keep])
    }

    /// `x @ W.T + b` for a PyTorch Linear stored under `prefix.weight` / `prefix.bias`.
    func linear(_ x: String, _ prefix: String, bias: Bool = true) throws -> String {
        let y = try matMul(x, linearWeight: "\(prefix).weight")
        return bias ? op("Add", y, try weight("\(prefix).bias")) : y
    }

    /// `x @ W[rows].T` for a Linear weight [out, in] (or [out, in, 1, 1]): `MatMul` by the
    /// transposed weight, or in int8 SwiftCLIP's int8 GEMM over the same rows.
    func matMul(_ x: String, linearWeight key: String, rows: Range<Int>? = nil, suffix: String = "") throws -> String {
        guard format == .int8 else { return op("MatMul", x, try transposedWeight(key, rows: rows, suffix: suffix)) }
        let t = try tensor(key)
        let out = t.shape[0], input = t.count / max(out, 1)
        let r = rows ?? 0..<out
        let w = try t.withUnsafeBufferPointer {
            try Tensor(shape: [r.count, input], data: Array($0[r.lowerBound * input..<r.upperBound * input]))
        }
        return quantizedMatMul(x, quantizedWeight("\(key)\(suffix)", try PackedMatrix(linearWeight: w, precision: .int8)))
    }

    /// A convolution whose kernel equals its stride (ConvNeXt stem and downsampling, ViT patch
    /// embedding) on x [N, C, H, W] (or [N, H, W, C] when `channelsLast`), `height`×`width` the
    /// input's spatial size; returns [N, H/k, W/k, Cout] (channels-last). fp32/fp16: `Conv` between
    /// transposes. int8: as SwiftCLIP runs it, each output pixel's patch one GEMM row in (ky, kx, c)
    /// order (`Ops.patchConvWeight`), so each patch is quantised on its own.
    func patchConv(_ x: String, channelsLast: Bool, weightKey: String, biasKey: String?, kernel k: Int,
                   height: Int, width: Int) throws -> String {
        let bias = try biasKey.map { try weight($0) }
        guard format == .int8 else {
            let y = conv(channelsLast ? transpose(x, Self.toNCHW) : x, weight: try weight(weightKey), bias: bias, kernel: k, stride: k)
            return transpose(y, Self.toNHWC)
        }
        let t = try tensor(weightKey)
        let channels = t.shape[1]
        guard height % k == 0, width % k == 0 else {
            throw ONNXExportError.unsupportedModel("int8 patch convolution '\(weightKey)': kernel \(k) does not divide the \(height)×\(width) input")
        }
        let (oh, ow) = (Int64(height / k), Int64(width / k)), (k64, c64) = (Int64(k), Int64(channels))
        let nhwc = channelsLast ? x : transpose(x, Self.toNHWC)
        let blocks = transpose(reshape(nhwc, [0, oh, k64, ow, k64, c64]), [0, 1, 3, 2, 4, 5])   // [N, oh, ow, ky, kx, C]
        let patches = reshape(blocks, [0, oh, ow, k64 * k64 * c64])
        let y = quantizedMatMul(patches, quantizedWeight(weightKey, try PackedMatrix(kByN: Ops.patchConvWeight(fromOIHW: t), precision: .int8)))
        return bias.map { op("Add", y, $0) } ?? y
    }

    /// LayerNorm over the last axis with `prefix.weight` / `prefix.bias`: the LayerNormalization op
    /// from opset 17, below that ReduceMean/Sub/Mul/Add/Sqrt/Div (as PyTorch computes it: biased variance).
    func layerNorm(_ x: String, _ prefix: String, eps: Float) throws -> String {
        let w = try weight("\(prefix).weight"), b = try weight("\(prefix).bias")
        if opset >= 17 {
            return node("LayerNormalization", [x, w, b], attributes: [Self.attribute("axis", int: -1),
                                                                     Self.attribute("epsilon", float: eps)])[0]
        }
        let mean = reduce("ReduceMean", x, axes: [-1], keepdims: true)
        let centred = op("Sub", x, mean)
        let variance = reduce("ReduceMean", op("Mul", centred, centred), axes: [-1], keepdims: true)
        let std = op("Sqrt", op("Add", variance, floatScalar(eps)))
        return op("Add", op("Mul", op("Div", centred, std), w), b)
    }

    /// Exact GELU, 0.5·x·(1 + erf(x/√2)) (ONNX has no Gelu op before opset 20).
    func gelu(_ x: String) -> String {
        let erf = op("Erf", op("Mul", x, floatScalar(Float(1 / 2.0.squareRoot()))))
        return op("Mul", op("Mul", x, floatScalar(0.5)), op("Add", erf, floatScalar(1)))
    }

    /// QuickGELU, x·σ(1.702·x).
    func quickGelu(_ x: String) -> String {
        op("Mul", x, op("Sigmoid", op("Mul", x, floatScalar(1.702))))
    }

    func activation(_ x: String, quick: Bool) -> String {
        quick ? quickGelu(x) : gelu(x)
    }

    func conv(_ x: String, weight w: String, bias b: String?, kernel: Int, stride: Int, pad: Int = 0, group: Int = 1) -> String {
        var attributes = [Self.attribute("kernel_shape", ints: [kernel, kernel]), Self.attribute("strides", ints: [stride, stride]),
                          Self.attribute("pads", ints: [pad, pad, pad, pad])]
        if group != 1 { attributes.append(Self.attribute("group", int: group)) }
        return node("Conv", [x, w] + (b.map { [$0] } ?? []), attributes: attributes)[0]
    }
}
