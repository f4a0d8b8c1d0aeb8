import Foundation

/// Activation fused into `Ops.linear`'s output pass.
public enum Activation: Sendable {
    case none
    /// Exact GELU (erf), PyTorch's `nn.GELU()` default.
    case gelu
    /// OpenAI CLIP's x·sigmoid(1.702x).
    case quickGelu
}

/// Inference kernels. Shapes are checked up front and mismatches throw `TensorError`; the loops
/// then run over raw pointers. Image maps are channels-last (N, H, W, C).
public enum Ops {}

// MARK: - Elementwise

extension Ops {
    /// Applies `vector` to 16 floats at a time and `scalar` to the tail, in parallel chunks.
    @inline(__always)
    static func mapInPlace(_ p: UnsafeMutablePointer<Float>, count: Int, workPerItem: Int = 4,
                           _ vector: (F16) -> F16) {
        Parallel.forEachChunk(count, workPerItem: workPerItem) { range in
            var i = range.lowerBound
            while i + 16 <= range.upperBound {
                store16(vector(load16(p + i)), p + i)
                i += 16
            }
            if i < range.upperBound {
                var tail = F16(repeating: 0)
                for j in i..<range.upperBound { tail[j - i] = p[j] }
                let out = vector(tail)
                for j in i..<range.upperBound { p[j] = out[j - i] }
            }
        }
    }

    static func apply(_ activation: Activation, _ p: UnsafeMutablePointer<Float>, count: Int) {
        switch activation {
        case .none: break
        case .gelu: mapInPlace(p, count: count, workPerItem: 30, gelu16)
        case .quickGelu: mapInPlace(p, count: count, workPerItem: 30, quickGelu16)
        }
    }

    public static func gelu(_ x: Tensor) -> Tensor {
        var y = x
        y.withUnsafeMutableBufferPointer { apply(.gelu, $0.baseAddress!, count: $0.count) }
        return y
    }

    public static func quickGelu(_ x: Tensor) -> Tensor {
        var y = x
        y.withUnsafeMutableBufferPointer { apply(.quickGelu, $0.baseAddress!, count: $0.count) }
        return y
    }

    public static func mul(_ a: Tensor, scalar: Float) -> Tensor {
        var y = a
        y.withUnsafeMutableBufferPointer { buf in mapInPlace(buf.baseAddress!, count: buf.count) { $0 * scalar } }
        return y
    }

    public static func addInPlace(_ a: inout Tensor, _ b: Tensor) throws {
        guard a.shape == b.shape else { throw TensorError.shapeMismatch("add: \(a.shape) and \(b.shape)") }
        let src = b.storage.pointer
        a.withUnsafeMutableBufferPointer { buf in
            let dst = buf.baseAddress!
            Parallel.forEachChunk(buf.count, workPerItem: 2) { range in
                var i = range.lowerBound
                while i + 16 <= range.upperBound {
                    store16(load16(dst + i) + load16(src + i), dst + i)
                    i += 16
                }
                while i < range.upperBound { dst[i] += src[i]; i += 1 }
            }
        }
    }

    public static func add(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        var y = a
        try addInPlace(&y, b)
        return y
    }
}

// MARK: - Linear algebra

extension Ops {
    /// y = x · weightᵀ + bias, then `activation`; x: [..., in], weight: [out, in] (nn.Linear).
    /// The GEMM runs over blocks of rows and each block's bias + activation is applied right after
    /// its GEMM, while the block is still in cache.
    public static func linear(_ x: Tensor, weight: Tensor, bias: Tensor?, activation: Activation = .none) throws -> Tensor {
        guard weight.rank == 2, x.rank >= 1, x.shape.last == weight.shape[1] else {
            throw TensorError.shapeMismatch("linear: input \(x.shape) with weight \(weight.shape)")
        }
        let inF = weight.shape[1], outF = weight.shape[0], rows = x.count / max(inF, 1)
        if let bias, bias.shape != [outF] {
            throw TensorError.shapeMismatch("linear: bias \(bias.shape) for \(outF) outputs")
        }
        var y = Tensor(uninitializedShape: Array(x.shape.dropLast()) + [outF])
        y.withUnsafeMutableBufferPointer { out in
            let blockRows = max(16, min(rows, (256 * 1024) / max(outF, 1)))
            var start = 0
            while start < rows {
                let m = min(blockRows, rows - start)
                let c = out.baseAddress! + start * outF
                if let bias {
                    for r in 0..<m { (c + r * outF).update(from: bias.storage.pointer, count: outF) }
                }
                sgemm(transB: true, m: m, n: outF, k: inF, a: x.storage.pointer + start * inF, lda: inF,
                      b: weight.storage.pointer, ldb: inF, beta: bias == nil ? 0 : 1, c: c, ldc: outF)
                apply(activation, c, count: m * outF)
                start += m
            }
        }
        return y
    }

