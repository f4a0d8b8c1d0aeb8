import Foundation

/// Built-in model configs, verbatim open_clip JSON, so that the same parser serves files and names.
public enum ModelRegistry {
    static let clipText = #""text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12}"#

    public static let builtIn: [String: String] = [
        "convnext_v2_tiny": #"""
            {"embed_dim": 512, "vision_cfg": {"timm_model_name": "convnextv2_tiny", "timm_model_pretrained": false,
             "timm_pool": "avg", "timm_proj": "linear", "timm_drop": 0.0, "timm_drop_path": 0.1, "image_size": 224},
            \#(clipText)}
            """#,
        "ViT-B-32": #"""
            {"embed_dim": 512, "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 32},
            \#(clipText)}
            """#,
        "ViT-B-32-quickgelu": #"""
            {"embed_dim": 512, "quick_gelu": true, "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 32},
            \#(clipText)}
            """#,
    ]

    public static var names: [String] { builtIn.keys.sorted() }

    /// A built-in name, a path to an open_clip JSON config, or a Hugging Face hub folder as open_clip
    /// publishes it (`open_clip_config.json`: `model_cfg` and `preprocess_cfg`).
    public static func config(named nameOrPath: String) throws -> CLIPConfig {
        if let json = builtIn[nameOrPath] {
            return try CLIPConfig.parse(json: Data(json.utf8), source: nameOrPath)
        }
        // Anything that looks like a path, or exists at all (a directory, a symlink loop), is read as
        // a file so that the error says what is wrong with it.
        if isHubFolder(nameOrPath) {
            return try CLIPConfig.load(contentsOf: URL(fileURLWithPath: (nameOrPath as NSString).appendingPathComponent(hubConfigName)))
        }
        var info = stat()
        if nameOrPath.hasSuffix(".json") || nameOrPath.contains("/") || lstat(nameOrPath, &info) == 0 {
            return try CLIPConfig.load(contentsOf: URL(fileURLWithPath: nameOrPath))
        }
        throw ConfigError.unknownModel(nameOrPath, available: names)
    }
}

/// timm's ConvNeXt variants (depths and dims as `timm.models.convnext` registers them).
public struct ConvNeXtSpec: Equatable, Sendable {
    public var depths: [Int]
    public var dims: [Int]
    /// V2: GlobalResponseNorm in the MLP, no layer scale. V1: layer scale `gamma` (init 1e-6).
    public var isV2: Bool
    /// timm's `conv_mlp`: the MLP is 1×1 convolutions (weights saved as [out, in, 1, 1]).
    public var convMLP: Bool
    public var normEps: Float = 1e-6

    public init(depths: [Int], dims: [Int], isV2: Bool, convMLP: Bool, normEps: Float = 1e-6) {
        self.depths = depths
        self.dims = dims
        self.isV2 = isV2
        self.convMLP = convMLP
        self.normEps = normEps
    }

    /// timm's sizes (depths, dims); V1 and V2 share them. The small ones use `conv_mlp`.
    static let sizes: [String: (depths: [Int], dims: [Int])] = [
        "atto": ([2, 2, 6, 2], [40, 80, 160, 320]),
        "femto": ([2, 2, 6, 2], [48, 96, 192, 384]),
        "pico": ([2, 2, 6, 2], [64, 128, 256, 512]),
        "nano": ([2, 2, 8, 2], [80, 160, 320, 640]),
        "tiny": ([3, 3, 9, 3], [96, 192, 384, 768]),
        "small": ([3, 3, 27, 3], [96, 192, 384, 768]),
        "base": ([3, 3, 27, 3], [128, 256, 512, 1024]),
        "large": ([3, 3, 27, 3], [192, 384, 768, 1536]),
        "xlarge": ([3, 3, 27, 3], [256, 512, 1024, 2048]),
        "huge": ([3, 3, 27, 3], [352, 704, 1408, 2816]),
    ]
    static let convMLPSizes: Set<String> = ["atto", "femto", "pico", "nano"]
    static let v1Sizes: Set<String> = ["atto", "femto", "pico", "nano", "tiny", "small", "base", "large", "xlarge"]
    static let v2Sizes: Set<String> = ["atto", "femto", "pico", "nano", "tiny", "small", "base", "large", "huge"]

    public static var knownNames: [String] {
        (v1Sizes.map { "convnext_\($0)" } + v2Sizes.map { "convnextv2_\($0)" }).sorted()
    }

    /// The spec for a timm model name such as `convnextv2_tiny`, or nil if SwiftCLIP does not build it.
    public static func named(_ timmName: String) -> ConvNeXtSpec? {
        for (prefix, isV2, available) in [("convnextv2_", true, v2Sizes), ("convnext_", false, v1Sizes)] where timmName.hasPrefix(prefix) {
            let size = String(timmName.dropFirst(prefix.count))
            guard available.contains(size), let s = sizes[size] else { return nil }
            return ConvNeXtSpec(depths: s.depths, dims: s.dims, isV2: isV2, convMLP: convMLPSizes.contains(size))
        }
        return nil
    }
}
