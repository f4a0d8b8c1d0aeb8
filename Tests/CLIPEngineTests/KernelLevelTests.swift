import XCTest
import CLIPKernels
import CLIPEngine

/// Every kernel of every instruction-set level this CPU has (AVX512_BF16, AVX-512, AVX2, portable), called
/// directly through its table and checked against Float64 — whatever level `SWIFTCLIP_ISA`
/// selects for the rest of the suite. Shapes are awkward on purpose: rows and columns that leave
/// partial GEMM tiles at each level's tile size, channel counts past the last whole vector.
final class KernelLevelTests: KernelTestCase {
    func testLevelsAreListedAndTheActiveOneIsAmongThem() {
        XCTAssertEqual(levels.first?.0, "baseline")
        XCTAssertTrue(levels.map(\.0).contains(KernelLevel.active))
    }

    func testActivations() {
        for (name, k) in levels {
            for count in [1, 15, 16, 17, 1000 + 7] {
                let x = random(count, -20...20), bias = random(count)
                var y = [Float](repeating: .nan, count: count), yb = y, yq = y
                k.gelu(x, nil, &y, count)
                k.gelu(x, bias, &yb, count)
                k.quick_gelu(x, nil, &yq, count)
                // The kernel adds the bias in Float, so the reference takes GELU of that Float sum.
                for (got, inputs, what) in [(y, x, "gelu"), (yb, zip(x, bias).map { $0 + $1 }, "gelu+bias")] {
                    let (ratio, at) = Ref.geluViolation(got, inputs: inputs)
                    XCTAssertLessThanOrEqual(ratio, 1, "\(name) \(what) \(count): x = \(inputs[at]) gave \(got[at])")
                }
                // QuickGELU rounds 1.702·x before exp: ~1.702·|x|·6e-8 of relative error at |x| = 20.
                check(yq, x.map { Double($0) / (1 + exp(-1.702 * Double($0))) }, tolerance: 4e-6, relative: true,
                      "\(name) quickGelu \(count)")
            }
        }
    }

    func testInt8RowDots() {
        for (name, k) in levels {
            for (rows, width) in [(1, 1), (3, 17), (4, 32), (9, 512), (6, 37)] {
                let a = (0..<(rows * width)).map { _ in Int8.random(in: -127...127) }
                let scale = random(rows, 0.001...0.02), x = random(width, -1...1)
                var y = [Float](repeating: .nan, count: rows)
                k.dot_i8_rows(a, scale, x, &y, width, rows)
                let want = (0..<rows).map { r in
                    Double(scale[r]) * (0..<width).reduce(0.0) { $0 + Double(a[r * width + $1]) * Double(x[$1]) }
                }
                check(y, want, tolerance: 2e-6 * Double(width).squareRoot(), "\(name) dot_i8_rows \(rows)×\(width)")
            }
        }
    }

    func testRowNormalisations() {
        for (name, k) in levels {
            for width in [1, 5, 37, 768] {
                let rows = 3
                let x = random(rows * width, -3...3), g = random(width), b = random(width)
                var y = [Float](repeating: .nan, count: x.count), s = y, l = y
                k.layer_norm_rows(x, &y, g, b, width, rows, 1e-5)
                k.softmax_rows(x, &s, width, rows)
                k.l2_normalize_rows(x, &l, width, rows)
                var wantLN = [Double](), wantS = [Double](), wantL = [Double]()
                for r in 0..<rows {
                    let row = x[(r * width)..<((r + 1) * width)].map(Double.init)
                    let mean = row.reduce(0, +) / Double(width)
                    let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(width)
                    wantLN += row.indices.map { (row[$0] - mean) / (variance + 1e-5).squareRoot() * Double(g[$0]) + Double(b[$0]) }
                    let peak = row.max()!, e = row.map { exp($0 - peak) }, z = e.reduce(0, +)
                    wantS += e.map { $0 / z }
                    let norm = max(row.map { $0 * $0 }.reduce(0, +).squareRoot(), 1e-12)
                    wantL += row.map { $0 / norm }
                }
                check(y, wantLN, tolerance: 2e-5, "\(name) layerNorm width \(width)")
                check(s, wantS, tolerance: 1e-6, "\(name) softmax width \(width)")
                check(l, wantL, tolerance: 1e-6, "\(name) l2 width \(width)")
            }
        }
    }