    /// y = x · w; x: [..., in], w: [in, out] (open_clip's `proj` and `text_projection`).
    public static func matmul(_ x: Tensor, _ w: Tensor) throws -> Tensor {
        guard w.rank == 2, x.rank >= 1, x.shape.last == w.shape[0] else {
            throw TensorError.shapeMismatch("matmul: \(x.shape) · \(w.shape)")
        }
        let k = w.shape[0], n = w.shape[1], m = x.count / max(k, 1)
        var y = Tensor(uninitializedShape: Array(x.shape.dropLast()) + [n])
        y.withUnsafeMutableBufferPointer { out in
            sgemm(m: m, n: n, k: k, a: x.storage.pointer, lda: k, b: w.storage.pointer, ldb: n, c: out.baseAddress!, ldc: n)
        }
        return y
    }
}

// MARK: - Normalisation

extension Ops {
    public static func layerNorm(_ x: Tensor, weight: Tensor, bias: Tensor, eps: Float) throws -> Tensor {
        var y = x
        try layerNormInPlace(&y, weight: weight, bias: bias, eps: eps)
        return y
    }

    /// LayerNorm over the last dimension (biased variance, as PyTorch), two passes per row.
    public static func layerNormInPlace(_ x: inout Tensor, weight: Tensor, bias: Tensor, eps: Float) throws {
        guard let c = x.shape.last, weight.shape == [c], bias.shape == [c] else {
            throw TensorError.shapeMismatch("layer norm: input \(x.shape), weight \(weight.shape), bias \(bias.shape)")
        }
        let rows = x.count / max(c, 1), g = weight.storage.pointer, b = bias.storage.pointer
        let vecEnd = c & ~15
        x.withUnsafeMutableBufferPointer { buf in
            let base = buf.baseAddress!
            Parallel.forEachChunk(rows, workPerItem: 8 * c) { range in
                for r in range {
                    let p = base + r * c
                    var acc = F16(repeating: 0), sum: Float = 0
                    var i = 0
                    while i < vecEnd { acc += load16(p + i); i += 16 }
                    sum = acc.sum()
                    while i < c { sum += p[i]; i += 1 }
                    let mean = sum / Float(c)
                    let m16 = F16(repeating: mean)
                    var vacc = F16(repeating: 0), vsum: Float = 0
                    i = 0
                    while i < vecEnd { let d = load16(p + i) - m16; vacc += d * d; i += 16 }
                    vsum = vacc.sum()
                    while i < c { let d = p[i] - mean; vsum += d * d; i += 1 }
                    let inv = 1 / (vsum / Float(c) + eps).squareRoot()
                    let inv16 = F16(repeating: inv)
                    i = 0
                    while i < vecEnd {
                        store16((load16(p + i) - m16) * inv16 * load16(g + i) + load16(b + i), p + i)
                        i += 16
                    }
                    while i < c { p[i] = (p[i] - mean) * inv * g[i] + b[i]; i += 1 }
                }
            }
        }
    }

    public static func globalResponseNorm(_ x: Tensor, weight: Tensor, bias: Tensor, eps: Float = 1e-6) throws -> Tensor {
        var y = x
        try globalResponseNormInPlace(&y, weight: weight, bias: bias, eps: eps)
        return y
    }

