import Foundation

/// open_clip's `PreprocessCfg` as a hub folder's `open_clip_config.json` (or a bare config's
/// `preprocess_cfg`) gives it: what `image_transform_v2` builds the eval transform from. `size` is
/// not kept: open_clip replaces it with the model's image size.
public struct PreprocessConfig: Equatable, Sendable {
    public static let openAIMean = [0.48145466, 0.4578275, 0.40821073]
    public static let openAIStd = [0.26862954, 0.26130258, 0.27577711]

    public var mean: [Double] = openAIMean
    public var std: [Double] = openAIStd
    /// "bicubic" or "bilinear" (open_clip's "random" is bicubic at eval).
    public var interpolation = "bicubic"
    /// "shortest", "longest" or "squash".
    public var resizeMode = "shortest"
    /// Padding colour of "longest", every band (0...255).
    public var fillColor = 0

    public init() {}

    /// Reads `preprocess_cfg` (absent or null: open_clip's defaults); errors name the field and file.
    static func parse(_ raw: Any?, source: String) throws -> PreprocessConfig {
        var c = PreprocessConfig()
        guard let raw, !(raw is NSNull) else { return c }
        guard let d = raw as? [String: Any] else {
            throw ConfigError.invalidField("preprocess_cfg", expected: "a JSON object", source: source)
        }
        func fail(_ key: String, _ expected: String) -> ConfigError {
            .invalidField("preprocess_cfg." + key, expected: expected, source: source)
        }
        /// A number (repeated for the 3 channels, as open_clip does) or 3 numbers.
        func triple(_ key: String, positive: Bool) throws -> [Double]? {
            guard let v = d[key], !(v is NSNull) else { return nil }
            let expected = positive ? "a positive number or 3 of them" : "a number or 3 of them"
            let values: [Double]
            if let n = jsonNumber(v) {
                values = Array(repeating: n.doubleValue, count: 3)
            } else if let a = v as? [Any], a.count == 3 {
                values = try a.map { e in
                    guard let n = jsonNumber(e) else { throw fail(key, expected) }
                    return n.doubleValue
                }
            } else {
                throw fail(key, expected)
            }
            guard values.allSatisfy({ $0.isFinite && (!positive || $0 > 0) }) else { throw fail(key, expected) }
            return values
        }
        if let m = try triple("mean", positive: false) { c.mean = m }
        if let s = try triple("std", positive: true) { c.std = s }
        if let v = d["interpolation"], !(v is NSNull) {
            guard let s = v as? String, ["bicubic", "bilinear", "random"].contains(s) else {
                throw fail("interpolation", "\"bicubic\", \"bilinear\" or \"random\"")
            }
            c.interpolation = s == "random" ? "bicubic" : s
        }
        if let v = d["resize_mode"], !(v is NSNull) {
            guard let s = v as? String, ["shortest", "longest", "squash"].contains(s) else {
                throw fail("resize_mode", "\"shortest\", \"longest\" or \"squash\"")
            }
            c.resizeMode = s
        }
        if let v = d["fill_color"], !(v is NSNull) {
            guard let n = jsonNumber(v), n.doubleValue == n.doubleValue.rounded(),
                  (0...255).contains(n.doubleValue) else {
                throw fail("fill_color", "an integer in 0...255")
            }
            c.fillColor = n.intValue
        }
        if let v = d["mode"], !(v is NSNull), (v as? String) != "RGB" {
            throw fail("mode", "\"RGB\" (open_clip supports no other)")
        }
        return c
    }
}

extension ModelRegistry {
    /// The file open_clip's hub folders (`push_to_hf_hub` / `save_for_hf`) keep their config in.
    public static let hubConfigName = "open_clip_config.json"

    /// True when `path` is a folder holding `open_clip_config.json`.
    public static func isHubFolder(_ path: String) -> Bool {
        var isFolder: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) && isFolder.boolValue
            && FileManager.default.fileExists(atPath: (path as NSString).appendingPathComponent(hubConfigName))
    }

    /// The weights file of a hub folder, chosen as open_clip's `_find_checkpoint_in_dir` does: the
    /// first of its preferred names present, else the first .safetensors, .bin, .pth (sorted,
    /// safetensors first); nil when there is none.
    public static func hubWeights(in folder: String) -> URL? {
        let preferred = ["open_clip_model.safetensors", "open_clip_pytorch_model.safetensors", "open_clip_pytorch_model.bin",
                         "open_clip_pytorch_model.pth", "model.safetensors", "pytorch_model.bin", "pytorch_model.pth", "model.pth"]
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter {
            var isFolder: ObjCBool = false
            return FileManager.default.fileExists(atPath: (folder as NSString).appendingPathComponent($0), isDirectory: &isFolder)
                && !isFolder.boolValue
        }
        let candidates = names.filter { [".safetensors", ".bin", ".pth"].contains(where: $0.hasSuffix) }.sorted()
        let chosen = preferred.first(where: candidates.contains)
            ?? candidates.first(where: { $0.hasSuffix(".safetensors") }) ?? candidates.first
        return chosen.map { URL(fileURLWithPath: (folder as NSString).appendingPathComponent($0)) }
    }

    /// For a hub folder, its weights file (an error when it has none); nil for anything else.
    public static func hubFolderWeights(_ nameOrPath: String) throws -> URL? {
        guard builtIn[nameOrPath] == nil, isHubFolder(nameOrPath) else { return nil }
        guard let url = hubWeights(in: nameOrPath) else {
            throw ConfigError.unreadable(path: nameOrPath, reason: "hub folder without a weights file "
                                         + "(open_clip_model.safetensors or open_clip_pytorch_model.bin)")
        }
        return url
    }
}

/// A JSON number, not `true`/`false`. (`v is Bool` cannot tell them apart: Foundation on Linux
/// bridges the numbers 0 and 1 — `1.0` too — to values that also cast to Bool, so `"std": [1, 1, 1]`
/// was refused; JSON's booleans are the `NSNumber` subclass that `NSNumber(value: true)` is.)
func jsonNumber(_ v: Any) -> NSNumber? {
    guard let n = v as? NSNumber, type(of: n) != type(of: NSNumber(value: true)) else { return nil }
    return n
}
