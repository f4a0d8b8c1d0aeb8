// Inference kernels: `Ops` is the engine's public op set. Each op checks shapes first (throwing
// `TensorError` naming the op and the shapes), splits the work over `Parallel`'s threads, and
// runs the inner loop of the C kernel table (`KernelDispatch.swift`) over contiguous row-major
// memory. Files: Linear (GEMM-based ops), PackedGEMM, DepthwiseConv, Normalization (LayerNorm,
// GRN, softmax, L2), Attention, and this file (elementwise, layout, lookup, pooling).

/// Activation fused into `Ops.linear`'s GEMM epilogue.
public enum Activation: Sendable {
    case none
    /// Exact erf GELU (PyTorch `nn.GELU()` default).
    case gelu
    /// x·σ(1.702·x) (OpenAI CLIP's QuickGELU).
    case quickGelu
}

public enum Ops {}

extension Ops {
    @inline(__always)
    static func require(_ condition: Bool, _ message: @autoclosure () -> String) throws {
        if !condition { throw TensorError.shapeMismatch(message()) }
    }

    /// Runs `body(range)` over `0..<count` items, in parallel when the work is large.
    @inline(__always)
    static func chunks(_ count: Int, workPerItem: Int, _ body: (Range<Int>) -> Void) {
        Parallel.forEachChunk(count, workPerItem: workPerItem, body)
    }

    /// Elementwise work is split at multiples of 64 floats (whole vectors at every level).
    static let elementBlock = 64