    func testLayerNormBackwardRows() {
        for (name, k) in levels {
            for width in [1, 5, 37, 96] {
                let rows = 3
                let x = random(rows * width, -3...3), dy = random(rows * width), g = random(width)
                var dx = [Float](repeating: .nan, count: x.count), dg = random(width), db = random(width)
                let (dg0, db0) = (dg, db)
                k.layer_norm_backward_rows(x, dy, g, &dx, &dg, &db, width, rows, 1e-5)
                var wantDX = [Double](), wantDG = dg0.map(Double.init), wantDB = db0.map(Double.init)
                for r in 0..<rows {
                    let row = x[(r * width)..<((r + 1) * width)].map(Double.init), d = dy[(r * width)..<((r + 1) * width)].map(Double.init)
                    let mean = row.reduce(0, +) / Double(width)
                    let rstd = 1 / (row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(width) + 1e-5).squareRoot()
                    let xh = row.map { ($0 - mean) * rstd }, gw = (0..<width).map { d[$0] * Double(g[$0]) }
                    let meanG = gw.reduce(0, +) / Double(width), meanGX = zip(gw, xh).map(*).reduce(0, +) / Double(width)
                    wantDX += (0..<width).map { rstd * (gw[$0] - meanG - xh[$0] * meanGX) }
                    for c in 0..<width { wantDG[c] += d[c] * xh[c]; wantDB[c] += d[c] }
                }
                check(dx, wantDX, tolerance: 5e-5, "\(name) layerNorm backward dx width \(width)")
                check(dg, wantDG, tolerance: 2e-5, "\(name) layerNorm backward dγ width \(width)")
                check(db, wantDB, tolerance: 2e-5, "\(name) layerNorm backward dβ width \(width)")
            }
        }
    }

    func testColumnSumsAndChannelAffine() {
        for (name, k) in levels {
            let (rows, width, perImage) = (6, 37, 3)
            let x = random(rows * width), scale = random(2 * width), shift = random(width)
            for squared in [0, 1] {
                var sums = random(width)
                let start = sums
                k.accumulate_rows(x, &sums, width, rows, Int32(squared))
                let want = (0..<width).map { c in
                    Double(start[c]) + (0..<rows).map { r in let v = Double(x[r * width + c]); return squared == 1 ? v * v : v }.reduce(0, +)
                }
                check(sums, want, tolerance: 1e-5, "\(name) accumulate squared=\(squared)")
            }
            var y = [Float](repeating: .nan, count: x.count)
            k.channel_affine_rows(x, &y, scale, shift, width, perImage, 0, 4)
            k.channel_affine_rows(x, &y, scale, shift, width, perImage, 4, rows)
            let want = (0..<(rows * width)).map { i in
                Double(x[i]) * Double(scale[(i / width / perImage) * width + i % width]) + Double(shift[i % width])
            }
            check(y, want, tolerance: 1e-6, "\(name) channel affine")
        }
    }

