// Token-sequence ops the towers used to do with pointer loops of their own (positional add,
// class token, end-of-text gather), each with its backward; the embedding lookup's and mean
// pooling's backward. Plain loops.

extension Ops {
    /// x[b, t, :] += table[t, :] for t < T (x: [B, T, D], table: [P ≥ T, D]); in place.
    public static func addPositional(_ x: inout Tensor, _ table: Tensor) throws {
        try require(x.rank == 3 && table.rank == 2 && table.shape[1] == x.shape[2] && table.shape[0] >= x.shape[1],
                    "addPositional: input \(x.shape) with table \(table.shape) (need [B, T, D] and [P ≥ T, D])")
        let (b, span) = (x.shape[0], x.shape[1] * x.shape[2])
        let pos = table.storage.pointer
        x.withUnsafeMutableBufferPointer { buf in
            for i in 0..<b { let row = buf.baseAddress! + i * span; for j in 0..<span { row[j] += pos[j] } }
        }
    }

    /// Backward of `addPositional`: tableGrad[t, :] += Σ_b dy[b, t, :].
    public static func addPositionalBackward(_ dy: Tensor, tableGrad: UnsafeMutablePointer<Float>) throws {
        try require(dy.rank == 3, "addPositionalBackward: dy \(dy.shape) must be [B, T, D]")
        let (b, span) = (dy.shape[0], dy.shape[1] * dy.shape[2])
        let g = dy.storage.pointer
        for i in 0..<b { for j in 0..<span { tableGrad[j] += g[i * span + j] } }
    }

    /// [class; tokens] + positional: tokens [N, P, D], cls [D], pos [P + 1, D] → [N, P + 1, D]
    /// (open_clip's ViT before `ln_pre`).
    public static func prependClassToken(_ tokens: Tensor, classEmbedding cls: Tensor, positional pos: Tensor) throws -> Tensor {
        try require(tokens.rank == 3 && cls.shape == [tokens.shape[2]] && pos.shape == [tokens.shape[1] + 1, tokens.shape[2]],
                    "prependClassToken: tokens \(tokens.shape), class \(cls.shape), positional \(pos.shape)")
        let (n, patches, width) = (tokens.shape[0], tokens.shape[1], tokens.shape[2])
        let out = Tensor(uninitializedShape: [n, patches + 1, width])
        let pp = pos.storage.pointer, cp = cls.storage.pointer, src = tokens.storage.pointer, dst = out.storage.pointer
        for b in 0..<n {
            let d = dst + b * (patches + 1) * width
            for c in 0..<width { d[c] = cp[c] + pp[c] }
            for i in 0..<(patches * width) { d[width + i] = src[b * patches * width + i] + pp[width + i] }
        }
        return out
    }

    /// Backward of `prependClassToken`: adds into the class and positional gradients, returns dtokens.
    public static func prependClassTokenBackward(_ dy: Tensor, classGrad: UnsafeMutablePointer<Float>?,
                                                 positionalGrad: UnsafeMutablePointer<Float>?) throws -> Tensor {
        try require(dy.rank == 3 && dy.shape[1] >= 1, "prependClassTokenBackward: dy \(dy.shape) must be [N, P + 1, D]")
        let (n, patches, width) = (dy.shape[0], dy.shape[1] - 1, dy.shape[2])
        let out = Tensor(uninitializedShape: [n, patches, width])
        let g = dy.storage.pointer, d = out.storage.pointer
        for b in 0..<n {
            let gb = g + b * (patches + 1) * width
            if let classGrad { for c in 0..<width { classGrad[c] += gb[c] } }
            if let positionalGrad { for i in 0..<((patches + 1) * width) { positionalGrad[i] += gb[i] } }
            (d + b * patches * width).update(from: gb + width, count: patches * width)
        }
        return out
    }

    /// Row `index[b]` of each sequence: x [B, T, D] → [B, D] (end-of-text pooling, class token).
    public static func gatherRows(_ x: Tensor, indices: [Int]) throws -> Tensor {
        try require(x.rank == 3 && indices.count == x.shape[0], "gatherRows: input \(x.shape) with \(indices.count) indices")
        let (t, d) = (x.shape[1], x.shape[2])
        for (b, i) in indices.enumerated() where i < 0 || i >= t {
            throw TensorError.invalidArgument("gatherRows: index \(i) for sequence \(b) is outside 0..<\(t)")
        }
        let out = Tensor(uninitializedShape: [indices.count, d])
        for (b, i) in indices.enumerated() {
            (out.storage.pointer + b * d).update(from: x.storage.pointer + (b * t + i) * d, count: d)
        }
        return out
    }

    /// Backward of `gatherRows`: dy [B, D] → dx [B, T, D], zero except the gathered rows.
    public static func gatherRowsBackward(_ dy: Tensor, indices: [Int], sequenceLength t: Int) throws -> Tensor {
        try require(dy.rank == 2 && indices.count == dy.shape[0] && indices.allSatisfy { $0 >= 0 && $0 < t },
                    "gatherRowsBackward: dy \(dy.shape) with indices \(indices) into length \(t)")
        let d = dy.shape[1]
        let dx = Tensor(zeros: [dy.shape[0], t, d])
        for (b, i) in indices.enumerated() {
            (dx.storage.pointer + (b * t + i) * d).update(from: dy.storage.pointer + b * d, count: d)
        }
        return dx
    }

    /// Backward of `embedding`: tableGrad[ids[i], :] += dy[i, :] (sparse row accumulation).
    public static func embeddingBackward(_ dy: Tensor, ids: [Int], vocabulary: Int, tableGrad: UnsafeMutablePointer<Float>) throws {
        try require(dy.count == ids.count * (dy.shape.last ?? 0) && ids.allSatisfy { $0 >= 0 && $0 < vocabulary },
                    "embeddingBackward: dy \(dy.shape) with \(ids.count) ids into a table of \(vocabulary) rows")
        let d = dy.shape.last ?? 0
        let g = dy.storage.pointer
        for (i, id) in ids.enumerated() {
            let row = tableGrad + id * d, src = g + i * d
            for c in 0..<d { row[c] += src[c] }
        }
    }

    /// Backward of `meanPool2d`: dy [N, C] → dx [N, H, W, C] = dy / (H·W) at every pixel.
    public static func meanPool2dBackward(_ dy: Tensor, inputShape shape: [Int]) throws -> Tensor {
        try require(shape.count == 4 && dy.shape == [shape[0], shape[3]] && shape[1] * shape[2] > 0,
                    "meanPool2dBackward: dy \(dy.shape) for input \(shape)")
        let (n, hw, c) = (shape[0], shape[1] * shape[2], shape[3])
        let dx = Tensor(uninitializedShape: shape)
        let inv = 1 / Float(hw)
        let g = dy.storage.pointer, d = dx.storage.pointer
        chunks(n * hw, workPerItem: c) { range in
            for r in range { let gr = g + (r / hw) * c, dr = d + r * c; for ch in 0..<c { dr[ch] = gr[ch] * inv } }
        }
        return dx
    }

    /// a += b elementwise (same shape): residual gradients meeting.
    public static func accumulate(_ a: inout Tensor, _ b: Tensor) throws {
        try require(a.shape == b.shape, "accumulate: \(a.shape) += \(b.shape)")
        let bp = b.storage.pointer
        a.withUnsafeMutableBufferPointer { buf in
            let ap = buf.baseAddress!
            chunks((buf.count + 4095) / 4096, workPerItem: 4096) { range in
                for i in (range.lowerBound * 4096)..<min(buf.count, range.upperBound * 4096) { ap[i] += bp[i] }
            }
        }
    }
}
