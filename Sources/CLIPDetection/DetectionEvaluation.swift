import CLIPData
import CLIPEngine
import CLIPTokenizer
import Foundation

/// Runs a detector (or the training-free heatmap baseline) over every image of a COCO file with
/// all its category names queried at once (the generalized open-vocabulary setting) and returns
/// COCO-format detections for `COCOEvaluation`.
public enum DetectionEvaluation {
    public enum Method {
        case detector(OpenVocabularyDetector, OpenVocabularyDetector.Options)
        /// Heatmap → threshold → connected components, at input side `side`.
        case heatmap(DenseCLIP, CLIPTokenizer, threshold: Double, side: Int)
    }

    public static func detections(_ method: Method, dataset: COCODataset, images root: URL,
                                  progress: (Int, Int) -> Void = { _, _ in }) throws -> [COCODetection] {
        let categories = dataset.categories.sorted { $0.id < $1.id }
        let labels = categories.map(\.name)
        let idOf = Dictionary(uniqueKeysWithValues: categories.map { ($0.name, $0.id) })
        try OpenVocabularyDetector.checkLabels(labels)
        let texts: Tensor
        switch method {
        case .detector(let d, _): texts = try d.textEmbeddings(labels)
        case .heatmap(let dense, let tokenizer, _, _): texts = try OpenVocabularyDetector.textEmbeddings(labels, model: dense.model, tokenizer: tokenizer)
        }
        var out: [COCODetection] = []
        for (i, image) in dataset.images.enumerated() {
            let url = root.appendingPathComponent(image.file_name)
            let decoded = try ImageDecoder.decode(contentsOf: url)
            let found: [Detection]
            switch method {
            case .detector(let d, let options):
                found = try d.detect(decoded, labels: labels, texts: texts, options: options)
            case .heatmap(let dense, _, let threshold, let side):
                found = try LabelHeatmaps(dense: dense, image: decoded, texts: texts, side: side)
                    .boxes(labels: labels, threshold: threshold, imageWidth: decoded.width, imageHeight: decoded.height)
            }
            for f in found {
                guard let id = idOf[f.label] else { continue }
                out.append(COCODetection(image_id: image.id, category_id: id,
                                         bbox: [f.box.xmin, f.box.ymin, f.box.xmax - f.box.xmin, f.box.ymax - f.box.ymin], score: f.score))
            }
            progress(i + 1, dataset.images.count)
        }
        return out
    }
}