    func testGRNWithGELUForTraining() {
        for (name, k) in levels {
            let (rows, width, perImage) = (6, 37, 3)
            let z = random(rows * width, -4...4), dy = random(rows * width), x = random(rows * width)
            let scale = random(2 * width), coef = random(2 * width)
            var h = [Float](repeating: .nan, count: z.count), squares = random(width)
            let start = squares
            k.gelu_rows_square_sums(z, &h, &squares, width, rows)
            let hd = z.map { Ref.gelu(Double($0)) }
            let (ratio, at) = Ref.geluViolation(h, inputs: z)
            XCTAssertLessThanOrEqual(ratio, 1, "\(name) gelu_rows_square_sums h: z = \(z[at]) gave \(h[at])")
            check(squares, (0..<width).map { c in Double(start[c]) + (0..<rows).map { hd[$0 * width + c] * hd[$0 * width + c] }.reduce(0, +) },
                  tolerance: 1e-5, "\(name) gelu_rows_square_sums sums")

            var dyx = random(width), dys = random(width)
            let (dyx0, dys0) = (dyx, dys)
            k.accumulate_rows_dot(dy, x, &dyx, &dys, width, rows)
            check(dyx, (0..<width).map { c in Double(dyx0[c]) + (0..<rows).map { Double(dy[$0 * width + c]) * Double(x[$0 * width + c]) }.reduce(0, +) },
                  tolerance: 1e-5, "\(name) accumulate_rows_dot dy·x")
            check(dys, (0..<width).map { c in Double(dys0[c]) + (0..<rows).map { Double(dy[$0 * width + c]) }.reduce(0, +) },
                  tolerance: 1e-5, "\(name) accumulate_rows_dot dy")

            for withGelu in [false, true] {
                var dx = [Float](repeating: .nan, count: x.count)
                // With z the kernel recomputes x = GELU(z) and must not read x: NaNs there would show.
                let xIn = withGelu ? [Float](repeating: .nan, count: x.count) : x
                z.withUnsafeBufferPointer { zb in
                    let zp = withGelu ? zb.baseAddress : nil
                    k.grn_backward_rows(dy, xIn, zp, scale, coef, &dx, width, perImage, 0, 4)
                    k.grn_backward_rows(dy, xIn, zp, scale, coef, &dx, width, perImage, 4, rows)
                }
                let want = (0..<(rows * width)).map { i -> Double in
                    let j = (i / width / perImage) * width + i % width
                    let xi = withGelu ? hd[i] : Double(x[i])
                    let d = Double(dy[i]) * Double(scale[j]) + xi * Double(coef[j])
                    let t = Double(z[i])
                    return withGelu ? d * (0.5 * erfc(-t / 2.0.squareRoot()) + t * exp(-t * t / 2) / (2 * Double.pi).squareRoot()) : d
                }
                check(dx, want, tolerance: 1e-5, "\(name) grn_backward_rows gelu=\(withGelu)")
            }

            // GELU and GRN's affine map in one pass: bit for bit the two kernels, and Float64.
            var h1 = [Float](repeating: .nan, count: z.count), y1 = h1, y2 = h1
            k.gelu_affine_rows(z, &h1, &y1, scale, coef, width, perImage, 0, 4)
            k.gelu_affine_rows(z, &h1, &y1, scale, coef, width, perImage, 4, rows)
            k.channel_affine_rows(h, &y2, scale, coef, width, perImage, 0, rows)
            XCTAssertEqual(h1, h, "\(name) gelu_affine_rows h")
            XCTAssertEqual(y1, y2, "\(name) gelu_affine_rows y")
            check(y1, (0..<(rows * width)).map { i in hd[i] * Double(scale[(i / width / perImage) * width + i % width]) + Double(coef[i % width]) },
                  tolerance: 1e-5, "\(name) gelu_affine_rows y against Float64")
        }
    }

    func testDepthwiseConvolution() {
        for (name, k) in levels {
            // 19 channels: a vector tail at every width; 21 columns: whole tiles and a partial one; 7×7 and
            // 1 column: every column a border column of the 7-wide path; width 3: the general path.
            for (n, h, w, c, kernel) in [(2, 9, 21, 19, 7), (1, 5, 4, 64, 7), (1, 7, 7, 32, 7), (2, 14, 14, 16, 7), (1, 3, 1, 16, 7),
                                         (1, 3, 2, 3, 3), (1, 4, 11, 37, 3)] {
                let padding = kernel / 2
                let x = random(n * h * w * c), weight = random(kernel * kernel * c), bias = random(c)
                var y = [Float](repeating: .nan, count: n * h * w * c)
                k.depthwise_conv_rows(x, weight, bias, &y, h, w, c, kernel, kernel, padding, h, w, 0, 1)
                k.depthwise_conv_rows(x, weight, bias, &y, h, w, c, kernel, kernel, padding, h, w, 1, n * h)
                // Reference: NCHW input, OIHW weight [c, 1, k, k].
                let xNCHW = Ref.nhwcToNchw(x.map(Double.init), n: n, h: h, w: w, c: c)
                var wOIHW = [Double](repeating: 0, count: weight.count)
                for ky in 0..<kernel { for kx in 0..<kernel { for ch in 0..<c {
                    wOIHW[(ch * kernel + ky) * kernel + kx] = Double(weight[(ky * kernel + kx) * c + ch])
                } } }
                let ref = Ref.conv2d(xNCHW, n: n, cin: c, h: h, w: w, wOIHW, cout: c, kh: kernel, kw: kernel,
                                     bias: bias.map(Double.init), stride: 1, padding: padding, groups: c)
                check(y, Ref.nchwToNhwc(ref.values, n: n, c: c, h: h, w: w), tolerance: 1e-5,
                            "\(name) depthwise \(n)x\(h)x\(w)x\(c) k\(kernel)")
            }
        }
    }

