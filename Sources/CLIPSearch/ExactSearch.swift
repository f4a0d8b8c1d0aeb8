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
/// one GEMV over contiguous rows with no database reads. From `quantizedMinimumRows` rows on, it
/// also holds an int8 copy (`Int8Rows`, a quarter of the bytes): a first pass over it keeps the
/// best few hundred rows, their float scores give the answer, and a bound on the int8 scores'
/// error proves no other row could enter it — else the float scan runs. Results are the float
/// scan's (tests compare them); memory is 1.25× the floats.
public final class VectorMatrix: @unchecked Sendable {
    public let ids: [Int64]
    public let dimension: Int
    /// [ids.count, dimension], row-major.
    public let values: [Float]
    /// The int8 copy, or nil (fewer rows than `quantizedMinimumRows`, or not asked for).
    public let quantized: Int8Rows?

    /// Below this many rows the float scan is cheap enough (10^4 rows × 512: ~1 ms).
    public static let quantizedMinimumRows = 50_000
    /// Rows scored in one chunk, so the score buffer stays small.
    static let chunkRows = 65_536

    /// `values` holds `ids.count` rows of `dimension` floats (unit vectors for cosine scores).
    /// `quantize`: hold the int8 copy (default: from `quantizedMinimumRows` rows).
    public init(ids: [Int64], dimension: Int, values: [Float], quantize: Bool? = nil) throws {
        guard dimension > 0, values.count == ids.count * dimension else {
            throw SearchError.badOption("a vector matrix of \(ids.count) rows of \(dimension) needs \(ids.count * dimension) values, got \(values.count)")
        }
        self.ids = ids; self.dimension = dimension; self.values = values
        quantized = quantize ?? (ids.count >= Self.quantizedMinimumRows)
            ? values.withUnsafeBufferPointer { Int8Rows(quantizing: $0, rows: ids.count, width: dimension) } : nil
    }

    /// The ids and scores of the best `top` rows for `query` (best first).
    public func search(_ query: [Float], top: Int, minScore: Float? = nil, allowed: ((Int64) -> Bool)? = nil) throws -> [(score: Float, id: Int64)] {
        guard query.count == dimension else { throw SearchError.badQuery("vector", "has \(query.count) values, the matrix has \(dimension)") }
        if let quantized, top > 0,
           let found = searchWithInt8Pass(quantized, query, top: top, minScore: minScore, allowed: allowed) {
            return found
        }
        var heap = TopK(k: top, minScore: minScore)
        var scratch: [Float] = []
        values.withUnsafeBufferPointer { all in
            for start in stride(from: 0, to: ids.count, by: Self.chunkRows) {
                let end = min(ids.count, start + Self.chunkRows)
                let part = UnsafeBufferPointer(rebasing: all[start * dimension..<end * dimension])
                ExactSearch.score(part, ids: ids[start..<end], query: query, allowed: allowed, into: &heap, scratch: &scratch)
            }
        }
        return heap.sorted()
    }

    /// The int8 pass and the float rescoring of its candidates; nil when the error bound cannot
    /// prove the answer (near-ties at the cut-off, non-finite values), and the float scan decides.
    /// Public for tests and benchmarks (how often the first pass settles a query).
    public func searchWithInt8Pass(_ quantized: Int8Rows, _ query: [Float], top: Int, minScore: Float? = nil,
                                   allowed: ((Int64) -> Bool)? = nil) -> [(score: Float, id: Int64)]? {
        let error = query.reduce(0) { $0 + $1 * $1 }.squareRoot().nextUp * quantized.errorPerQueryNorm
        let candidates = max(256, 16 * top)
        guard error.isFinite, candidates < ids.count / 4 else { return nil }
        // First pass: the best `candidates` int8 scores, by row index.
        var approximate = TopK(k: candidates, minScore: nil)
        var scratch = [Float](repeating: 0, count: Self.chunkRows)
        query.withUnsafeBufferPointer { q in
            scratch.withUnsafeMutableBufferPointer { s in
                for start in stride(from: 0, to: ids.count, by: Self.chunkRows) {
                    let end = min(ids.count, start + Self.chunkRows)
                    quantized.scores(q.baseAddress!, rows: start..<end, into: s.baseAddress!)
                    var threshold = approximate.threshold
                    for i in 0..<(end - start) where s[i] >= threshold {
                        if let allowed, !allowed(ids[start + i]) { continue }
                        approximate.offer(s[i], Int64(start + i))
                        threshold = approximate.threshold
                    }
                }
            }
        }
        // Second pass: the candidates' float scores, by the same GEMV as the float scan.
        let rows = approximate.heap.map { Int($0.id) }
        var gathered = [Float](repeating: 0, count: rows.count * dimension)
        values.withUnsafeBufferPointer { all in
            for (n, row) in rows.enumerated() {
                gathered.replaceSubrange(n * dimension..<(n + 1) * dimension, with: all[row * dimension..<(row + 1) * dimension])
            }
        }
        var exact = TopK(k: top, minScore: minScore)
        gathered.withUnsafeBufferPointer { g in
            ExactSearch.score(g, ids: rows.map { ids[$0] }[...], query: query, into: &exact, scratch: &scratch)
        }
        let found = exact.sorted()
        // Every row left out scored at most the last candidate's int8 score, so at most that plus
        // `error` in floats; with room for every allowed row, nothing was left out.
        guard approximate.heap.count == candidates else { return found }
        let ceiling = approximate.threshold + error
        let proven = found.count == top ? found[top - 1].score > ceiling : ceiling < (minScore ?? -.infinity)
        return proven ? found : nil
    }
}
