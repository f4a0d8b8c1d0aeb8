import CLIPData
import CLIPEngine
import CLIPNN
import Foundation

/// Images given on the command line: `.npy` arrays (N, 3, H, W) already preprocessed, or image files
/// (JPEG, PNG) preprocessed as open_clip's eval transform does. A file that cannot be read is
/// reported and skipped; the others go through, in order.
struct ImageInputs {
    var tensor: Tensor?
    /// One name per row of `tensor` (the file, with the row index for multi-row .npy inputs).
    var rowNames: [String] = []
    var failures: [(path: String, error: Error)] = []

    init(_ paths: [String], imageSize: Int) throws {
        let imageCount = paths.filter { !$0.lowercased().hasSuffix(".npy") }.count
        try requireImageBatchMemory(count: imageCount, imageSize: imageSize)
        let preprocessor = Preprocessor(imageSize: imageSize)
        var parts: [Tensor] = []
        var pendingImages: [URL] = [], pendingNames: [String] = []
        func flushImages() {
            guard !pendingImages.isEmpty else { return }
            let result = preprocessor.batch(pendingImages)
            if let t = result.tensor { parts.append(t) }
            // Name files as the user wrote them.
            let given = Dictionary(zip(pendingImages.map(\.path), pendingNames), uniquingKeysWith: { a, _ in a })
            rowNames += result.succeeded.map { given[$0.path] ?? $0.path }
            failures += result.failures.map { (given[$0.url.path] ?? $0.url.path, $0.error) }
            pendingImages = []
            pendingNames = []
        }
        for path in paths {
            guard path.lowercased().hasSuffix(".npy") else {
                pendingImages.append(URL(fileURLWithPath: path, relativeTo: nil))
                pendingNames.append(path)
                continue
            }
            flushImages()
            do {
                let t = try NPY.read(URL(fileURLWithPath: path)).floatTensor()
                guard t.rank == 4, t.shape[1] == 3 else {
                    throw InputError(description: "\(path): expected a float array (N, 3, H, W), got shape \(t.shape)")
                }
                guard t.shape[0] > 0 else { throw InputError(description: "\(path): the array holds 0 images (shape \(t.shape))") }
                guard t.shape[2] == imageSize, t.shape[3] == imageSize else {
                    throw InputError(description: "\(path): images of \(t.shape[2])×\(t.shape[3]), the model takes "
                                     + "\(imageSize)×\(imageSize) (preprocess them for this model)")
                }
                parts.append(t)
                rowNames += (0..<t.shape[0]).map { "\(path)[\($0)]" }
            } catch {
                failures.append((path, error))
            }
        }
        flushImages()
        do {
            tensor = parts.isEmpty ? nil : try Tensor.concatenate(rows: parts)
        } catch {
            // Arrays of different image sizes cannot share one batch.
            failures.append((paths.joined(separator: ", "), error))
            tensor = nil
            rowNames = []
        }
    }

    /// Prints each failure on stderr; throws if nothing could be read.
    func reportFailures() throws {
        for f in failures {
            let text = "\(f.error)"
            let named = text.contains(f.path) || text.contains(URL(fileURLWithPath: f.path).path)
            let message = named ? text : "\(f.path): \(text)"
            FileHandle.standardError.write(Data("error: \(message)\n".utf8))
        }
        if tensor == nil { throw InputError(description: "no input could be read") }
    }
}
