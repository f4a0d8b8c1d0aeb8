import XCTest
import CLIPKernels
import CLIPEngine

/// The bf16 and int8 kernels of every level this CPU has (the AVX512_BF16 level's `vdpbf16ps` /
/// `vpdpbusd` tiles, and the widening ones of AVX-512, AVX2 and the portable build), through their
/// tables: conversions and packing exact against a Swift reference of the format, GEMMs against
/// Float64 over the rounded or quantised values (so only fp32/int32 summation error remains), with
/// shapes that leave partial tiles, odd k and every epilogue.
final class ReducedPrecisionKernelTests: KernelTestCase {
    let panel = Int(CLIP_PANEL_WIDTH), pair = Int(CLIP_BF16_GROUP), quad = Int(CLIP_I8_GROUP)
    let shapes = [(37, 29, 75), (1, 3, 1), (8, 64, 32), (300, 17, 40), (9, 768, 33)]

    /// Nearest bf16 to x (ties to even), chosen between the two truncations in Double.
    /// Past the largest bf16 the next step up is ±2^128, which rounds to ±inf (IEEE overflow).
    static func bf16(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        if x.isInfinite { return UInt16(bits >> 16) }
        let down = bits & 0xFFFF_0000, up = down &+ 0x1_0000
        let upValue = Float(bitPattern: up).isInfinite ? Double(x.sign == .minus ? -1 : 1) * 0x1p128 : Double(Float(bitPattern: up))
        let dDown = abs(Double(Float(bitPattern: down)) - Double(x)), dUp = abs(upValue - Double(x))
        let pick = dDown < dUp || (dDown == dUp && (down >> 16) & 1 == 0) ? down : up
        return UInt16(pick >> 16)
    }
    static func float(_ h: UInt16) -> Double { Double(Float(bitPattern: UInt32(h) << 16)) }

    func testBF16RoundingOfRows() {
        for (name, k) in levels {
            for width in [1, 15, 16, 17, 100] {
                var x = random(3 * width, -1e3...1e3)
                // Exact ties (even and odd below), the largest finite values, NaN and ±inf.
                x[0] = Float(bitPattern: 0x3F80_8000)
                if width > 3 { x[1] = Float(bitPattern: 0x3F81_8000); x[2] = -.greatestFiniteMagnitude; x[3] = .infinity }
                if width > 5 { x[4] = .nan; x[5] = Float(bitPattern: 0x7F80_0001) }
                let ld = width + (width % 2) + 2
                var out = [UInt16](repeating: 0xFFFF, count: 3 * ld)
                k.round_rows_bf16(x, width, width, &out, ld, 3)
                for r in 0..<3 {
                    for j in 0..<ld {
                        let got = out[r * ld + j]
                        if j >= width { XCTAssertEqual(got, 0, "\(name) padding"); continue }
                        let v = x[r * width + j]
                        if v.isNaN {
                            XCTAssertTrue(Float(bitPattern: UInt32(got) << 16).isNaN, "\(name) NaN stays NaN")
                        } else {
                            XCTAssertEqual(got, Self.bf16(v), "\(name) bf16(\(v)) width \(width)")
                        }
                    }
                }
            }
        }
    }

    /// B [kk, n] packed by the level, checked against the documented layout.
    func packBF16(_ k: clip_kernel_table, _ b: [Float], kk: Int, n: Int, name: String) -> [UInt16] {
        let panels = (n + panel - 1) / panel, groups = (kk + 1) / 2
        var packed = [UInt16](repeating: 0xFFFF, count: panels * groups * panel * pair)
        // Two calls, as threads split the panels; the source as nn.Linear's [n, kk] (transposed).
        let bt = (0..<(n * kk)).map { b[($0 % kk) * n + $0 / kk] }
        k.pack_panels_bf16(bt, kk, 1, kk, n, &packed, 0, panels / 2)
        k.pack_panels_bf16(bt, kk, 1, kk, n, &packed, panels / 2, panels)
        var layoutOK = true
        for p in 0..<panels { for g in 0..<groups { for j in 0..<panel { for t in 0..<pair {
            let r = g * pair + t, col = p * panel + j
            let want: UInt16 = r < kk && col < n ? Self.bf16(b[r * n + col]) : 0
            if packed[((p * groups + g) * panel + j) * pair + t] != want { layoutOK = false }
        } } } }
        XCTAssertTrue(layoutOK, "\(name) bf16 packing \(kk)x\(n)")
        return packed
    }

