import Foundation

// Backward of `Ops.attention` (Attention.swift) on open_clip's packed qkv. Per (batch, head) the
// probabilities P are recomputed from Q and K (nothing but qkv is kept from the forward), then
//   dV = Pᵀ·dO,  dP = dO·Vᵀ,  dS = P ∘ (dP − rowsum(dP ∘ P)),  dQ = scale·dS·K,  dK = scale·dSᵀ·Q.

extension Ops {
    /// qkv: [B, T, 3·D] (the forward's input), dOut: [B, T, D] → dqkv: [B, T, 3·D].
    public static func attentionBackward(_ dOut: Tensor, qkv: Tensor, heads: Int, causal: Bool) throws -> Tensor {
        try require(qkv.rank == 3 && heads >= 1 && qkv.shape[2] % (3 * heads) == 0,
                    "attentionBackward: qkv \(qkv.shape) with \(heads) heads")
        let (batch, t, d) = (qkv.shape[0], qkv.shape[1], qkv.shape[2] / 3)
        try require(dOut.shape == [batch, t, d], "attentionBackward: dOut \(dOut.shape) for qkv \(qkv.shape)")
        let hd = d / heads
        let dqkv = Tensor(uninitializedShape: qkv.shape)
        guard batch > 0, t > 0, d > 0 else { return dqkv }
        let scale = 1 / Float(hd).squareRoot()
        let src = qkv.storage.pointer, gout = dOut.storage.pointer, dst = dqkv.storage.pointer
        chunks(batch * heads, workPerItem: 10 * t * t * hd) { items in
            let p = UnsafeMutablePointer<Float>.allocate(capacity: t * t)
            let dp = UnsafeMutablePointer<Float>.allocate(capacity: t * t)
            defer { p.deallocate(); dp.deallocate() }
            for item in items {
                let (b, h) = (item / heads, item % heads)
                let q = src + b * t * 3 * d + h * hd, k = q + d, v = q + 2 * d
                let dq = dst + b * t * 3 * d + h * hd, dk = dq + d, dv = dq + 2 * d
                let go = gout + b * t * d + h * hd
                sgemm(transB: true, m: t, n: t, k: hd, alpha: scale, a: q, lda: 3 * d, b: k, ldb: 3 * d, c: p, ldc: t)
                for i in 0..<t {
                    let row = p + i * t
                    let keys = causal ? i + 1 : t
                    var mx = -Float.infinity
                    for j in 0..<keys { mx = max(mx, row[j]) }
                    var sum: Float = 0
                    for j in 0..<keys { row[j] = (row[j] - mx).exp(); sum += row[j] }
                    let inv = 1 / sum
                    for j in 0..<keys { row[j] *= inv }
                    for j in keys..<t { row[j] = 0 }
                }
                // dV = Pᵀ · dO
                sgemm(transA: true, m: t, n: hd, k: t, a: p, lda: t, b: go, ldb: d, c: dv, ldc: 3 * d)
                // dP = dO · Vᵀ
                sgemm(transB: true, m: t, n: t, k: hd, a: go, lda: d, b: v, ldb: 3 * d, c: dp, ldc: t)
                for i in 0..<t {
                    let pr = p + i * t, dr = dp + i * t
                    var dot: Float = 0
                    for j in 0..<t { dot += pr[j] * dr[j] }
                    for j in 0..<t { dr[j] = pr[j] * (dr[j] - dot) }
                }
                sgemm(m: t, n: hd, k: t, alpha: scale, a: dp, lda: t, b: k, ldb: 3 * d, c: dq, ldc: 3 * d)
                sgemm(transA: true, m: t, n: hd, k: t, alpha: scale, a: dp, lda: t, b: q, ldb: 3 * d, c: dk, ldc: 3 * d)
            }
        }
        return dqkv
    }
}

private extension Float {
    func exp() -> Float { Foundation.exp(self) }
}
