extension Ops {
    /// Multi-head self-attention on packed projections. qkv: [B, T, 3·D] (q | k | v, head h at
    /// columns h·d ..< (h+1)·d of each) -> [B, T, D], heads concatenated (before out_proj).
    /// Scores, softmax and the weighted sum are done per (batch, head, query) with one row of
    /// scores in memory; `causal` masks keys after the query (open_clip's text mask).
    public static func attention(qkv: Tensor, heads: Int, causal: Bool) throws -> Tensor {
        guard qkv.rank == 3, heads > 0, qkv.shape[2] % (3 * heads) == 0 else {
            throw TensorError.shapeMismatch("attention: qkv \(qkv.shape) must be [B, T, 3·D] with D divisible by \(heads) heads")
        }
        let b = qkv.shape[0], t = qkv.shape[1], d3 = qkv.shape[2], dModel = d3 / 3, dh = dModel / heads
        let scale = 1 / Float(dh).squareRoot()
        var out = Tensor(uninitializedShape: [b, t, dModel])
        let src = qkv.storage.pointer
        out.withUnsafeMutableBufferPointer { dst in
            let dstBase = dst.baseAddress!
            Parallel.forEachChunk(b * heads, workPerItem: 4 * t * t * dh) { range in
                let scores = UnsafeMutablePointer<Float>.allocate(capacity: t)
                let acc = UnsafeMutablePointer<Float>.allocate(capacity: dh)
                defer { scores.deallocate(); acc.deallocate() }
                for bh in range {
                    let batch = bh / heads, head = bh % heads
                    let base = src + batch * t * d3
                    for i in 0..<t {
                        let q = base + i * d3 + head * dh
                        let keys = causal ? i + 1 : t
                        for j in 0..<keys { scores[j] = dot(q, base + j * d3 + dModel + head * dh, count: dh) * scale }
                        softmaxRow(scores, count: keys)
                        acc.initialize(repeating: 0, count: dh)
                        for j in 0..<keys { axpy(scores[j], base + j * d3 + 2 * dModel + head * dh, acc, count: dh) }
                        (dstBase + (batch * t + i) * dModel + head * dh).update(from: acc, count: dh)
                    }
                }
            }
        }
        return out
    }

    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        var acc = F16(repeating: 0), i = 0
        while i + 16 <= count { acc.addProduct(load16(a + i), load16(b + i)); i += 16 }
        var s = acc.sum()
        while i < count { s += a[i] * b[i]; i += 1 }
        return s
    }

    /// y += alpha·x
    @inline(__always)
    static func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        let a = F16(repeating: alpha)
        var i = 0
        while i + 16 <= count { store16(load16(y + i) + a * load16(x + i), y + i); i += 16 }
        while i < count { y[i] += alpha * x[i]; i += 1 }
    }
}

// MARK: - Layout, lookup, pooling

extension Ops {
    /// (N, C, H, W) -> (N, H, W, C).
    public static func nchwToNhwc(_ x: Tensor) throws -> Tensor {
        guard x.rank == 4 else { throw TensorError.shapeMismatch("nchwToNhwc: expected rank 4, got \(x.shape)") }
        let n = x.shape[0], c = x.shape[1], hw = x.shape[2] * x.shape[3]
        var y = Tensor(uninitializedShape: [n, x.shape[2], x.shape[3], c])
        let src = x.storage.pointer
        y.withUnsafeMutableBufferPointer { dst in
            for img in 0..<n { for ch in 0..<c { for p in 0..<hw { dst[(img * hw + p) * c + ch] = src[(img * c + ch) * hw + p] } } }
        }
        return y
    }

    /// (N, H, W, C) -> (N, C, H, W).
    public static func nhwcToNchw(_ x: Tensor) throws -> Tensor {
        guard x.rank == 4 else { throw TensorError.shapeMismatch("nhwcToNchw: expected rank 4, got \(x.shape)") }
        let n = x.shape[0], c = x.shape[3], hw = x.shape[1] * x.shape[2]
        var y = Tensor(uninitializedShape: [n, c, x.shape[1], x.shape[2]])
        let src = x.storage.pointer
        y.withUnsafeMutableBufferPointer { dst in
            for img in 0..<n { for p in 0..<hw { for ch in 0..<c { dst[(img * c + ch) * hw + p] = src[(img * hw + p) * c + ch] } } }
        }
        return y
    }

    /// Rows of `table` [V, D] for each id -> [ids.count, D]; an id outside 0..<V throws.
    public static func embedding(_ table: Tensor, ids: [Int]) throws -> Tensor {
        guard table.rank == 2 else { throw TensorError.shapeMismatch("embedding: table must be [V, D], got \(table.shape)") }
        let v = table.shape[0], d = table.shape[1]
        if let bad = ids.firstIndex(where: { $0 < 0 || $0 >= v }) {
            throw TensorError.invalidArgument("token id \(ids[bad]) at position \(bad) is outside the vocabulary 0..<\(v)")
        }
        var y = Tensor(uninitializedShape: [ids.count, d])
        y.withUnsafeMutableBufferPointer { dst in
            for (i, id) in ids.enumerated() { (dst.baseAddress! + i * d).update(from: table.storage.pointer + id * d, count: d) }
        }
        return y
    }

    /// Mean over H and W: (N, H, W, C) -> (N, C).
    public static func meanPool2d(_ x: Tensor) throws -> Tensor {
        guard x.rank == 4 else { throw TensorError.shapeMismatch("meanPool2d: expected (N,H,W,C), got \(x.shape)") }
        let n = x.shape[0], hw = x.shape[1] * x.shape[2], c = x.shape[3]
        var y = Tensor(zeros: [n, c])
        let src = x.storage.pointer
        y.withUnsafeMutableBufferPointer { dst in
            for img in 0..<n {
                let out = dst.baseAddress! + img * c
                for p in 0..<hw { axpy(1, src + (img * hw + p) * c, out, count: c) }
                for ch in 0..<c { out[ch] /= Float(hw) }
            }
        }
        return y
    }
}