    func want(_ product: [Double], bias: [Float], residual: [Float], n: Int, activation: clip_activation) -> [Double] {
        product.indices.map { i -> Double in
            let v = product[i] + Double(bias[i % n])
            switch activation {
            case CLIP_ACTIVATION_GELU: return Ref.gelu(v)
            case CLIP_ACTIVATION_QUICK_GELU: return v / (1 + exp(-1.702 * v))
            default: return v + Double(residual[i])
            }
        }
    }

    let epilogues = [(CLIP_ACTIVATION_NONE, 1), (CLIP_ACTIVATION_GELU, 0), (CLIP_ACTIVATION_QUICK_GELU, 0)]

    /// normalize_rows_bf16 is round_rows_bf16 of layer_norm_rows' / channel_affine_rows' output,
    /// bit for bit, at every level (rows split across calls, widths past the last whole vector).
    func testNormalizedRowsInBF16AreTheRoundedNormalisation() {
        for (name, k) in levels {
            for width in [1, 15, 16, 17, 100] {
                let rows = 6, rowsPerImage = 3, ld = width + (width % 2) + 2
                let x = random(rows * width, -4...4), gamma = random(width), beta = random(width)
                let scale = random(rows / rowsPerImage * width, 0.5...2)
                var normalised = [Float](repeating: 0, count: x.count)
                var want = [UInt16](repeating: 0, count: rows * ld), got = [UInt16](repeating: 0xFFFF, count: rows * ld)
                // LayerNorm, the rows in two calls.
                k.layer_norm_rows(x, &normalised, gamma, beta, width, rows, 1e-5)
                k.round_rows_bf16(normalised, width, width, &want, ld, rows)
                k.normalize_rows_bf16(x, width, &got, ld, gamma, beta, 1, 1e-5, 1, 0, 2)
                k.normalize_rows_bf16(x, width, &got, ld, gamma, beta, 1, 1e-5, 1, 2, rows)
                XCTAssertEqual(got, want, "\(name) layer norm, width \(width)")
                // GRN's channel affine, a scale per image of 3 rows.
                got = [UInt16](repeating: 0xFFFF, count: rows * ld)
                k.channel_affine_rows(x, &normalised, scale, beta, width, rowsPerImage, 0, rows)
                k.round_rows_bf16(normalised, width, width, &want, ld, rows)
                k.normalize_rows_bf16(x, width, &got, ld, scale, beta, rowsPerImage, 0, 0, 0, 4)
                k.normalize_rows_bf16(x, width, &got, ld, scale, beta, rowsPerImage, 0, 0, 4, rows)
                XCTAssertEqual(got, want, "\(name) channel affine, width \(width)")
            }
        }
    }

    func testBF16GEMMWithEveryEpilogue() {
        for (name, k) in levels {
            for (m, kk, n) in shapes {
                let a = random(m * kk), b = random(kk * n), bias = random(n), residual = random(m * n)
                let packed = packBF16(k, b, kk: kk, n: n, name: name)
                let panels = (n + panel - 1) / panel, lda = (kk + 1) / 2 * 2
                var ab = [UInt16](repeating: 0, count: m * lda)
                k.round_rows_bf16(a, kk, kk, &ab, lda, m)
                let product = (0..<(m * n)).map { i in
                    (0..<kk).map { Self.float(Self.bf16(a[(i / n) * kk + $0])) * Self.float(Self.bf16(b[$0 * n + i % n])) }.reduce(0, +)
                }
                // The widening GEMM of every level, and `vdpbf16ps` where the level has it.
                let gemms = [("widen", k.gemm_bf16)] + (k.gemm_bf16_dot.map { [("dot", $0)] } ?? [])
                if name == "avx512bf16" { XCTAssertEqual(gemms.count, 2, "the AVX512_BF16 level has vdpbf16ps") }
                for (kind, gemm) in gemms {
                    for (activation, accumulate) in epilogues {
                        var c = accumulate == 1 ? residual : [Float](repeating: .nan, count: m * n)
                        let split = min(m, 13), half = panels / 2
                        for (rows, ps) in [(0..<split, 0..<half), (0..<split, half..<panels), (split..<m, 0..<panels)] {
                            // CLIP_BF16_SCRATCH(k, gemm_row_block), poisoned: the kernel must write before it reads.
                            var scratch = [Float](repeating: .nan, count: (kk + 1) / 2 * 2 * (panel + k.gemm_row_block))
                            gemm(ab, lda, packed, kk, n, &c, n, bias, Int32(activation.rawValue), Int32(accumulate),
                                 rows.lowerBound, rows.upperBound, ps.lowerBound, ps.upperBound, &scratch)
                        }
                        check(c, want(product, bias: bias, residual: residual, n: n, activation: activation),
                              tolerance: 2e-5 * Double(max(1, kk / 64)),
                              "\(name) bf16 gemm (\(kind)) \(m)x\(kk)x\(n) activation \(activation.rawValue)")
                    }
                }
            }
        }
    }

