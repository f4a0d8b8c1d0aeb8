import CLIPEngine
import CLIPNN
import Foundation

/// A config that cannot be read or asks for something SwiftCLIP does not build.
public enum ConfigError: Error, CustomStringConvertible, Equatable {
    case unreadable(path: String, reason: String)
    case invalidField(String, expected: String, source: String)
    case unsupported(String, source: String)
    case unknownModel(String, available: [String])

    public var description: String {
        switch self {
        case let .unreadable(p, r): return "cannot read model config \(p): \(r)"
        case let .invalidField(f, e, s): return "\(s): field '\(f)' must be \(e)"
        case let .unsupported(what, s): return "\(s): unsupported: \(what)"
        case let .unknownModel(n, a):
            return "unknown model '\(n)': give a built-in name (\(a.joined(separator: ", "))) or a path to an open_clip JSON config"
        }
    }
}

/// open_clip's model config (`embed_dim`, `vision_cfg`, `text_cfg`, `quick_gelu`), with open_clip's defaults.
public struct CLIPConfig: Equatable, Sendable {
    public var embedDim: Int
    public var quickGelu: Bool
    public var vision: VisionConfig
    public var text: TextConfig
    /// Where the config came from (built-in name or file path), for error messages.
    public var source: String
    /// How images are preprocessed for this model (`preprocess_cfg`; open_clip's defaults without one).
    public var preprocess = PreprocessConfig()

    public enum VisionConfig: Equatable, Sendable {
        case timm(TimmVisionConfig)
        case vit(ViTConfig)

        public var imageSize: Int {
            switch self {
            case .timm(let c): return c.imageSize
            case .vit(let c): return c.imageSize
            }
        }
    }

    /// open_clip's `TimmModel` tower (`timm_model_name` …).
    public struct TimmVisionConfig: Equatable, Sendable {
        public var modelName: String
        public var pool: String        // "avg" or "" (network default, avg for ConvNeXt)
        public var proj: String        // "linear", "mlp", "none", or "" (the trunk's own classifier projects)
        public var projBias: Bool
        public var imageSize: Int
        /// `timm_drop_path`: timm's stochastic-depth rate (training only; null/absent = 0).
        public var dropPath: Double = 0
    }

    /// open_clip's `VisionTransformer` (`layers`, `width`, `patch_size` …).
    public struct ViTConfig: Equatable, Sendable {
        public var imageSize: Int
        public var patchSize: Int
        public var width: Int
        public var layers: Int
        public var headWidth: Int
        public var mlpRatio: Double
        public var heads: Int { width / headWidth }
        public var gridSize: Int { imageSize / patchSize }
    }

    public struct TextConfig: Equatable, Sendable {
        public var contextLength: Int
        public var vocabSize: Int
        public var width: Int
        public var heads: Int
        public var layers: Int
        public var mlpRatio: Double
    }
}

extension CLIPConfig {
    /// Upper bounds per field, far above any released CLIP model (ViT-bigG: width 1664, 48 layers;
    /// ConvNeXt-XXL: 256 px). They keep every product of fields inside 64 bits; whether the model
    /// fits in memory is checked separately, before its weights are allocated (`estimatedBytes`).
    public enum Limits {
        public static let imageSize = 16_384
        public static let width = 32_768
        public static let layers = 1_024
        public static let contextLength = 16_384
        public static let vocabSize = 16_777_216
        public static let embedDim = 65_536
        /// Largest MLP hidden size, `Int(width · mlp_ratio)`.
        public static let mlpHidden = 1 << 20
    }

