#if canImport(Accelerate)
import Accelerate
#else
import CBLAS
#endif

/// y = A · x for a row-major A (m × k): one query against m stored vectors. CBLAS's sgemv reads A
/// once; sgemm with n = 1 would first pack A (a second pass over it — for exact search over 10^5–10^6
/// vectors the work is all memory traffic, so that pass doubled the time). Rows are split over
/// `Parallel.budget` threads, each a single-threaded sgemv on its block.
public func sgemv(m: Int, k: Int, a: UnsafePointer<Float>, lda: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
    guard m > 0 else { return }
    #if !canImport(Accelerate)
    openblas_set_num_threads(1)
    #endif
    func block(_ rows: Range<Int>) {
        guard !rows.isEmpty else { return }
        cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(rows.count), Int32(k), 1, a + rows.lowerBound * lda, Int32(lda),
                    x, 1, 0, y + rows.lowerBound, 1)
    }
    let parts = Parallel.budget
    if parts <= 1 || 2 * m * k < gemmParallelFlops {
        block(0..<m)
        return
    }
    Parallel.run(parts) { p in block(m * p / parts ..< m * (p + 1) / parts) }
}
