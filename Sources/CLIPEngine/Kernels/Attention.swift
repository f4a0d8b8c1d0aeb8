// Multi-head self-attention core on open_clip's packed in_proj output.

extension Ops {
    /// qkv: [B, T, 3·D] (q | k | v along the last dimension, head h at columns h·hd..<(h+1)·hd
    /// of each) → [B, T, D], heads concatenated, before out_proj. Scale 1/√hd; `causal` masks key
    /// j for query i when j > i. Per (batch, head): S = Q·Kᵀ (one [T, T] scratch per thread), row
    /// softmax in place, O = P·V written straight into the head's columns of the output.
    public static func attention(qkv: Tensor, heads: Int, causal: Bool) throws -> Tensor {
        try require(qkv.rank == 3 && heads >= 1 && qkv.shape[2] % (3 * heads) == 0,
                    "attention: qkv \(qkv.shape) with \(heads) heads (need [B, T, 3·D], D divisible by heads)")
        let (batch, t, d) = (qkv.shape[0], qkv.shape[1], qkv.shape[2] / 3)
        let hd = d / heads
        let out = Tensor(uninitializedShape: [batch, t, d])
        guard batch > 0, t > 0, d > 0 else { return out }
        let scale = 1 / Float(hd).squareRoot()
        let src = qkv.storage.pointer, dst = out.storage.pointer
        chunks(batch * heads, workPerItem: 4 * t * t * hd) { items in
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: t * t)
            defer { scores.deallocate() }
            for item in items {
                let (b, h) = (item / heads, item % heads)
                let q = src + b * t * 3 * d + h * hd
                blasSgemm(transA: false, transB: true, m: t, n: t, k: hd, alpha: scale,
                          a: q, lda: 3 * d, b: q + d, ldb: 3 * d, beta: 0, c: scores, ldc: t)
                for i in 0..<t {
                    let row = scores + i * t
                    let keys = causal ? i + 1 : t
                    softmaxRow(row, row, keys)
                    if keys < t { (row + keys).initialize(repeating: 0, count: t - keys) }
                }
                blasSgemm(transA: false, transB: false, m: t, n: hd, k: t, alpha: 1,
                          a: scores, lda: t, b: q + 2 * d, ldb: 3 * d, beta: 0, c: dst + b * t * d + h * hd, ldc: d)
            }
        }
        return out
    }
}
