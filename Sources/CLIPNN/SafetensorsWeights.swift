import CLIPEngine
import Foundation

/// open_clip weights in a `.safetensors` file (keys exactly `model.state_dict()`'s).
public final class SafetensorsWeights: WeightSource {
    public let file: SafetensorsFile
    public let url: URL

    public init(url: URL) throws {
        self.url = url
        self.file = try SafetensorsFile.read(url)
    }

    public var sourceName: String { url.path }
    public var allKeys: [String] { file.keys }

    public func tensor(forKey key: String) throws -> Tensor? {
        guard file.info(key) != nil else { return nil }
        do {
            return try file.tensor(key)
        } catch {
            throw WeightError.unreadable(key: key, source: url.path, reason: "\(error)")
        }
    }
}

extension WeightBuilder {
    /// Writes the model's parameters as open_clip's `state_dict()` (fp32), atomically.
    public func save(to url: URL, metadata: [String: String] = [:]) throws {
        try Safetensors.write(stateDictionary, metadata: metadata, to: url)
    }

    /// `stateDict` keyed by name (references to the parameters' tensors, not copies).
    public var stateDictionary: [String: Tensor] {
        var dict: [String: Tensor] = [:]
        for (k, t) in stateDict { dict[k] = t }
        return dict
    }

    /// Number of scalar parameters whose key satisfies `filter`.
    public func parameterCount(where filter: (String) -> Bool = { _ in true }) -> Int {
        tree.count(where: filter)
    }
}
