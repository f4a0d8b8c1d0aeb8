import CLIPData
import CLIPEngine
import CLIPModels
import CLIPTokenizer
import Foundation

/// Rank statistics of one direction, as open_clip_train.train.get_clip_metrics defines them:
/// for each query, `rank` = how many candidates come before its pair in the descending order of
/// logits (0-based); mean_rank = mean(rank) + 1, median_rank = floor(median(rank)) + 1,
/// R@k = fraction with rank < k. Candidates tied with the pair are not counted as before it
/// (torch.argsort leaves ties in an unspecified order).
public struct RankMetrics: Codable, Equatable {
    public let meanRank: Double
    public let medianRank: Double
    public let r1: Double, r5: Double, r10: Double

    public init(ranks: [Int]) {
        let n = Double(max(ranks.count, 1))
        meanRank = Double(ranks.reduce(0, +)) / n + 1
        let s = ranks.sorted()
        let median = s.isEmpty ? 0 : (s.count % 2 == 1 ? Double(s[s.count / 2]) : Double(s[s.count / 2 - 1] + s[s.count / 2]) / 2)
        medianRank = median.rounded(.down) + 1
        func recall(_ k: Int) -> Double { Double(ranks.filter { $0 < k }.count) / n }
        r1 = recall(1); r5 = recall(5); r10 = recall(10)
    }
}

/// Image→text and text→image retrieval over N image–caption pairs (pair i is image i, caption i).
public struct RetrievalMetrics: Codable, Equatable {
    public let n: Int
    public let imageToText: RankMetrics
    public let textToImage: RankMetrics

    /// open_clip's metric names ("image_to_text_mean_rank", "text_to_image_R@5", ...).
    public var openCLIPNames: [String: Double] {
        var out: [String: Double] = [:]
        for (name, m) in [("image_to_text", imageToText), ("text_to_image", textToImage)] {
            out["\(name)_mean_rank"] = m.meanRank
            out["\(name)_median_rank"] = m.medianRank
            out["\(name)_R@1"] = m.r1
            out["\(name)_R@5"] = m.r5
            out["\(name)_R@10"] = m.r10
        }
        return out
    }
}

public enum Retrieval {
    /// Ranks from `logit_scale · image_features @ text_features.T` ([N, D] each, normalised by the
    /// caller as open_clip's features are), computed `chunkRows` queries at a time: memory is
    /// O(chunkRows · N), never N².
    public static func metrics(imageFeatures: Tensor, textFeatures: Tensor, logitScale: Float, chunkRows: Int = 512) throws -> RetrievalMetrics {
        guard imageFeatures.rank == 2, imageFeatures.shape == textFeatures.shape, imageFeatures.shape[0] > 0 else {
            throw TensorError.shapeMismatch("retrieval needs image and text features of equal shape [N, D], got \(imageFeatures.shape) and \(textFeatures.shape)")
        }
        let i2t = ranks(queries: imageFeatures, candidates: textFeatures, scale: logitScale, chunkRows: max(chunkRows, 1))
        let t2i = ranks(queries: textFeatures, candidates: imageFeatures, scale: logitScale, chunkRows: max(chunkRows, 1))
        return RetrievalMetrics(n: imageFeatures.shape[0], imageToText: RankMetrics(ranks: i2t), textToImage: RankMetrics(ranks: t2i))
    }

    /// For query i: how many candidates j score strictly above candidate i.
    static func ranks(queries: Tensor, candidates: Tensor, scale: Float, chunkRows: Int) -> [Int] {
        let n = queries.shape[0], d = queries.shape[1]
        var ranks = [Int](repeating: 0, count: n)
        let block = Tensor(uninitializedShape: [min(chunkRows, n), n])
        for start in stride(from: 0, to: n, by: chunkRows) {
            let rows = min(chunkRows, n - start)
            sgemm(transB: true, m: rows, n: n, k: d, alpha: scale, a: queries.storage.pointer + start * d, lda: d,
                  b: candidates.storage.pointer, ldb: d, c: block.storage.pointer, ldc: n)
            let s = block.storage.pointer
            for r in 0..<rows {
                let row = s + r * n, own = row[start + r]
                var before = 0
                for j in 0..<n where row[j] > own { before += 1 }
                ranks[start + r] = before
            }
        }
        return ranks
    }

    /// Embeds every pair of `pairs` (images through open_clip's eval preprocessing, captions through
    /// the tokenizer), normalised, and ranks with the model's `exp(logit_scale)`, as open_clip's
    /// `evaluate` does. `progress(done, total)` counts pairs.
    public static func evaluate(model: CLIPModel, tokenizer: CLIPTokenizer, pairs: CSVPairs, batchSize: Int = 64,
                                progress: ((Int, Int) -> Void)? = nil) throws -> RetrievalMetrics {
        guard batchSize > 0 else { throw ZeroShotError.badArgument("batch size must be positive, got \(batchSize)") }
        let preprocessor = Preprocessor(model: model.config)
        var images: [Tensor] = [], texts: [Tensor] = []
        let loader = preprocessor.batches(count: pairs.count, batchSize: batchSize) { try pairs.imageNamingRow($0) }
        for start in stride(from: 0, to: pairs.count, by: batchSize) {
            let end = min(pairs.count, start + batchSize)
            let batch = try loader.next()!
            images.append(try model.encodeImagePerThread(batch, normalize: true))
            let ids = tokenizer.tokenize(Array(pairs.captions[start..<end]), contextLength: model.config.text.contextLength)
            texts.append(try model.encodeText(ids.map { $0.map(Int.init) }, normalize: true))
            progress?(end, pairs.count)
        }
        return try metrics(imageFeatures: Tensor.concatenate(rows: images), textFeatures: Tensor.concatenate(rows: texts),
                           logitScale: Foundation.exp(model.logitScale))
    }
}