    /// The depthwise weight gradient (sliding tap accumulators for widths 3 and 7, the generic loop
    /// for 5) against its defining sums, rows split at an odd place as threads take them.
    func testDepthwiseWeightGradient() {
        for (name, k) in levels {
            for (n, h, w, c, kernel) in [(2, 9, 21, 19, 7), (1, 5, 4, 64, 7), (1, 3, 2, 3, 3), (1, 4, 11, 37, 3), (1, 6, 9, 20, 5)] {
                let padding = kernel / 2
                let x = random(n * h * w * c), dy = random(n * h * w * c)
                var grads = random(kernel * kernel * c + c)
                let start = grads
                grads.withUnsafeMutableBufferPointer { g in
                    let dw = g.baseAddress!, db = dw + kernel * kernel * c
                    k.depthwise_weight_grad_rows(x, dy, dw, db, h, w, c, kernel, kernel, padding, h, w, 0, 3)
                    k.depthwise_weight_grad_rows(x, dy, dw, db, h, w, c, kernel, kernel, padding, h, w, 3, n * h)
                }
                var want = start.map(Double.init)
                for im in 0..<n { for oy in 0..<h { for ox in 0..<w { for ch in 0..<c {
                    let g = Double(dy[((im * h + oy) * w + ox) * c + ch])
                    want[kernel * kernel * c + ch] += g
                    for ky in 0..<kernel { for kx in 0..<kernel {
                        let (iy, ix) = (oy + ky - padding, ox + kx - padding)
                        if iy >= 0 && iy < h && ix >= 0 && ix < w {
                            want[(ky * kernel + kx) * c + ch] += g * Double(x[((im * h + iy) * w + ix) * c + ch])
                        }
                    } }
                } } } }
                // Sums of up to 378 products of magnitude ~25: float rounding reaches ~3e-5.
                check(grads, want, tolerance: 1e-4, "\(name) depthwise weight gradient \(n)x\(h)x\(w)x\(c) k\(kernel)")
            }
        }
    }

    /// gemm_packed_normalized: bit for bit the level's normalisation kernel followed by gemm_packed,
    /// with rows split at places that cut both the 128-row blocks and the images.
    func testPackedGEMMWithNormalisedRowBlocks() {
        let panel = Int(CLIP_PANEL_WIDTH)
        for (name, k) in levels {
            for (m, kk, n, perImage) in [(300, 37, 75, 49), (7, 16, 33, 7)] {
                let a = random(m * kk, -3...3), b = random(kk * n), bias = random(n)
                let gamma = random(kk), beta = random(kk), scale = random((m / perImage + 1) * kk)
                let panels = (n + panel - 1) / panel
                var packed = [Float](repeating: 0, count: panels * kk * panel)
                for p in 0..<panels { for r in 0..<kk { for j in 0..<panel where p * panel + j < n {
                    packed[(p * kk + r) * panel + j] = b[r * n + p * panel + j]
                } } }
                var scratch = [Float](repeating: .nan, count: Int(k.gemm_row_block) * kk)
                for layerNorm in [Int32(1), 0] {
                    var normed = [Float](repeating: .nan, count: m * kk)
                    if layerNorm == 1 {
                        k.layer_norm_rows(a, &normed, gamma, beta, kk, m, 1e-6)
                    } else {
                        k.channel_affine_rows(a, &normed, scale, beta, kk, perImage, 0, m)
                    }
                    var want = [Float](repeating: .nan, count: m * n), got = want
                    k.gemm_packed(normed, kk, packed, kk, n, &want, n, bias, Int32(CLIP_ACTIVATION_GELU.rawValue), 0, 0, m, 0, panels)
                    let split = min(m, 131), half = panels / 2
                    for (rows, ps) in [(0..<split, 0..<half), (0..<split, half..<panels), (split..<m, 0..<panels)] {
                        k.gemm_packed_normalized(a, packed, kk, n, &got, n, bias, Int32(CLIP_ACTIVATION_GELU.rawValue), 0,
                                                 rows.lowerBound, rows.upperBound, ps.lowerBound, ps.upperBound,
                                                 layerNorm == 1 ? gamma : scale, beta, layerNorm == 1 ? 1 : perImage, 1e-6,
                                                 layerNorm, &scratch)
                    }
                    XCTAssertEqual(got, want, "\(name) gemm_packed_normalized \(m)x\(kk)x\(n) layer_norm=\(layerNorm)")
                }
            }
        }
    }

