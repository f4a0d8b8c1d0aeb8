import CLIPEngine

/// timm's stochastic depth (`drop_path`, `timm_drop_path` in open_clip's config): per block a
/// rate rising linearly over all blocks (`torch.linspace(0, rate, sum(depths)).split(depths)`);
/// in training each sample's residual branch is dropped with that probability and kept ones are
/// scaled by 1/keep (`scale_by_keep=True`). Off in eval (inference never draws).
public enum StochasticDepth {
    /// The drop probability of every block, by stage.
    public static func rates(depths: [Int], rate: Double) -> [[Double]] {
        let total = depths.reduce(0, +)
        var all: [Double] = (0..<total).map { total > 1 ? rate * Double($0) / Double(total - 1) : 0 }
        var out: [[Double]] = []
        for d in depths { out.append(Array(all.prefix(d))); all.removeFirst(d) }
        return out
    }

    /// One block's per-sample factors: 0 (dropped) or 1/keep (kept); nil when `rate` is 0 (no draw,
    /// the identity). With rate 1 every sample is dropped (timm does not divide by keep = 0).
    public static func sampleFactors(batch: Int, rate: Double, rng: inout SeededGenerator) -> [Float]? {
        guard rate > 0 else { return nil }
        let keep = 1 - rate
        return (0..<batch).map { _ in
            let kept = Double(rng.next() >> 11) * 0x1p-53 < keep
            return kept && keep > 0 ? Float(1 / keep) : 0
        }
    }
}
