import CLIPEngine
import Foundation

/// Image files as the commands and the index take them: which names count as images, a folder's
/// image files, and a batch of files decoded and preprocessed (open_clip's eval transform) on the
/// engine's threads (`preprocess`, a batch made ahead on a `Prefetcher` thread; the commands that
/// embed files decode each one on the thread that embeds it, `CLIPModel.embedImageFiles`).
public enum ImageFiles {
    /// Lower-case extensions of the files a folder contributes.
    public static let extensions: Set<String> = ["jpg", "jpeg", "png"]

    /// A file as given, or a folder's image files (recursively, sorted by path, through
    /// `FolderWalker`), with what under the folder could not be read ("path: reason"): folders that
    /// cannot be listed, image files whose names are not UTF-8 or whose metadata cannot be read.
    public static func expand(_ path: String) -> (paths: [String], unreadable: [String]) {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue else { return ([path], []) }
        var walker = FolderWalker(extensions: extensions)
        var found: [String] = []
        walker.walk(path) { found.append($0.path) }
        return (found.sorted(), FolderWalker.described(walker.unreadableFolders + walker.unreadableFiles))
    }

    /// Decodes and preprocesses `paths` (named as given) into one tensor of the files that could be
    /// read, in order; the others are listed with their errors.
    public static func load(_ paths: [String], preprocessor: Preprocessor) -> ImageFileBatch {
        let urls = paths.map { URL(fileURLWithPath: $0) }
        let result = preprocessor.batch(urls)
        let given = Dictionary(zip(urls.map(\.path), paths), uniquingKeysWith: { a, _ in a })
        return ImageFileBatch(pixels: result.tensor, loaded: result.succeeded.map { given[$0.path] ?? $0.path },
                              failures: result.failures.map { (given[$0.url.path] ?? $0.url.path, $0.error) })
    }

    /// A failure's message naming the file once.
    public static func message(_ failure: (path: String, error: Error)) -> String {
        let text = "\(failure.error)"
        let named = text.contains(failure.path) || text.contains(URL(fileURLWithPath: failure.path).path)
        return named ? text : "\(failure.path): \(text)"
    }

    /// A failure's reason without the path (what the index records beside the file).
    public static func reason(_ failure: (path: String, error: Error)) -> String {
        let text = "\(failure.error)"
        for prefix in [failure.path + ": ", URL(fileURLWithPath: failure.path).path + ": "] where text.hasPrefix(prefix) {
            return String(text.dropFirst(prefix.count))
        }
        return text
    }
}

/// Files decoded and preprocessed together.
public struct ImageFileBatch {
    /// [loaded.count, 3, S, S], or nil when none could be read.
    public var pixels: Tensor?
    /// The files in `pixels`, in order, as given.
    public var loaded: [String]
    public var failures: [(path: String, error: Error)]
}

