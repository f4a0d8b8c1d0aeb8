#if canImport(Accelerate)
import Accelerate
#else
import CBLAS
#endif

/// OpenBLAS runs single-threaded: `gemm` splits the work across `Parallel`'s threads itself.
/// Measured here (2 cores, 0.3.21 pthread): two OpenBLAS calls on halves of M (or of N when M is
/// small) beat OpenBLAS's own two-thread split on every ConvNeXt/CLIP shape tried (e.g.
/// 3136×384×96: 0.94 ms vs 1.26 ms), and it lets each thread run a fused epilogue on its own
/// output block while it is in cache. It also keeps OpenBLAS's spinning workers from competing
/// with ours.
private let blasSingleThreaded: Void = {
    #if !canImport(Accelerate)
    openblas_set_num_threads(1)
    #endif
}()

/// Matrix multiply through CBLAS: C = alpha · op(A) · op(B) + beta · C, all row-major.
/// `A` is (m × k) after `op`, `B` is (k × n) after `op`, `C` is (m × n). Large products are
/// split over `Parallel.budget` threads.
@inline(__always)
public func sgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                  alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                  b: UnsafePointer<Float>, ldb: Int,
                  beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
         beta: beta, c: c, ldc: ldc, epilogue: nil)
}

/// One single-threaded CBLAS call.
@inline(__always)
func blasSgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
               a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
               beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    guard m > 0, n > 0 else { return }
    _ = blasSingleThreaded
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// Products below this many flops run on the calling thread.
let gemmParallelFlops = 4_000_000
/// Rows of C per GEMM call when an epilogue follows (the block is then still in L2).
let gemmEpilogueRows = 256

/// C = alpha·op(A)·op(B) + beta·C, split over threads along M (or along N when M is small), with
/// `epilogue(rows, cols)` called on each finished block of C by the thread that computed it.
func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
          a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
          beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int,
          epilogue: ((Range<Int>, Range<Int>) -> Void)?) {
    guard m > 0, n > 0 else { return }
    // Computes rows × cols of C, in row blocks when an epilogue is waiting for them.
    func block(_ rows: Range<Int>, _ cols: Range<Int>) {
        let step = epilogue == nil ? rows.count : max(1, gemmEpilogueRows)
        var r = rows.lowerBound
        while r < rows.upperBound {
            let rs = r..<min(r + step, rows.upperBound)
            blasSgemm(transA: transA, transB: transB, m: rs.count, n: cols.count, k: k, alpha: alpha,
                      a: transA ? a + rs.lowerBound : a + rs.lowerBound * lda, lda: lda,
                      b: transB ? b + cols.lowerBound * ldb : b + cols.lowerBound, ldb: ldb,
                      beta: beta, c: c + rs.lowerBound * ldc + cols.lowerBound, ldc: ldc)
            epilogue?(rs, cols)
            r = rs.upperBound
        }
    }
    let flops = 2 * m * n * k
    let parts = Parallel.budget
    if parts <= 1 || flops < gemmParallelFlops {
        block(0..<m, 0..<n)
        return
    }
    let splitRows = 4 * m >= n
    Parallel.forEachChunk(parts, workPerItem: Parallel.minimumWorkPerThread) { range in
        for p in range {
            if splitRows {
                block(m * p / parts ..< m * (p + 1) / parts, 0..<n)
            } else {
                // Column boundaries on multiples of 16 keep the epilogue's vectors whole.
                let lo = min(n, (n * p / parts + 8) / 16 * 16), hi = p == parts - 1 ? n : min(n, (n * (p + 1) / parts + 8) / 16 * 16)
                if lo < hi { block(0..<m, lo..<hi) }
            }
        }
    }
}