    /// Parses open_clip's JSON config. Options that change the architecture in ways SwiftCLIP does
    /// not build are rejected by name rather than silently ignored.
    public static func parse(json data: Data, source: String) throws -> CLIPConfig {
        if let problem = JSONSyntax.firstError(in: data) {
            throw ConfigError.unreadable(path: source, reason: "not valid JSON: \(problem)")
        }
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) } catch {
            throw ConfigError.unreadable(path: source, reason: "not valid JSON (\(error.localizedDescription))")
        }
        guard let top = object as? [String: Any] else {
            let kind = object is NSNull ? "null" : object is [Any] ? "an array" : object is String ? "a string" : "a number or boolean"
            throw ConfigError.unreadable(path: source, reason: "the top level is \(kind), not a JSON object")
        }
        // A hub folder's open_clip_config.json wraps the model config: {"model_cfg", "preprocess_cfg"}.
        var root = top
        let preprocessRaw = top["preprocess_cfg"]
        if let wrapped = top["model_cfg"] {
            guard let m = wrapped as? [String: Any] else {
                throw ConfigError.invalidField("model_cfg", expected: "a JSON object", source: source)
            }
            root = m
        }
        let preprocess = try PreprocessConfig.parse(preprocessRaw, source: source)
        let r = FieldReader(dict: root, path: "", source: source)
        let visionDict = try r.object("vision_cfg")
        let textDict = try r.object("text_cfg")
        let v = FieldReader(dict: visionDict, path: "vision_cfg.", source: source)
        let t = FieldReader(dict: textDict, path: "text_cfg.", source: source)

        for key in ["custom_text", "hf_model_name"] where root[key] != nil || textDict[key] != nil {
            if key == "custom_text", (root[key] as? Bool) == false { continue }
            throw ConfigError.unsupported("'\(key)' (only the CLIP text Transformer is built)", source: source)
        }
        if let hf = textDict["hf_model_name"], !(hf is NSNull) {
            throw ConfigError.unsupported("text_cfg.hf_model_name (Hugging Face text towers)", source: source)
        }

        let vision: VisionConfig
        if let name = try v.optionalString("timm_model_name") {
            if try v.bool("timm_model_pretrained", default: false) {
                throw ConfigError.unsupported("vision_cfg.timm_model_pretrained=true (load weights with --weights instead)", source: source)
            }
            let pool = try v.string("timm_pool", default: "avg")
            guard pool == "avg" || pool.isEmpty else {
                throw ConfigError.unsupported("vision_cfg.timm_pool '\(pool)' (supported: \"avg\", \"\")", source: source)
            }
            let proj = try v.string("timm_proj", default: "linear")
            guard ["linear", "mlp", "none", ""].contains(proj) else {
                throw ConfigError.unsupported("vision_cfg.timm_proj '\(proj)' (supported: linear, mlp, none, \"\")", source: source)
            }
            if pool.isEmpty && (proj == "none" || proj.isEmpty) {
                throw ConfigError.unsupported("timm_pool \"\" with timm_proj '\(proj)': the trunk would return an unpooled feature map", source: source)
            }
            vision = .timm(TimmVisionConfig(modelName: name, pool: pool, proj: proj,
                                            projBias: try v.bool("timm_proj_bias", default: false),
                                            imageSize: try v.imageSize(), dropPath: try v.probability("timm_drop_path")))
        } else {
            let unsupported: [(String, Any)] = [("attentional_pool", false), ("no_ln_pre", false), ("final_ln_after_pool", false),
                                                ("output_tokens", false)]
            for (key, def) in unsupported where visionDict[key] != nil {
                if let b = visionDict[key] as? Bool, b == (def as? Bool) { continue }
                throw ConfigError.unsupported("vision_cfg.\(key)", source: source)
            }
            if let p = visionDict["pool_type"] as? String, p != "tok" {
                throw ConfigError.unsupported("vision_cfg.pool_type '\(p)' (supported: tok)", source: source)
            }
            if let ls = visionDict["ls_init_value"], !(ls is NSNull) {
                throw ConfigError.unsupported("vision_cfg.ls_init_value (layer scale in ViT)", source: source)
            }
            let imageSize = try v.imageSize()
            let width = try v.int("width", default: 768, max: Limits.width)
            let c = ViTConfig(imageSize: imageSize, patchSize: try v.int("patch_size", default: 16, max: imageSize),
                              width: width, layers: try v.int("layers", default: 12, max: Limits.layers),
                              headWidth: try v.int("head_width", default: 64, max: width), mlpRatio: try v.mlpRatio(width: width))
            guard c.imageSize % c.patchSize == 0 else {
                throw ConfigError.invalidField("vision_cfg.image_size", expected: "a multiple of patch_size \(c.patchSize)", source: source)
            }
            guard c.width % c.headWidth == 0 else {
                throw ConfigError.invalidField("vision_cfg.width", expected: "a multiple of head_width \(c.headWidth)", source: source)
            }
            vision = .vit(c)
        }

        for key in ["embed_cls", "no_causal_mask", "final_ln_after_pool", "output_tokens", "proj_bias"] {
            if let b = textDict[key] as? Bool, b {
                throw ConfigError.unsupported("text_cfg.\(key)", source: source)
            }
        }
        if let p = textDict["pool_type"] as? String, p != "argmax" {
            throw ConfigError.unsupported("text_cfg.pool_type '\(p)' (supported: argmax)", source: source)
        }
        if let p = textDict["proj_type"] as? String, p != "linear" {
            throw ConfigError.unsupported("text_cfg.proj_type '\(p)' (supported: linear)", source: source)
        }
        if let ls = textDict["ls_init_value"], !(ls is NSNull) {
            throw ConfigError.unsupported("text_cfg.ls_init_value (layer scale in the text tower)", source: source)
        }
        let textWidth = try t.int("width", default: 512, max: Limits.width)
        let text = TextConfig(contextLength: try t.int("context_length", default: 77, max: Limits.contextLength),
                              vocabSize: try t.int("vocab_size", default: 49408, max: Limits.vocabSize),
                              width: textWidth, heads: try t.int("heads", default: 8, max: textWidth),
                              layers: try t.int("layers", default: 12, max: Limits.layers), mlpRatio: try t.mlpRatio(width: textWidth))
        guard text.width % text.heads == 0 else {
            throw ConfigError.invalidField("text_cfg.width", expected: "a multiple of heads \(text.heads)", source: source)
        }
        return CLIPConfig(embedDim: try r.int("embed_dim", max: Limits.embedDim), quickGelu: try r.bool("quick_gelu", default: false),
                          vision: vision, text: text, source: source, preprocess: preprocess)
    }

    public static func load(contentsOf url: URL) throws -> CLIPConfig {
        let data: Data
        do { data = try InputFile.read(url.path, maximumBytes: 16 << 20) } catch let e as InputFileError {
            throw ConfigError.unreadable(path: url.path, reason: e.reason)
        }
        return try parse(json: data, source: url.path)
    }
}

