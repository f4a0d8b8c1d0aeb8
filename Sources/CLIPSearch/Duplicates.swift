import CLIPEngine
import Foundation

extension SearchIndex {
    /// Groups of near-duplicate images in a slot: files joined when the cosine similarity of their
    /// vectors is at least `threshold` (clip-retrieval's dedup uses 0.94), joined transitively.
    /// Each group lists its files best-connected first, with `score` the similarity to the group's
    /// first file. Scores come from GEMMs over tiles of 256 x 16,384 vectors; the slot's vectors
    /// are held in memory (4 x dimension bytes each).
    public func duplicates(slot: ModelSlot, threshold: Float = 0.94, under: String? = nil) throws -> [[SearchResult]] {
        guard threshold.isFinite, threshold > -1, threshold <= 1 else {
            throw SearchError.badOption("--threshold must be in (-1, 1], got \(threshold)")
        }
        var ids: [Int64] = [], values: [Float] = []
        try store.forEachChunk(slot: slot.id, dimension: slot.model.dimension, under: under.map(IndexPaths.canonical), chunkRows: 16_384) { i, v in
            ids += i; values += v
        }
        let n = ids.count, dim = slot.model.dimension
        var parent = Array(0..<n)
        func find(_ x: Int) -> Int {
            var x = x
            while parent[x] != x { parent[x] = parent[parent[x]]; x = parent[x] }
            return x
        }
        let rowTile = 256, colTile = 16_384
        var scores = [Float](repeating: 0, count: rowTile * colTile)
        values.withUnsafeBufferPointer { v in
            for r0 in stride(from: 0, to: n, by: rowTile) {
                let r1 = min(n, r0 + rowTile)
                // Only the upper triangle: columns from r0 on.
                for c0 in stride(from: r0, to: n, by: colTile) {
                    let c1 = min(n, c0 + colTile)
                    scores.withUnsafeMutableBufferPointer { s in
                        sgemm(transB: true, m: r1 - r0, n: c1 - c0, k: dim, a: v.baseAddress! + r0 * dim, lda: dim,
                              b: v.baseAddress! + c0 * dim, ldb: dim, c: s.baseAddress!, ldc: c1 - c0)
                    }
                    for i in r0..<r1 {
                        let row = (i - r0) * (c1 - c0)
                        for j in max(c0, i + 1)..<max(c1, i + 1) where scores[row + j - c0] >= threshold {
                            let a = find(i), b = find(j)
                            if a != b { parent[max(a, b)] = min(a, b) }
                        }
                    }
                }
            }
        }
        var groups: [Int: [Int]] = [:]
        for i in 0..<n { groups[find(i), default: []].append(i) }
        let multi = groups.values.filter { $0.count > 1 }.sorted { $0[0] < $1[0] }
        let paths = try store.paths(ids: multi.flatMap { $0.map { ids[$0] } })
        return multi.map { members in
            let first = members[0]
            let scored = members.map { m -> (Int, Float) in
                var dot: Float = 0
                for k in 0..<dim { dot += values[first * dim + k] * values[m * dim + k] }
                return (m, m == first ? 1 : dot)
            }.sorted { $0.1 > $1.1 }
            return scored.enumerated().map { rank, item in
                SearchResult(id: ids[item.0], path: paths[ids[item.0]] ?? "?", score: item.1, rank: rank + 1)
            }
        }
    }
}
