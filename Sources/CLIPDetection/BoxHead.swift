import CLIPEngine
import CLIPNN
import Foundation

/// What a box head is: its widths, the input it was trained at, and the category names its
/// in-vocabulary embedding head was trained on (stored with the weights).
public struct BoxHeadConfig: Codable, Equatable, Sendable {
    /// Channels of the head's input rows: stage 3's width plus stage 4's.
    public var inputWidth: Int
    public var hidden: Int
    /// Width of the in-vocabulary embedding output (the CLIP embed_dim); 0 for none.
    public var embedDim: Int
    /// Input side (pixels) the backbone saw in training, and the feature stride (16: stage 3).
    public var imageSize: Int
    public var stride: Int
    /// Categories the embedding head was trained to tell apart (F-VLM's "base" vocabulary).
    public var vocabulary: [String]
    /// Inverse temperature of the embedding head's cosine logits.
    public var logitScale: Double

    public init(inputWidth: Int, hidden: Int, embedDim: Int, imageSize: Int, stride: Int = 16,
                vocabulary: [String], logitScale: Double = 50) {
        self.inputWidth = inputWidth; self.hidden = hidden; self.embedDim = embedDim
        self.imageSize = imageSize; self.stride = stride; self.vocabulary = vocabulary; self.logitScale = logitScale
    }

    static let metadataKey = "swiftclip.box_head"
}

/// A light one-stage, class-agnostic box head in the style of FCOS, on the frozen backbone's
/// stride-16 map (stage 3, with stage 4 upsampled beside it): per location, LayerNorm → Linear →
/// GELU → Linear to an objectness logit, four box distances (left, top, right, bottom, as
/// stride · exp(raw)) and, optionally, a CLIP-space embedding (F-VLM's in-vocabulary head: its
/// cosine to the class texts is the detector's own class score). Each location is a row, so the
/// head's 1×1 "convolutions" are the engine's `Linear` with its backward.
public struct BoxHead {
    public let config: BoxHeadConfig
    public let weights: WeightBuilder
    let norm: LayerNorm
    let fc1: Linear
    let fc2: Linear

    /// Outputs per location: objectness, 4 distances, then the embedding.
    public var outputWidth: Int { 5 + config.embedDim }

    public init(config: BoxHeadConfig, weights source: WeightSource? = nil, seed: UInt64 = 0) throws {
        guard config.inputWidth > 0, config.hidden > 0, config.embedDim >= 0, config.stride > 0, config.imageSize >= 32 else {
            throw DetectionError.invalidArgument("box head config out of range: \(config)")
        }
        self.config = config
        let builder = WeightBuilder(source: source, seed: seed)
        let root = builder.root
        norm = try LayerNorm(root.scope("norm"), dim: config.inputWidth, eps: 1e-6)
        fc1 = try Linear(root.scope("fc1"), in: config.inputWidth, out: config.hidden, weightInit: .truncatedNormal(std: 0.02), biasInit: .zeros)
        // Objectness starts at the focal-loss prior (RetinaNet: bias −log((1 − π)/π), π = 0.01).
        fc2 = try Linear(root.scope("fc2"), in: config.hidden, out: 5 + config.embedDim, weightInit: .truncatedNormal(std: 0.01), biasInit: .zeros)
        try builder.finish()
        weights = builder
        if source == nil {
            fc2.biasParameter?.updateValue { $0[0] = Float(-Foundation.log(99.0)) }
        }
    }

    /// Loads a head written by `save`.
    public static func load(_ url: URL) throws -> BoxHead {
        let file = try SafetensorsFile.read(url)
        guard let json = file.metadata[BoxHeadConfig.metadataKey] else {
            throw DetectionError.badFile(url.path, "not a box head (no '\(BoxHeadConfig.metadataKey)' in its metadata)")
        }
        let config: BoxHeadConfig
        do { config = try JSONDecoder().decode(BoxHeadConfig.self, from: Data(json.utf8)) } catch {
            throw DetectionError.badFile(url.path, "unreadable box head config (\(error))")
        }
        return try BoxHead(config: config, weights: SafetensorsWeights(url: url))
    }

    public var metadata: [String: String] {
        let e = JSONEncoder(); e.outputFormatting = [.sortedKeys]
        return [BoxHeadConfig.metadataKey: String(decoding: (try? e.encode(config)) ?? Data(), as: UTF8.self), "format": "pt"]
    }

    public func save(to url: URL) throws { try weights.save(to: url, metadata: metadata) }

    /// The head's input rows [h·w, C3 + C4] of one image: each stride-16 location's stage-3
    /// features with the stage-4 features of the stride-32 cell it lies in.
    public static func inputRows(stage3: Tensor, stage4: Tensor, image n: Int) throws -> Tensor {
        guard stage3.rank == 4, stage4.rank == 4, stage3.shape[0] == stage4.shape[0], (0..<stage3.shape[0]).contains(n) else {
            throw TensorError.shapeMismatch("inputRows: stage maps \(stage3.shape), \(stage4.shape), image \(n)")
        }
        let (h, w, c3) = (stage3.shape[1], stage3.shape[2], stage3.shape[3])
        let (h4, w4, c4) = (stage4.shape[1], stage4.shape[2], stage4.shape[3])
        let out = Tensor(uninitializedShape: [h * w, c3 + c4])
        stage3.withUnsafeBufferPointer { s3 in
            stage4.withUnsafeBufferPointer { s4 in
                let o = out.storage.pointer
                for y in 0..<h {
                    for x in 0..<w {
                        let row = o + (y * w + x) * (c3 + c4)
                        let a = s3.baseAddress! + ((n * h + y) * w + x) * c3
                        let (y4, x4) = (min(y / 2, h4 - 1), min(x / 2, w4 - 1))
                        let b = s4.baseAddress! + ((n * h4 + y4) * w4 + x4) * c4
                        row.update(from: a, count: c3)
                        (row + c3).update(from: b, count: c4)
                    }
                }
            }
        }
        return out
    }

    public struct Saved { let input: Tensor, normed: Tensor, z: Tensor, hidden: Tensor }

    /// Rows [M, inputWidth] -> raw outputs [M, 5 + embedDim], keeping what `backward` needs.
    public func forward(_ rows: Tensor) throws -> (Tensor, Saved) {
        guard rows.rank == 2, rows.shape[1] == config.inputWidth else {
            throw TensorError.shapeMismatch("box head: expected rows [M, \(config.inputWidth)], got \(rows.shape)")
        }
        let normed = try norm(rows)
        let z = try fc1(normed)
        let hidden = Ops.activation(z, .gelu)
        return (try fc2(hidden), Saved(input: rows, normed: normed, z: z, hidden: hidden))
    }

    /// Adds every parameter's gradient for ∂loss/∂outputs.
    public func backward(_ dOut: Tensor, saved s: Saved) throws {
        let dHidden = try fc2.backward(dOut, input: s.hidden).required("box head fc2 backward")
        let dz = try Ops.activationBackward(dHidden, preActivation: s.z, .gelu)
        let dNormed = try fc1.backward(dz, input: s.normed).required("box head fc1 backward")
        _ = try norm.backward(dNormed, input: s.input)
    }

    public var parameters: [Parameter] { weights.tree.parameters }
}