    func testUInt8RowQuantisation() {
        for (name, k) in levels {
            for width in [1, 16, 17, 50] {
                var x = random(4 * width, -3...5)
                for j in 0..<width { x[width + j] = 0 }               // row 1: zeros
                for j in 0..<width { x[2 * width + j] = abs(x[2 * width + j]) }   // row 2: non-negative
                x[3 * width + width / 2] = .nan                          // row 3: not finite
                let ld = (width + 3) / 4 * 4 + 4
                var q = [UInt8](repeating: 0xAB, count: 4 * ld), scale = [Float](repeating: 0, count: 4), zero = [Int32](repeating: -1, count: 4)
                k.quantize_rows_u8(x, width, width, &q, ld, &scale, &zero, 4)
                XCTAssertEqual(scale[1], 1, "\(name) zero row")
                XCTAssertEqual(zero[1], 0, "\(name) zero row")
                XCTAssertEqual(zero[2], 0, "\(name) a non-negative row's zero point")
                XCTAssertTrue(scale[3].isNaN, "\(name) a NaN row's scale is NaN")
                for r in 0..<3 {
                    let row = x[(r * width)..<((r + 1) * width)]
                    let lo = min(row.min()!, 0), hi = max(row.max()!, 0)
                    if hi > lo {
                        XCTAssertEqual(Double(scale[r]), Double(hi - lo) / 255, accuracy: Double(hi - lo) / 255 * 1e-6, "\(name) scale")
                        XCTAssertEqual(Double(zero[r]), (-Double(lo) / Double(scale[r])).rounded(), accuracy: 0.5001, "\(name) zero point")
                    }
                    for j in 0..<ld {
                        let got = q[r * ld + j]
                        if j >= width { XCTAssertEqual(got, 0, "\(name) padding"); continue }
                        let exact = Double(x[r * width + j]) / Double(scale[r]) + Double(zero[r])
                        XCTAssertLessThanOrEqual(abs(Double(got) - min(max(exact, 0), 255)), 0.5001,
                                                 "\(name) q(\(x[r * width + j])) width \(width)")
                    }
                }
            }
        }
    }

    func testInt8GEMMWithEveryEpilogue() {
        for (name, k) in levels {
            for (m, kk, n) in shapes {
                let a = random(m * kk, -2...3), b = random(kk * n), bias = random(n), residual = random(m * n)
                let panels = (n + panel - 1) / panel, groups = (kk + 3) / 4, lda = groups * quad
                var packed = [Int8](repeating: 0x55, count: panels * groups * panel * quad)
                var colScale = [Float](repeating: .nan, count: panels * panel), colSum = [Int32](repeating: -1, count: panels * panel)
                k.pack_panels_i8(b, n, 0, kk, n, &packed, &colScale, &colSum, 0, panels)
                // Weights: q within half a step of w / scale, scale = max|w| / 127, sums and padding.
                var layoutOK = true, qb = [Int](repeating: 0, count: kk * n)
                for p in 0..<panels { for j in 0..<panel {
                    let col = p * panel + j
                    if col >= n { if colScale[col] != 0 || colSum[col] != 0 { layoutOK = false }; continue }
                    let peak = (0..<kk).map { abs(b[$0 * n + col]) }.max()!
                    if abs(Double(colScale[col]) - Double(peak) / 127) > Double(peak) / 127 * 1e-6 { layoutOK = false }
                    var sum = 0
                    for g in 0..<groups { for t in 0..<quad {
                        let r = g * quad + t, v = Int(packed[((p * groups + g) * panel + j) * quad + t])
                        if r >= kk { if v != 0 { layoutOK = false }; continue }
                        if abs(Double(v) - Double(b[r * n + col]) / Double(colScale[col])) > 0.5001 { layoutOK = false }
                        qb[r * n + col] = v
                        sum += v
                    } }
                    if sum != Int(colSum[col]) { layoutOK = false }
                } }
                XCTAssertTrue(layoutOK, "\(name) int8 packing \(kk)x\(n)")
                var qa = [UInt8](repeating: 0, count: m * lda), aScale = [Float](repeating: 0, count: m), aZero = [Int32](repeating: 0, count: m)
                k.quantize_rows_u8(a, kk, kk, &qa, lda, &aScale, &aZero, m)
                let product = (0..<(m * n)).map { i -> Double in
                    let r = i / n, col = i % n
                    let dot = (0..<kk).map { (Int(qa[r * lda + $0]) - Int(aZero[r])) * qb[$0 * n + col] }.reduce(0, +)
                    return Double(dot) * Double(aScale[r]) * Double(colScale[col])
                }
                for (activation, accumulate) in epilogues {
                    var c = accumulate == 1 ? residual : [Float](repeating: .nan, count: m * n)
                    let split = min(m, 13), half = panels / 2
                    for (rows, ps) in [(0..<split, 0..<half), (0..<split, half..<panels), (split..<m, 0..<panels)] {
                        k.gemm_i8(qa, lda, aScale, aZero, packed, colScale, colSum, kk, n, &c, n, bias,
                                  Int32(activation.rawValue), Int32(accumulate),
                                  rows.lowerBound, rows.upperBound, ps.lowerBound, ps.upperBound)
                    }
                    // The int32 sum is exact; only its conversion and the two scale products round.
                    check(c, want(product, bias: bias, residual: residual, n: n, activation: activation),
                          tolerance: 1e-5 * Double(max(1, kk / 64)), "\(name) int8 gemm \(m)x\(kk)x\(n) activation \(activation.rawValue)")
                }
            }
        }
    }