    /// A new tensor of `x`'s shape, `kernel(src, dst, count)` run over contiguous chunks of it.
    @inline(__always)
    static func elementwise(_ x: Tensor, workPerElement: Int,
                            _ kernel: (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) -> Tensor {
        let out = Tensor(uninitializedShape: x.shape)
        let src = x.storage.pointer, dst = out.storage.pointer, count = x.count
        let blocks = (count + elementBlock - 1) / elementBlock
        chunks(blocks, workPerItem: elementBlock * workPerElement) { range in
            let lo = range.lowerBound * elementBlock, hi = min(count, range.upperBound * elementBlock)
            kernel(src + lo, dst + lo, hi - lo)
        }
        return out
    }

    // MARK: Activations

    /// Exact erf GELU, elementwise (max relative error ≈ 3e-7 against Float64).
    public static func gelu(_ x: Tensor) -> Tensor {
        elementwise(x, workPerElement: 40) { kernels.gelu($0, nil, $1, $2) }
    }

    /// x·σ(1.702·x), elementwise.
    public static func quickGelu(_ x: Tensor) -> Tensor {
        elementwise(x, workPerElement: 30) { kernels.quick_gelu($0, nil, $1, $2) }
    }

    // MARK: Elementwise arithmetic

    /// a + b, where b has a's shape or is a row vector `[a.shape.last]` broadcast over a's rows.
    public static func add(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        var out = a
        try addInPlace(&out, b)
        return out
    }

    /// a += b, where b has a's shape or is a row vector `[a.shape.last]` broadcast over a's rows.
    public static func addInPlace(_ a: inout Tensor, _ b: Tensor) throws {
        let sameShape = a.shape == b.shape
        let row = b.rank == 1 && a.rank >= 1 && a.shape.last == b.shape[0]
        try require(sameShape || row, "add: \(a.shape) and \(b.shape) (need equal shapes or a row vector of the last dimension)")
        let count = a.count
        let bp = b.storage.pointer
        a.withUnsafeMutableBufferPointer { buf in
            let ap = buf.baseAddress!
            if sameShape {
                chunks((count + elementBlock - 1) / elementBlock, workPerItem: elementBlock) { range in
                    let lo = range.lowerBound * elementBlock, hi = min(count, range.upperBound * elementBlock)
                    kernels.add(ap + lo, bp + lo, hi - lo)
                }
            } else {
                let width = b.count
                guard width > 0 else { return }
                chunks(count / width, workPerItem: width) { rows in
                    for r in rows { kernels.add(ap + r * width, bp, width) }
                }
            }
        }
    }

    /// a · s.
    public static func mul(_ a: Tensor, scalar s: Float) -> Tensor {
        elementwise(a, workPerElement: 1) { kernels.scale($0, $1, $2, s) }
    }

    // MARK: Layout

    /// [N, C, H, W] → [N, H, W, C].
    public static func nchwToNhwc(_ x: Tensor) throws -> Tensor {
        try require(x.rank == 4, "nchwToNhwc: expected [N, C, H, W], got \(x.shape)")
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        return transposeLastTwo(x, batch: n, rows: c, cols: h * w, outShape: [n, h, w, c])
    }

    /// [N, H, W, C] → [N, C, H, W].
    public static func nhwcToNchw(_ x: Tensor) throws -> Tensor {
        try require(x.rank == 4, "nhwcToNchw: expected [N, H, W, C], got \(x.shape)")
        let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        return transposeLastTwo(x, batch: n, rows: h * w, cols: c, outShape: [n, c, h, w])
    }

    /// Per batch item, a (rows × cols) matrix becomes (cols × rows); tiled for cache reuse.
    static func transposeLastTwo(_ x: Tensor, batch: Int, rows: Int, cols: Int, outShape: [Int]) -> Tensor {
        let out = Tensor(uninitializedShape: outShape)
        let src = x.storage.pointer, dst = out.storage.pointer
        let tile = 32
        let rowTiles = (rows + tile - 1) / tile
        chunks(batch * rowTiles, workPerItem: tile * cols) { items in
            for item in items {
                let b = item / rowTiles, r0 = (item % rowTiles) * tile, r1 = min(rows, r0 + tile)
                let s = src + b * rows * cols, d = dst + b * rows * cols
                var c0 = 0
                while c0 < cols {
                    let c1 = min(cols, c0 + tile)
                    for r in r0..<r1 {
                        for c in c0..<c1 { d[c * rows + r] = s[r * cols + c] }
                    }
                    c0 = c1
                }
            }
        }
        return out
    }

    // MARK: Lookup and pooling

    /// Rows of `table` [V, D] picked by `ids` → [ids.count, D]. Throws for an id outside 0..<V.
    public static func embedding(_ table: Tensor, ids: [Int]) throws -> Tensor {
        try require(table.rank == 2, "embedding: table must be [V, D], got \(table.shape)")
        let (v, d) = (table.shape[0], table.shape[1])
        for (position, id) in ids.enumerated() where id < 0 || id >= v {
            throw TensorError.invalidArgument("embedding: id \(id) at position \(position) is outside 0..<\(v)")
        }
        let out = Tensor(uninitializedShape: [ids.count, d])
        for (i, id) in ids.enumerated() {
            (out.storage.pointer + i * d).update(from: table.storage.pointer + id * d, count: d)
        }
        return out
    }

    /// Mean over H and W of a channels-last map: [N, H, W, C] → [N, C].
    public static func meanPool2d(_ x: Tensor) throws -> Tensor {
        try require(x.rank == 4, "meanPool2d: expected [N, H, W, C], got \(x.shape)")
        let (n, hw, c) = (x.shape[0], x.shape[1] * x.shape[2], x.shape[3])
        try require(hw > 0, "meanPool2d: empty spatial extent in \(x.shape)")
        let sums = columnSums(x.storage.pointer, images: n, rowsPerImage: hw, width: c, squared: false)
        let out = Tensor(uninitializedShape: [n, c])
        let scale = 1 / Double(hw)
        for i in 0..<(n * c) { out.storage.pointer[i] = Float(sums[i] * scale) }
        return out
    }

    /// Per image, the sum over its rows of x (or of x²): `images` blocks of `rowsPerImage` rows of
    /// `width` floats → [images × width] sums. Rows are read contiguously; threads take contiguous
    /// row ranges; runs of 64 rows are summed in Float, the runs in Double (accuracy for large H·W).
    static func columnSums(_ x: UnsafePointer<Float>, images: Int, rowsPerImage: Int, width: Int,
                           squared: Bool) -> [Double] {
        columnSums(images: images, rowsPerImage: rowsPerImage, width: width, runs: 1) { r, rows, run in
            kernels.accumulate_rows(x + r * width, run, width, rows, squared ? 1 : 0)
        }[0]
    }

    /// Per-(image, column) sums over each image's rows of a channels-last map, `runs` sums per
    /// column: `accumulate(row, rows, run)` adds rows row..<row + rows into the float runs
    /// run[i·width ..< (i + 1)·width], i < runs. Floats over at most 64 rows, then Double; split
    /// over the threads by rows (partial sums per part, added at the end). Returns runs arrays of
    /// images·width sums.
    static func columnSums(images: Int, rowsPerImage: Int, width: Int, runs: Int,
                           _ accumulate: (Int, Int, UnsafeMutablePointer<Float>) -> Void) -> [[Double]] {
        let totalRows = images * rowsPerImage, size = images * width
        let parts = max(1, min(Parallel.budget, totalRows * width * runs / 500_000))
        var partial = [Double](repeating: 0, count: parts * runs * size)
        partial.withUnsafeMutableBufferPointer { partialBuf in
            let partialBase = partialBuf.baseAddress!
            chunks(parts, workPerItem: Parallel.minimumWorkPerThread) { range in
                let run = UnsafeMutablePointer<Float>.allocate(capacity: runs * width)
                defer { run.deallocate() }
                for p in range {
                    var r = totalRows * p / parts
                    let end = totalRows * (p + 1) / parts
                    while r < end {
                        let image = r / rowsPerImage
                        let stop = min(end, (image + 1) * rowsPerImage, r + 64)
                        run.initialize(repeating: 0, count: runs * width)
                        accumulate(r, stop - r, run)
                        for i in 0..<runs {
                            let dst = partialBase + ((p * runs + i) * images + image) * width, src = run + i * width
                            for c in 0..<width { dst[c] += Double(src[c]) }
                        }
                        r = stop
                    }
                }
            }
        }
        return (0..<runs).map { i in
            var sums = [Double](repeating: 0, count: size)
            for p in 0..<parts {
                let base = (p * runs + i) * size
                for j in 0..<size { sums[j] += partial[base + j] }
            }
            return sums
        }
    }
}
