// Embedder MODEL [--weights FILE] IMAGE LABEL...: zero-shot classification of one image, and the
// cosine similarity of the image to each "a photo of a LABEL." caption.
import Foundation
import SwiftCLIP

var arguments = Array(CommandLine.arguments.dropFirst())
var weights: URL?
if let i = arguments.firstIndex(of: "--weights"), i + 1 < arguments.count {
    weights = URL(fileURLWithPath: arguments[i + 1])
    arguments.removeSubrange(i...(i + 1))
}
guard arguments.count >= 3 else {
    print("usage: Embedder MODEL [--weights FILE] IMAGE LABEL...")
    exit(64)
}
do {
    let clip = try CLIP(model: arguments[0], weights: weights)
    let image = URL(fileURLWithPath: arguments[1])
    let labels = Array(arguments[2...])
    let imageEmbedding = try clip.embedImage(at: image)
    let captions = try clip.embedTexts(labels.map { "a photo of a \($0)." })
    for (label, caption) in zip(labels, captions) {
        print("cos(image, \"a photo of a \(label).\") = \(CLIP.cosineSimilarity(imageEmbedding, caption))")
    }
    for (label, probability) in try clip.classify(imageAt: image, labels: labels) {
        print("\(label): \(probability)")
    }
} catch {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
}