/// Typed access to a JSON object's fields; errors name the field path and the file.
private struct FieldReader {
    let dict: [String: Any]
    let path: String
    let source: String

    func fail(_ key: String, _ expected: String) -> ConfigError {
        .invalidField(path + key, expected: expected, source: source)
    }

    func object(_ key: String) throws -> [String: Any] {
        guard let o = dict[key] as? [String: Any] else { throw fail(key, "a JSON object") }
        return o
    }

    /// An integer in 1...max (checked as a Double first, so 1e300 or 2^63 never reach `Int`).
    func int(_ key: String, default def: Int? = nil, max: Int) throws -> Int {
        guard let raw = dict[key] else {
            if let def { return def }
            throw fail(key, "present (an integer in 1...\(max))")
        }
        return try Self.boundedInt(raw, max: max) ?? { throw fail(key, "an integer in 1...\(max)") }()
    }

    static func boundedInt(_ raw: Any, max: Int) -> Int? {
        // (Foundation on Linux bridges JSON 1 to a value that also casts to Bool, so no Bool check.)
        guard let n = raw as? NSNumber else { return nil }
        let d = n.doubleValue
        guard d.isFinite, d == d.rounded(), d >= 1, d <= Double(max) else { return nil }
        return Int(d)
    }

    /// `mlp_ratio`: a finite positive number whose hidden size `Int(width · ratio)` is in 1...Limits.mlpHidden.
    func mlpRatio(width: Int) throws -> Double {
        guard let raw = dict["mlp_ratio"] else { return 4 }
        let expected = "a number giving an MLP hidden size Int(width \(width) · mlp_ratio) in 1...\(CLIPConfig.Limits.mlpHidden)"
        guard let n = raw as? NSNumber else { throw fail("mlp_ratio", expected) }
        let ratio = n.doubleValue, hidden = Double(width) * ratio
        guard ratio.isFinite, ratio > 0, hidden.isFinite, hidden >= 1, hidden <= Double(CLIPConfig.Limits.mlpHidden) else {
            throw fail("mlp_ratio", expected)
        }
        return ratio
    }

    /// A rate in [0, 1); null or absent is 0.
    func probability(_ key: String) throws -> Double {
        guard let raw = dict[key], !(raw is NSNull) else { return 0 }
        guard let n = raw as? NSNumber, n.doubleValue >= 0, n.doubleValue < 1 else { throw fail(key, "a number in [0, 1)") }
        return n.doubleValue
    }

    func bool(_ key: String, default def: Bool) throws -> Bool {
        guard let raw = dict[key], !(raw is NSNull) else { return def }
        guard let b = raw as? Bool else { throw fail(key, "true or false") }
        return b
    }

    func optionalString(_ key: String) throws -> String? {
        guard let raw = dict[key], !(raw is NSNull) else { return nil }
        guard let s = raw as? String else { throw fail(key, "a string") }
        return s
    }

    func string(_ key: String, default def: String) throws -> String {
        try optionalString(key) ?? def
    }

    /// `image_size` may be an integer or a square [h, w] pair.
    func imageSize() throws -> Int {
        let max = CLIPConfig.Limits.imageSize
        if let pair = dict["image_size"] as? [Any] {
            guard pair.count == 2, let h = Self.boundedInt(pair[0], max: max), let w = Self.boundedInt(pair[1], max: max), h == w else {
                throw fail("image_size", "an integer in 1...\(max) or a square [size, size] pair of them")
            }
            return h
        }
        return try int("image_size", default: 224, max: max)
    }
}