    /// amp_bf16's weight-gradient GEMM (C (+)= Aᵀ·B over activation rows, both rounded to bf16), the
    /// widening form of every level and `vdpbf16ps` where the level has it: against Float64 over
    /// the rounded values, on k past one CLIP_AT_BF16_KC block and odd (an unpaired last row), C rows
    /// past one CLIP_AT_BF16_MC block and not a multiple of any micro-tile, partial 32-column
    /// groups, split row and column ranges as threads take them, both `accumulate` modes, and
    /// NaN-poisoned scratch (each block must be packed before it is read).
    func testBF16WeightGradientGEMM() {
        let kc = Int(CLIP_AT_BF16_KC), mc = Int(CLIP_AT_BF16_MC)
        for (name, k) in levels {
            for (rows, p, q) in [(kc + 77, mc + 13, 75), (3, 5, 33), (2 * kc, 40, 96), (1, 1, 1)] {
                let a = random(rows * p), b = random(rows * q), start = random(p * q)
                let product = (0..<(p * q)).map { i in
                    (0..<rows).map { Self.float(Self.bf16(a[$0 * p + i / q])) * Self.float(Self.bf16(b[$0 * q + i % q])) }.reduce(0, +)
                }
                let gemms = [("widen", k.gemm_at_bf16)] + (k.gemm_at_bf16_dot.map { [("dot", $0)] } ?? [])
                if name == "avx512bf16" { XCTAssertEqual(gemms.count, 2, "the AVX512_BF16 level has vdpbf16ps") }
                for (kind, gemm) in gemms {
                    for accumulate in [0, 1] {
                        var c = accumulate == 1 ? start : [Float](repeating: .nan, count: p * q)
                        let rowSplit = min(p, 17), colSplit = q > 32 ? 32 : q
                        for (rs, cs) in [(0..<rowSplit, 0..<colSplit), (0..<rowSplit, colSplit..<q), (rowSplit..<p, 0..<q)] where !rs.isEmpty && !cs.isEmpty {
                            var scratch = [Float](repeating: .nan, count: kc * ((cs.count + panel - 1) / panel * panel + mc))
                            gemm(a, p, b, q, rows, &c, q, Int32(accumulate), rs.lowerBound, rs.upperBound, cs.lowerBound, cs.upperBound, &scratch)
                        }
                        let want = product.indices.map { product[$0] + (accumulate == 1 ? Double(start[$0]) : 0) }
                        check(c, want, tolerance: 2e-5 * Double(max(1, rows / 64)),
                              "\(name) bf16 weight-gradient gemm (\(kind)) rows \(rows) \(p)x\(q) accumulate \(accumulate)")
                    }
                }
            }
        }
    }

    /// This CPU's best level is the native one when it has AVX512_BF16 and VNNI.
    func testNativeLevelIsListedWhenTheCPUHasIt() {
        let best = clip_kernels_cpu_level()
        XCTAssertEqual(levels.last?.1.level, best)
        if best == Int32(CLIP_ISA_AVX512_BF16.rawValue) { XCTAssertEqual(levels.last?.0, "avx512bf16") }
    }
}
