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

/// Row-wise int8 quantisation for exact search: each row of a row-major float matrix stored as
/// int8 values with its own scale (max |x| / 127), a quarter of the bytes a scan over float rows
/// reads. `errorPerQueryNorm` bounds every query's score error on every row:
/// |x · row_r − scores(x)[r]| ≤ ‖x‖₂ · errorPerQueryNorm, from ‖row_r − scale_r · q_r‖₂
/// (Cauchy–Schwarz) plus the float rounding of both sums (k · 2⁻²³ · ‖row_r‖₂ each, generously).
/// A row with a non-finite value makes the bound infinite (callers then scan the floats).
public struct Int8Rows: Sendable {
    public let rows: Int
    public let width: Int
    let values: [Int8]
    let scales: [Float]
    public let errorPerQueryNorm: Float

    public init(quantizing src: UnsafeBufferPointer<Float>, rows: Int, width: Int) {
        precondition(src.count == rows * width, "Int8Rows: \(src.count) floats for \(rows) × \(width)")
        var values = [Int8](repeating: 0, count: rows * width)
        var scales = [Float](repeating: 0, count: rows), bounds = [Double](repeating: 0, count: rows)
        let rounding = 2 * Double(width) * Double(Float.ulpOfOne)
        values.withUnsafeMutableBufferPointer { q in
            scales.withUnsafeMutableBufferPointer { sc in
                bounds.withUnsafeMutableBufferPointer { bd in
                    let (q, sc, bd) = (q.baseAddress!, sc.baseAddress!, bd.baseAddress!)
                    Parallel.forEachChunk(rows, workPerItem: 4 * width) { range in
                        for r in range {
                            let row = src.baseAddress! + r * width
                            var peak: Float = 0
                            for j in 0..<width where row[j].isFinite { peak = max(peak, abs(row[j])) }
                            let scale = peak > 0 ? peak / 127 : 1
                            var residual = 0.0, norm = 0.0, finite = true
                            for j in 0..<width {
                                guard row[j].isFinite else { finite = false; q[r * width + j] = 0; continue }
                                let v = min(max((row[j] / scale).rounded(), -127), 127)
                                q[r * width + j] = Int8(v)
                                let e = Double(row[j]) - Double(scale) * Double(v)
                                residual += e * e
                                norm += Double(row[j]) * Double(row[j])
                            }
                            sc[r] = scale
                            bd[r] = finite ? residual.squareRoot() + rounding * norm.squareRoot() : .infinity
                        }
                    }
                }
            }
        }
        self.rows = rows; self.width = width; self.values = values; self.scales = scales
        errorPerQueryNorm = Float(bounds.max() ?? 0).nextUp
    }

    /// y[r − lo] = scale_r · (q_r · x) for r in `range`, rows split over `Parallel.budget` threads.
    public func scores(_ x: UnsafePointer<Float>, rows range: Range<Int>, into y: UnsafeMutablePointer<Float>) {
        guard !range.isEmpty else { return }
        let width = self.width
        values.withUnsafeBufferPointer { q in
            scales.withUnsafeBufferPointer { sc in
                let (q, sc) = (q.baseAddress!, sc.baseAddress!)
                Parallel.forEachChunk(range.count, workPerItem: 2 * width) { part in
                    let r = range.lowerBound + part.lowerBound
                    kernels.dot_i8_rows(q + r * width, sc + r, x, y + part.lowerBound, width, part.count)
                }
            }
        }
    }
}
