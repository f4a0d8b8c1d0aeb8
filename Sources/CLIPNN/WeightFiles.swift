import CLIPEngine
import Foundation

/// The one entry point for a weights file given by path (`--weights`, `--pretrained`,
/// `--resume`, `CLIP(weights:)`): the format is told by the file's first bytes, not its name,
/// so open_clip's `.safetensors`, hub `open_clip_pytorch_model.bin`, timm's `pytorch_model.bin`
/// and open_clip_train's `epoch_K.pt` all load the same way.
public enum WeightFiles {
    public enum Format: String, Sendable {
        case safetensors
        /// torch.save's zip format (`.pt`, `.pth`, `.bin`).
        case torch
    }

    /// The file's format by content. torch's legacy (pre-1.6, non-zip) format is refused by name.
    public static func format(of url: URL) throws -> Format {
        let path = url.path
        try InputFile.checkRegularFile(path)
        let fd = Foundation.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw InputFileError(path: path, reason: InputFile.reasonForErrno(errno)) }
        defer { close(fd) }
        var head = [UInt8](repeating: 0, count: 8)
        let n = head.withUnsafeMutableBytes { Foundation.read(fd, $0.baseAddress, 8) }
        if n >= 4 && head[0] == 0x50 && head[1] == 0x4B && (head[2] == 3 || head[2] == 5) { return .torch }
        if n >= 2 && head[0] == 0x80 && head[1] <= 5 {
            throw InputFileError(path: path, reason: "a bare pickle (torch.save's legacy format, or pickle.dump): not supported; "
                                 + "re-save it with torch.save (zip format) or as safetensors")
        }
        return .safetensors
    }

    /// The weights of `url` as a strict-loading source for `CLIPModel` / `WeightBuilder`.
    public static func open(_ url: URL) throws -> WeightSource {
        switch try format(of: url) {
        case .safetensors: return try SafetensorsWeights(url: url)
        case .torch: return try TorchWeights(url: url)
        }
    }

    /// Every tensor of `url`'s state dict, decoded.
    public static func tensors(_ url: URL) throws -> [String: Tensor] {
        let source = try open(url)
        var out: [String: Tensor] = [:]
        for key in source.allKeys {
            if let t = try source.tensor(forKey: key) { out[key] = t }
        }
        return out
    }
}
