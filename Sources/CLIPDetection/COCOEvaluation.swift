import Foundation

/// pycocotools' `COCOeval` for boxes (iouType "bbox"), area range "all", maxDets 100: the same
/// matching (per image and category, detections by score, greedy against the best-IoU unmatched
/// ground truth, crowd boxes ignorable and re-matchable), the same precision envelope and 101
/// recall points, the same averaging (over IoU thresholds .50:.05:.95, recall points and the
/// categories that have ground truth). Checked against pycocotools on committed fixtures.
public struct COCOEvaluation {
    public struct Summary: Codable, Equatable, Sendable {
        /// mAP@[.5:.95], AP at IoU .5, AP at .75; -1 when no category of the set has ground truth (as pycocotools).
        public var ap: Double, ap50: Double, ap75: Double
        public var categories: Int
    }

    /// numpy's `linspace` values bit for bit (i · step + start, the last one exactly `stop`): a
    /// recall of 3/100 or an IoU at a threshold falls on the same side as in pycocotools.
    static func linspace(_ start: Double, _ stop: Double, _ count: Int) -> [Double] {
        let step = (stop - start) / Double(count - 1)
        return (0..<count).map { $0 == count - 1 ? stop : Double($0) * step + start }
    }
    public static let iouThresholds = linspace(0.5, 0.95, 10)
    public static let recallThresholds = linspace(0, 1, 101)
    public static let maxDetections = 100

    /// Per category id: precision [T][R] (nil entries where the category has no ground truth).
    let precision: [Int: [[Double]]]

    public init(groundTruth: COCODataset, detections: [COCODetection]) {
        let imageIDs = Set(groundTruth.images.map(\.id))
        var gtBy: [Int: [Int: [COCODataset.Annotation]]] = [:]   // category -> image -> annotations
        for a in groundTruth.annotations { gtBy[a.category_id, default: [:]][a.image_id, default: []].append(a) }
        var dtBy: [Int: [Int: [COCODetection]]] = [:]
        for d in detections where imageIDs.contains(d.image_id) { dtBy[d.category_id, default: [:]][d.image_id, default: []].append(d) }
        var precision: [Int: [[Double]]] = [:]
        let sortedImages = imageIDs.sorted()
        for category in groundTruth.categories.map(\.id) {
            let gts = gtBy[category] ?? [:], dts = dtBy[category] ?? [:]
            // Per image (in id order), the evaluateImg results, then accumulate's concatenation.
            var scores: [Double] = [], matched: [[Bool]] = [], ignored: [[Bool]] = []
            var positives = 0
            for image in sortedImages {
                let g = gts[image] ?? [], d = dts[image] ?? []
                if g.isEmpty && d.isEmpty { continue }
                let r = Self.evaluateImage(gt: g, dt: d)
                positives += r.positives
                scores += r.scores
                matched.append(contentsOf: r.matched)
                ignored.append(contentsOf: r.ignored)
            }
            guard positives > 0 else { continue }
            precision[category] = Self.accumulate(scores: scores, matched: matched, ignored: ignored, positives: positives)
        }
        self.precision = precision
    }

    /// Averages over `categories` (all evaluated categories when nil).
    public func summary(categories: Set<Int>? = nil) -> Summary {
        let chosen = precision.filter { categories?.contains($0.key) ?? true }
        func mean(_ thresholds: Range<Int>) -> Double {
            var sum = 0.0, n = 0
            for (_, p) in chosen { for t in thresholds { for v in p[t] where v > -1 { sum += v; n += 1 } } }
            return n == 0 ? -1 : sum / Double(n)
        }
        return Summary(ap: mean(0..<10), ap50: mean(0..<1), ap75: mean(5..<6), categories: chosen.count)
    }

    /// IoU as `maskUtils.iou` for boxes: crowd ground truth divides by the detection's area only.
    static func iou(_ d: [Double], _ g: [Double], crowd: Bool) -> Double {
        let w = min(d[0] + d[2], g[0] + g[2]) - max(d[0], g[0])
        let h = min(d[1] + d[3], g[1] + g[3]) - max(d[1], g[1])
        guard w > 0, h > 0 else { return 0 }
        let inter = w * h
        let union = crowd ? d[2] * d[3] : d[2] * d[3] + g[2] * g[3] - inter
        return inter / union
    }

    struct ImageResult {
        var scores: [Double], matched: [[Bool]], ignored: [[Bool]], positives: Int
    }

    /// evaluateImg for area "all": per detection (top 100 by score, stable), whether it matched at
    /// each IoU threshold and whether it is ignored (matched to a crowd/ignored ground truth).
    static func evaluateImage(gt: [COCODataset.Annotation], dt: [COCODetection]) -> ImageResult {
        // Ground truth: not-ignored first (stable).
        let g = gt.filter { ($0.iscrowd ?? 0) == 0 } + gt.filter { ($0.iscrowd ?? 0) != 0 }
        let gtIgnore = g.map { ($0.iscrowd ?? 0) != 0 }
        let order = dt.indices.sorted { dt[$0].score > dt[$1].score || (dt[$0].score == dt[$1].score && $0 < $1) }
        let d = order.prefix(maxDetections).map { dt[$0] }
        let ious = d.map { det in g.map { iou(det.bbox, $0.bbox, crowd: ($0.iscrowd ?? 0) != 0) } }
        var matched = [[Bool]](repeating: [Bool](repeating: false, count: iouThresholds.count), count: d.count)
        var ignored = matched
        for (t, threshold) in iouThresholds.enumerated() {
            var gtTaken = [Bool](repeating: false, count: g.count)
            for di in d.indices {
                var best = min(threshold, 1 - 1e-10), m = -1
                for gi in g.indices {
                    if gtTaken[gi] && (g[gi].iscrowd ?? 0) == 0 { continue }
                    if m > -1 && !gtIgnore[m] && gtIgnore[gi] { break }
                    if ious[di][gi] < best { continue }
                    best = ious[di][gi]; m = gi
                }
                guard m >= 0 else { continue }
                ignored[di][t] = gtIgnore[m]
                matched[di][t] = true
                gtTaken[m] = true
            }
        }
        return ImageResult(scores: d.map(\.score), matched: matched, ignored: ignored,
                           positives: gtIgnore.filter { !$0 }.count)
    }

    /// accumulate: detections of all images by score (stable), cumulative TP/FP, the precision
    /// envelope, and precision at each recall threshold (searchsorted 'left'; 0 past the end).
    static func accumulate(scores: [Double], matched: [[Bool]], ignored: [[Bool]], positives: Int) -> [[Double]] {
        let order = scores.indices.sorted { scores[$0] > scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }
        return iouThresholds.indices.map { t in
            var tp = 0.0, fp = 0.0
            var recall: [Double] = [], prec: [Double] = []
            for i in order where !ignored[i][t] {
                if matched[i][t] { tp += 1 } else { fp += 1 }
                recall.append(tp / Double(positives))
                prec.append(tp / (tp + fp + Double.ulpOfOne))
            }
            if prec.count > 1 { for i in stride(from: prec.count - 1, to: 0, by: -1) where prec[i] > prec[i - 1] { prec[i - 1] = prec[i] } }
            return recallThresholds.map { r in
                var lo = 0, hi = recall.count
                while lo < hi { let mid = (lo + hi) / 2; if recall[mid] < r { lo = mid + 1 } else { hi = mid } }
                return lo < prec.count ? prec[lo] : 0
            }
        }
    }
}