    func testPackedGEMMWithEveryEpilogue() {
        let panel = Int(CLIP_PANEL_WIDTH)
        for (name, k) in levels {
            for (m, kk, n) in [(37, 29, 75), (1, 3, 1), (8, 64, 32), (130, 17, 40)] {
                let a = random(m * kk), b = random(kk * n), bias = random(n), residual = random(m * n)
                let panels = (n + panel - 1) / panel
                var packed = [Float](repeating: 0, count: panels * kk * panel)
                for p in 0..<panels { for r in 0..<kk { for j in 0..<panel where p * panel + j < n {
                    packed[(p * kk + r) * panel + j] = b[r * n + p * panel + j]
                } } }
                let product = (0..<(m * n)).map { i in (0..<kk).map { Double(a[(i / n) * kk + $0]) * Double(b[$0 * n + i % n]) }.reduce(0, +) }
                for (activation, accumulate) in [(CLIP_ACTIVATION_NONE, 1), (CLIP_ACTIVATION_GELU, 0), (CLIP_ACTIVATION_QUICK_GELU, 0)] {
                    var c = accumulate == 1 ? residual : [Float](repeating: .nan, count: m * n)
                    // Rows split at an odd place and panels in two, as threads take them.
                    let split = min(m, 13), half = panels / 2
                    for (rows, ps) in [(0..<split, 0..<half), (0..<split, half..<panels), (split..<m, 0..<panels)] {
                        k.gemm_packed(a, kk, packed, kk, n, &c, n, bias, Int32(activation.rawValue), Int32(accumulate),
                                      rows.lowerBound, rows.upperBound, ps.lowerBound, ps.upperBound)
                    }
                    let want = (0..<(m * n)).map { i -> Double in
                        let v = product[i] + Double(bias[i % n])
                        switch activation {
                        case CLIP_ACTIVATION_GELU: return Ref.gelu(v)
                        case CLIP_ACTIVATION_QUICK_GELU: return v / (1 + exp(-1.702 * v))
                        default: return v + Double(residual[i])
                        }
                    }
                    check(c, want, tolerance: 2e-5, "\(name) gemm \(m)x\(kk)x\(n) activation \(activation.rawValue)")
                }
            }
        }
    }

    /// Pillow's 8-bit horizontal pass for rows of 3- and 4-byte pixels against the scalar Int32
    /// sums, byte for byte: negative weights (bicubic lobes), sums that clip at 0 and 255, outputs
    /// of 1 to 40 taps, rows left over after the 4-row blocks, and windows that end at the last byte
    /// of the buffer.
    func testPixelResamplingRows() {
        for (name, k) in levels {
            for ch in [3, 4] {
                for (width, outWidth, taps, rows) in [(37, 5, 31, 7), (2400, 24, 31, 9), (64, 64, 1, 4), (90, 11, 40, 1), (300, 40, 9, 6)] {
                    let source = (0..<(width * rows * ch)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                    var start = [Int](), count = [Int](), weights = [Int32](repeating: 0, count: outWidth * taps)
                    for i in 0..<outWidth {
                        let n = i == outWidth - 1 ? taps : Int.random(in: 1...taps, using: &rng)
                        let s = i == outWidth - 1 ? width - n : Int.random(in: 0...(width - n), using: &rng)
                        start.append(s)
                        count.append(n)
                        // Bounded so that no sum overflows Int32 (Pillow's weights sum to 1 << 22).
                        let limit = Int32((1 << 23) / taps)
                        for x in 0..<n { weights[i * taps + x] = Int32.random(in: -(limit / 2)...limit, using: &rng) }
                    }
                    var want = [UInt8](repeating: 0, count: rows * outWidth * ch)
                    for r in 0..<rows {
                        for i in 0..<outWidth {
                            for c in 0..<ch {
                                var sum: Int32 = 1 << 21
                                for x in 0..<count[i] {
                                    sum &+= Int32(source[(r * width + start[i] + x) * ch + c]) &* weights[i * taps + x]
                                }
                                want[(r * outWidth + i) * ch + c] = UInt8(max(0, min(255, sum >> 22)))
                            }
                        }
                    }
                    var grouped = [Int32](repeating: -1, count: outWidth * taps * 16)
                    let perOutput = k.resample_weights_u8(weights, taps, count, outWidth, Int32(ch), &grouped)
                    var got = [UInt8](repeating: 7, count: rows * outWidth * ch)
                    source.withUnsafeBufferPointer { src in
                        k.resample_rows_u8(src.baseAddress!, width * ch, src.baseAddress! + src.count, rows, start, count,
                                           grouped, perOutput, outWidth, Int32(ch), &got, outWidth * ch)
                    }
                    XCTAssertEqual(got, want, "\(name) resample_rows_u8 \(ch) channels, \(width)→\(outWidth), \(taps) taps, \(rows) rows")
                }
            }
        }
    }
}
