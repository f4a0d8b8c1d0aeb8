import CLIPData
import CLIPDetection
import CLIPEngine
import CLIPModels
import CLIPTokenizer
import Foundation

/// `/v1/detect`: `swiftclip detect` behind a queue of its own. A detection is a whole backbone pass
/// at the head's input size (larger than the embedding passes), so it runs on its own worker
/// thread, one image at a time, not on the request's thread; the queue gives it the same bound
/// (503 when full) and deadline (504) as the embedding queues.
final class DetectionService: @unchecked Sendable {
    struct Job {
        let image: RGBImage
        let labels: [String]
        let options: OpenVocabularyDetector.Options
    }

    let detector: OpenVocabularyDetector
    let configuration: ServerConfiguration
    private(set) var queue: BatchQueue<Job, [Detection]>!

    init(model: CLIPModel, tokenizer: CLIPTokenizer, head url: URL, configuration c: ServerConfiguration, metrics: ServerMetrics) throws {
        let detector = try OpenVocabularyDetector(model: model, head: BoxHead.load(url), tokenizer: tokenizer)
        self.detector = detector
        configuration = c
        queue = BatchQueue(name: "detect", maxBatch: 1, maxWait: .zero, capacity: max(1, c.queueCapacity / 16),
                           onPass: { metrics.recordPass(queue: "detect", batchSize: $0, depth: $1, seconds: $2) }) { jobs in
            try jobs.map { job in
                try detector.detect(job.image, labels: job.labels, texts: detector.textEmbeddings(job.labels), options: job.options)
            }
        }
    }

    /// Detections for `labels` in the image file `data`, as `swiftclip detect --json` gives them.
    func detect(_ data: Data, labels: [String], threshold: Double, topK: Int, deadline: ContinuousClock.Instant) async throws -> [Detection] {
        try configuration.checkImagePixels(data, name: "image")
        let image = try Parallel.withThreads(1) { try ImageDecoder.decode(data, name: "image") }
        var o = OpenVocabularyDetector.Options()
        o.threshold = threshold
        o.topK = topK
        return try await queue.submit([Job(image: image, labels: labels, options: o)], deadline: deadline)[0]
    }
}
