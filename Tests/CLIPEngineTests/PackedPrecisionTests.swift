import XCTest
import CLIPEngine

/// `PackedMatrix` in bf16 and int8 through `Ops.linear` (the layers' path, threads included):
/// the bytes it holds, and its error against the fp32 product in Float64.
final class PackedPrecisionTests: XCTestCase {
    var rng = SeededGenerator(seed: 7)

    func tensor(_ shape: [Int]) -> Tensor {
        try! Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in Float.random(in: -1...1, using: &rng) })
    }

    func testBytesHalveAndQuarter() throws {
        let w = tensor([384, 96])   // nn.Linear [out, in]
        let fp32 = try PackedMatrix(linearWeight: w), bf16 = try PackedMatrix(linearWeight: w, precision: .bf16)
        let int8 = try PackedMatrix(linearWeight: w, precision: .int8)
        XCTAssertEqual(fp32.bytes, 384 * 96 * 4)
        XCTAssertEqual(bf16.bytes, 384 * 96 * 2)
        XCTAssertEqual(int8.bytes, 384 * 96 + 384 * 8)   // + a scale and a sum per output column
        XCTAssertEqual(bf16.precision, .bf16)
    }

    /// Large enough that the product is split over threads (rows, and then columns).
    func testLinearErrorAgainstFloat64() throws {
        for (m, k, n) in [(300, 96, 384), (3, 768, 512), (50, 3, 7)] {
            let x = tensor([m, k]), w = tensor([n, k]), b = tensor([n])
            var want = [Double](repeating: 0, count: m * n)
            for i in 0..<m { for j in 0..<n {
                var s = Double(b[flat: j])
                for kk in 0..<k { s += Double(x[flat: i * k + kk]) * Double(w[flat: j * k + kk]) }
                want[i * n + j] = s
            } }
            let norm = (want.map { $0 * $0 }.reduce(0, +) / Double(want.count)).squareRoot()
            for (precision, tolerance) in [(Precision.fp32, 1e-6), (.bf16, 8e-3), (.int8, 3e-2)] {
                let y = try Ops.linear(x, packed: PackedMatrix(linearWeight: w, precision: precision), bias: b)
                var err = 0.0
                for i in 0..<(m * n) { err += (Double(y[flat: i]) - want[i]) * (Double(y[flat: i]) - want[i]) }
                let rms = (err / Double(m * n)).squareRoot() / norm
                XCTAssertLessThanOrEqual(rms, tolerance, "\(precision) \(m)x\(k)x\(n) relative RMS error")
                if precision != .fp32 { XCTAssertGreaterThan(rms, 1e-6, "\(precision) actually rounds") }
            }
        }
    }

    /// A normalisation passed to the GEMM (`normalizedBy`) gives exactly the product of the
    /// normalised input at every precision: fused into bf16's conversion, applied first otherwise.
    func testNormalisedInputMatchesNormalisingFirst() throws {
        let (images, k, n) = (2, 96, 70)   // 2 images of 10 × 15 pixels: rows split over threads
        let x = tensor([images, 10, 15, k]), w = tensor([n, k]), b = tensor([n])
        let gamma = tensor([k]), beta = tensor([k])
        let grn = try Ops.globalResponseNormAffine(x, weight: tensor([k]), bias: beta)
        let normalisations: [InputNormalization] = [.layerNorm(weight: gamma, bias: beta, eps: 1e-6), grn]
        for precision in [Precision.fp32, .bf16, .int8] {
            let packed = try PackedMatrix(linearWeight: w, precision: precision)
            for normalization in normalisations {
                let first = try normalization.apply(to: x)
                let want = try Ops.linear(first, packed: packed, bias: b, activation: .gelu)
                let got = try Ops.linear(x, packed: packed, bias: b, activation: .gelu, normalizedBy: normalization)
                XCTAssertEqual(got.scalars, want.scalars, "\(precision) \(normalization)")
                var residual = tensor([images, 10, 15, n]), expected = residual
                try Ops.linearAccumulate(first, packed: packed, bias: b, into: &expected)
                try Ops.linearAccumulate(x, packed: packed, bias: b, into: &residual, normalizedBy: normalization)
                XCTAssertEqual(residual.scalars, expected.scalars, "\(precision) accumulate \(normalization)")
            }
            // Shapes that do not fit are errors, not traps.
            let packedNarrow = try PackedMatrix(linearWeight: tensor([n, 5]), precision: precision)
            XCTAssertThrowsError(try Ops.linear(tensor([3, 5]), packed: packedNarrow, bias: nil, normalizedBy: grn))
            XCTAssertThrowsError(try Ops.linear(tensor([3, 5]), packed: packedNarrow, bias: nil,
                                                normalizedBy: .layerNorm(weight: gamma, bias: beta, eps: 1e-6)))
        }
    }

    /// An fp32 GEMM whose threads split the rows normalises each block of rows into a scratch block
    /// right before its tiles read it (`gemm_packed_normalized`); one split by panels normalises
    /// first. Either way: bit for bit the normalise-first product, and the product of the normalised
    /// input in Float64 (LayerNorm and GRN's affine map, GELU after). Shapes (on 2 threads): 1,470
    /// rows in images of 49 that straddle the 128-row blocks (rows split over threads), 21 rows with
    /// K = 37 (a partial vector; one thread), 300 rows by 300 outputs (split by panels).
    func testFP32GEMMNormalisesItsRowBlocks() throws {
        rng = SeededGenerator(seed: 2_612_063)
        for (images, hw, k, n) in [(30, 49, 100, 150), (3, 7, 37, 40), (3, 100, 256, 300)] {
            let x = tensor([images, hw, 1, k]), w = tensor([n, k]), b = tensor([n])
            let gamma = tensor([k]), beta = tensor([k])
            let grnWeight = tensor([k])
            let grn = try Ops.globalResponseNormAffine(x, weight: grnWeight, bias: beta)
            let packed = try PackedMatrix(linearWeight: w)
            // Float64 inputs of the product: LayerNorm, and GRN (y = x·(1 + γ·gx/(mean gx + eps)) + β).
            let xd = x.scalars.map(Double.init), rows = images * hw
            var ln = xd, affine = xd
            for r in 0..<rows {
                let row = xd[r * k..<(r + 1) * k]
                let mean = row.reduce(0, +) / Double(k)
                let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(k)
                for c in 0..<k {
                    ln[r * k + c] = (xd[r * k + c] - mean) / (variance + 1e-6).squareRoot() * Double(gamma[flat: c]) + Double(beta[flat: c])
                }
            }
            for image in 0..<images {
                let gx = (0..<k).map { c in (0..<hw).map { p in xd[(image * hw + p) * k + c] }.reduce(0) { $0 + $1 * $1 }.squareRoot() }
                let mean = gx.reduce(0, +) / Double(k)
                for p in 0..<hw {
                    for c in 0..<k {
                        let i = (image * hw + p) * k + c
                        affine[i] = xd[i] * (1 + Double(grnWeight[flat: c]) * gx[c] / (mean + 1e-6)) + Double(beta[flat: c])
                    }
                }
            }
            for (normalization, input) in [(InputNormalization.layerNorm(weight: gamma, bias: beta, eps: 1e-6), ln), (grn, affine)] {
                let got = try Ops.linear(x, packed: packed, bias: b, activation: .gelu, normalizedBy: normalization)
                let want = try Ops.linear(normalization.apply(to: x), packed: packed, bias: b, activation: .gelu)
                XCTAssertEqual(got.scalars, want.scalars, "\(rows)x\(k)x\(n) \(normalization)")
                var err = 0.0, norm = 0.0
                for r in 0..<rows {
                    for j in 0..<n {
                        var s = Double(b[flat: j])
                        for c in 0..<k { s += input[r * k + c] * Double(w[flat: j * k + c]) }
                        let e = Double(got[flat: r * n + j]) - Ref.gelu(s)
                        err += e * e
                        norm += Ref.gelu(s) * Ref.gelu(s)
                    }
                }
                XCTAssertLessThanOrEqual((err / norm).squareRoot(), 1e-5, "\(rows)x\(k)x\(n) \(normalization) against Float64")
            }
        }
    }
}
