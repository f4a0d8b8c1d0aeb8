import CLIPEngine
import CLIPNN
import Foundation

extension CLIPModel {
    /// Loads timm's ImageNet checkpoint of the image trunk (`stem.0.weight`, `stages.*`,
    /// `head.norm.*`, `head.fc.*` as `convnextv2_tiny.fcmae_ft_in22k_in1k` has them; safetensors or
    /// a torch `.bin`) into `visual.trunk.*`, as open_clip's `TimmModel(pretrained=True)` does:
    /// timm loads the whole checkpoint, then `reset_classifier` replaces `head.fc` — so the
    /// classifier is dropped and everything else, `head.norm` included, is kept. Strict otherwise:
    /// a trunk parameter the file lacks, a key the trunk lacks, or a wrong shape is an error naming it.
    /// Returns the number of tensors loaded.
    @discardableResult
    public func loadPretrainedImageTrunk(from url: URL) throws -> Int {
        guard case .timm = config.vision else {
            throw WeightError.unreadable(key: "visual.trunk", source: url.path,
                                         reason: "--pretrained-image needs a timm image tower (timm_model_name); this model's is a ViT")
        }
        let source = try WeightFiles.open(url)
        let classifier = "head.fc."
        let expected = Set(parameters.keys.filter { $0.hasPrefix("visual.trunk.") && !$0.hasPrefix("visual.trunk." + classifier) })
        var values: [String: Tensor] = [:]
        var unexpected: [String] = []
        for key in source.allKeys where !key.hasPrefix(classifier) {
            let target = "visual.trunk." + key
            guard expected.contains(target) else { unexpected.append(key); continue }
            values[target] = try source.tensor(forKey: key)
        }
        if !unexpected.isEmpty { throw WeightError.unexpectedKeys(unexpected.sorted(), source: source.sourceName) }
        if let missing = expected.subtracting(values.keys).sorted().first {
            throw WeightError.missingKey(String(missing.dropFirst("visual.trunk.".count)), source: source.sourceName)
        }
        try parameters.update(values, strict: false, source: source.sourceName)
        return values.count
    }
}
