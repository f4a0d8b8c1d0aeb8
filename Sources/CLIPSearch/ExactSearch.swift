import CLIPEngine
import Foundation

/// Exact search: the scores of a chunk of stored unit vectors against the query are one matrix
/// product (the engine's sgemv, [rows, dim] · [dim], rows split over the threads); the best k are
/// kept in a min-heap, so memory is one chunk plus k whatever the number of vectors.
struct TopK {
    let k: Int
    let minScore: Float
    /// A min-heap on score: heap[0] is the worst kept.
    private(set) var heap: [(score: Float, id: Int64)] = []

    init(k: Int, minScore: Float?) {
        self.k = max(0, k)
        self.minScore = minScore ?? -.infinity
        heap.reserveCapacity(self.k)
    }

    /// Ties keep the lower id (the older file), so results do not depend on chunking.
    private static func worse(_ a: (score: Float, id: Int64), _ b: (score: Float, id: Int64)) -> Bool {
        a.score < b.score || (a.score == b.score && a.id > b.id)
    }

    mutating func offer(_ score: Float, _ id: Int64) {
        guard k > 0, score >= minScore, !score.isNaN else { return }
        if heap.count < k {
            heap.append((score, id))
            var i = heap.count - 1
            while i > 0 {
                let p = (i - 1) / 2
                guard Self.worse(heap[i], heap[p]) else { break }
                heap.swapAt(i, p); i = p
            }
        } else if Self.worse(heap[0], (score, id)) {
            heap[0] = (score, id)
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < heap.count && Self.worse(heap[l], heap[m]) { m = l }
                if r < heap.count && Self.worse(heap[r], heap[m]) { m = r }
                if m == i { break }
                heap.swapAt(i, m); i = m
            }
        }
    }

    /// The current k-th best score (what a new score must beat), or -inf while not full.
    var threshold: Float { heap.count < k ? minScore : heap[0].score }

    /// Best first.
    func sorted() -> [(score: Float, id: Int64)] {
        heap.sorted { Self.worse($1, $0) }
    }
}

enum ExactSearch {
    /// Offers every row of `vectors` ([ids.count, dim], row-major) scored against `query` ([dim]),
    /// skipping ids `allowed` rejects.
    static func score(_ vectors: UnsafeBufferPointer<Float>, ids: ArraySlice<Int64>, query: [Float], allowed: ((Int64) -> Bool)? = nil,
                      into top: inout TopK, scratch: inout [Float]) {
        let n = ids.count, dim = query.count
        guard n > 0, let base = vectors.baseAddress else { return }
        if scratch.count < n { scratch = [Float](repeating: 0, count: n) }
        query.withUnsafeBufferPointer { q in
            scratch.withUnsafeMutableBufferPointer { s in
                sgemv(m: n, k: dim, a: base, lda: dim, x: q.baseAddress!, y: s.baseAddress!)
            }
        }
        var threshold = top.threshold
        for (i, id) in zip(0..<n, ids) where scratch[i] >= threshold {
            if let allowed, !allowed(id) { continue }
            top.offer(scratch[i], id)
            threshold = top.threshold
        }
    }
}

/// A slot's vectors held in memory (for a long-lived process such as a server): searching it is
/// one GEMM over contiguous rows with no database reads.
public final class VectorMatrix: @unchecked Sendable {
    public let ids: [Int64]
    public let dimension: Int
    /// [ids.count, dimension], row-major.
    public let values: [Float]

    /// `values` holds `ids.count` rows of `dimension` floats (unit vectors for cosine scores).
    public init(ids: [Int64], dimension: Int, values: [Float]) throws {
        guard dimension > 0, values.count == ids.count * dimension else {
            throw SearchError.badOption("a vector matrix of \(ids.count) rows of \(dimension) needs \(ids.count * dimension) values, got \(values.count)")
        }
        self.ids = ids; self.dimension = dimension; self.values = values
    }

    /// The ids and scores of the best `top` rows for `query` (best first). Rows are scored in
    /// chunks so the score buffer stays small.
    public func search(_ query: [Float], top: Int, minScore: Float? = nil, allowed: ((Int64) -> Bool)? = nil) throws -> [(score: Float, id: Int64)] {
        guard query.count == dimension else { throw SearchError.badQuery("vector", "has \(query.count) values, the matrix has \(dimension)") }
        var heap = TopK(k: top, minScore: minScore)
        var scratch: [Float] = []
        let chunk = 65_536
        values.withUnsafeBufferPointer { all in
            for start in stride(from: 0, to: ids.count, by: chunk) {
                let end = min(ids.count, start + chunk)
                let part = UnsafeBufferPointer(rebasing: all[start * dimension..<end * dimension])
                ExactSearch.score(part, ids: ids[start..<end], query: query, allowed: allowed, into: &heap, scratch: &scratch)
            }
        }
        return heap.sorted()
    }
}