    /// timm's GlobalResponseNorm on (N, H, W, C): gx = ‖x‖₂ over H, W; nx = gx / (mean_c gx + eps);
    /// y = x + γ·(x·nx) + β, computed as y = x·(1 + γ·nx) + β.
    public static func globalResponseNormInPlace(_ x: inout Tensor, weight: Tensor, bias: Tensor, eps: Float) throws {
        guard x.rank == 4, weight.shape == [x.shape[3]], bias.shape == [x.shape[3]] else {
            throw TensorError.shapeMismatch("global response norm: input \(x.shape) (N,H,W,C), weight \(weight.shape), bias \(bias.shape)")
        }
        let n = x.shape[0], hw = x.shape[1] * x.shape[2], c = x.shape[3]
        let g = weight.storage.pointer, b = bias.storage.pointer
        x.withUnsafeMutableBufferPointer { buf in
            for image in 0..<n {
                let base = buf.baseAddress! + image * hw * c
                // Pass 1: per-channel sum of squares, split over pixels between threads.
                let threads = Parallel.threadCount
                var partial = [Float](repeating: 0, count: threads * c)
                partial.withUnsafeMutableBufferPointer { part in
                    let partBase = part.baseAddress!
                    let chunkCount = min(threads, max(1, hw * c / Parallel.minimumWorkPerThread))
                    DispatchQueue.concurrentPerform(iterations: chunkCount) { t in
                        let acc = partBase + t * c
                        for pix in (hw * t / chunkCount)..<(hw * (t + 1) / chunkCount) {
                            let p = base + pix * c
                            var i = 0
                            while i + 16 <= c { let v = load16(p + i); store16(load16(acc + i) + v * v, acc + i); i += 16 }
                            while i < c { acc[i] += p[i] * p[i]; i += 1 }
                        }
                    }
                }
                var scale = [Float](repeating: 0, count: c)
                var meanNorm: Float = 0
                for ch in 0..<c {
                    var s: Float = 0
                    for t in 0..<threads { s += partial[t * c + ch] }
                    scale[ch] = s.squareRoot()
                    meanNorm += scale[ch]
                }
                meanNorm /= Float(c)
                for ch in 0..<c { scale[ch] = 1 + g[ch] * (scale[ch] / (meanNorm + eps)) }
                // Pass 2: y = x·scale + β.
                scale.withUnsafeBufferPointer { sc in
                    let s = sc.baseAddress!
                    Parallel.forEachChunk(hw, workPerItem: 2 * c) { range in
                        for pix in range {
                            let p = base + pix * c
                            var i = 0
                            while i + 16 <= c { store16(load16(p + i) * load16(s + i) + load16(b + i), p + i); i += 16 }
                            while i < c { p[i] = p[i] * s[i] + b[i]; i += 1 }
                        }
                    }
                }
            }
        }
    }

    /// Softmax over the last dimension.
    public static func softmax(_ x: Tensor) -> Tensor {
        var y = x
        let c = x.shape.last ?? 1
        y.withUnsafeMutableBufferPointer { buf in
            let rows = buf.count / max(c, 1)
            Parallel.forEachChunk(rows, workPerItem: 20 * c) { range in
                for r in range { softmaxRow(buf.baseAddress! + r * c, count: c) }
            }
        }
        return y
    }

    @inline(__always)
    static func softmaxRow(_ p: UnsafeMutablePointer<Float>, count: Int) {
        var maxValue = -Float.infinity
        for i in 0..<count { maxValue = max(maxValue, p[i]) }
        var sum: Float = 0
        var i = 0
        let m16 = F16(repeating: maxValue)
        var acc = F16(repeating: 0)
        while i + 16 <= count { let e = exp16(load16(p + i) - m16); store16(e, p + i); acc += e; i += 16 }
        sum = acc.sum()
        while i < count { let e = exp16(F16(repeating: p[i] - maxValue))[0]; p[i] = e; sum += e; i += 1 }
        let inv = 1 / sum
        for j in 0..<count { p[j] *= inv }
    }

    /// Row-wise x / max(‖x‖₂, 1e-12) (torch.nn.functional.normalize).
    public static func l2Normalize(_ x: Tensor) -> Tensor {
        var y = x
        let c = x.shape.last ?? 1
        y.withUnsafeMutableBufferPointer { buf in
            for r in 0..<(buf.count / max(c, 1)) {
                let p = buf.baseAddress! + r * c
                var s: Float = 0
                for i in 0..<c { s += p[i] * p[i] }
                let inv = 1 / max(s.squareRoot(), 1e-12)
                for i in 0..<c { p[i] *= inv }
            }
        }
        return y
    }
}
