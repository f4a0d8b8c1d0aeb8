import CLIPEngine
import Foundation
import XCTest

// Every backward kernel against central finite differences of a naive Float64 forward, on
// awkward shapes (odd channel counts, batch 1 and 3). The loss is Σ r·f(inputs) with a random
// cotangent r, so dy = r for the kernel. Inputs are random Float32 values; the Float64 forward
// runs on exactly those values.

/// Float64 copy of a tensor's values.
private func d(_ t: Tensor) -> [Double] { t.scalars.map(Double.init) }

/// ∂(Σ r·f(x))/∂x by central differences in Float64.
private func numeric(_ x: [Double], _ r: [Double], h: Double = 1e-5, _ f: ([Double]) -> [Double]) -> [Double] {
    var x = x
    var g = [Double](repeating: 0, count: x.count)
    for i in x.indices {
        let keep = x[i]
        x[i] = keep + h
        let up = zip(f(x), r).reduce(0) { $0 + $1.0 * $1.1 }
        x[i] = keep - h
        let down = zip(f(x), r).reduce(0) { $0 + $1.0 * $1.1 }
        x[i] = keep
        g[i] = (up - down) / (2 * h)
    }
    return g
}

/// ‖a − b‖/‖b‖ ≤ tol (the kernel runs in Float32).
private func assertClose(_ a: [Float], _ b: [Double], _ what: String, tol: Double = 1e-4,
                         file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, what, file: file, line: line)
    var diff = 0.0, norm = 0.0
    for (x, y) in zip(a, b) { diff += (Double(x) - y) * (Double(x) - y); norm += y * y }
    XCTAssertGreaterThan(norm, 0, "\(what): reference gradient is zero (test cannot fail)", file: file, line: line)
    let e = (diff / max(norm, 1e-300)).squareRoot()
    XCTAssertLessThanOrEqual(e, tol, "\(what): relative error \(e)", file: file, line: line)
}

/// A parameter gradient buffer filled with `seed` values, so that the test sees accumulation (+=).
private struct GradBuffer {
    let start: [Float]
    var values: [Float]
    init(count: Int, rng: inout SeededGenerator) {
        start = (0..<count).map { _ in Float.random(in: -1...1, using: &rng) }
        values = start
    }
    /// What the kernel added.
    var added: [Float] { zip(values, start).map { $0 - $1 } }
}

private func withGrad<R>(_ g: inout GradBuffer?, _ body: (UnsafeMutablePointer<Float>?) throws -> R) rethrows -> R {
    if g == nil { return try body(nil) }
    return try g!.values.withUnsafeMutableBufferPointer { try body($0.baseAddress!) }
}

private func rand(_ shape: [Int], _ rng: inout SeededGenerator, _ range: ClosedRange<Float> = -1...1) -> Tensor {
    Tensor.random(shape: shape, in: range, using: &rng)
}

// MARK: Float64 forwards

private enum F64 {
    static func linear(_ x: [Double], _ w: [Double], _ b: [Double], m: Int, inF: Int, outF: Int) -> [Double] {
        var y = [Double](repeating: 0, count: m * outF)
        for r in 0..<m { for o in 0..<outF { var s = b.isEmpty ? 0 : b[o]; for i in 0..<inF { s += x[r * inF + i] * w[o * inF + i] }; y[r * outF + o] = s } }
        return y
    }

    static func layerNorm(_ x: [Double], _ g: [Double], _ b: [Double], width: Int, eps: Double) -> [Double] {
        var y = x
        for r in 0..<(x.count / width) {
            let row = Array(x[r * width..<(r + 1) * width])
            let mean = row.reduce(0, +) / Double(width)
            let v = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(width)
            for i in 0..<width { y[r * width + i] = (row[i] - mean) / (v + eps).squareRoot() * g[i] + b[i] }
        }
        return y
    }

    /// NHWC GRN.
    static func grn(_ x: [Double], _ g: [Double], _ b: [Double], n: Int, hw: Int, c: Int, eps: Double) -> [Double] {
        var y = x
        for im in 0..<n {
            var gx = [Double](repeating: 0, count: c)
            for p in 0..<hw { for ch in 0..<c { gx[ch] += x[(im * hw + p) * c + ch] * x[(im * hw + p) * c + ch] } }
            gx = gx.map { $0.squareRoot() }
            let mean = gx.reduce(0, +) / Double(c)
            for p in 0..<hw {
                for ch in 0..<c {
                    let i = (im * hw + p) * c + ch
                    y[i] = x[i] + b[ch] + g[ch] * x[i] * gx[ch] / (mean + eps)
                }
            }
        }
        return y
    }

    /// NHWC depthwise conv with OIHW [C, 1, k, k] weight, stride 1, zero padding p.
    static func depthwise(_ x: [Double], _ w: [Double], _ b: [Double], n: Int, h: Int, wd: Int, c: Int, k: Int, p: Int) -> [Double] {
        let (oh, ow) = (h + 2 * p - k + 1, wd + 2 * p - k + 1)
        var y = [Double](repeating: 0, count: n * oh * ow * c)
        for im in 0..<n { for oy in 0..<oh { for ox in 0..<ow { for ch in 0..<c {
            var s = b[ch]
            for ky in 0..<k { for kx in 0..<k {
                let (iy, ix) = (oy + ky - p, ox + kx - p)
                if iy >= 0 && iy < h && ix >= 0 && ix < wd { s += x[((im * h + iy) * wd + ix) * c + ch] * w[(ch * k + ky) * k + kx] }
            } }
            y[((im * oh + oy) * ow + ox) * c + ch] = s
        } } } }
        return y
    }

    /// NHWC conv with kernel == stride == k, OIHW weight.
    static func patchConv(_ x: [Double], _ w: [Double], _ b: [Double], n: Int, h: Int, wd: Int, cin: Int, cout: Int, k: Int) -> [Double] {
        let (oh, ow) = (h / k, wd / k)
        var y = [Double](repeating: 0, count: n * oh * ow * cout)
        for im in 0..<n { for oy in 0..<oh { for ox in 0..<ow { for co in 0..<cout {
            var s = b.isEmpty ? 0 : b[co]
            for ci in 0..<cin { for ky in 0..<k { for kx in 0..<k {
                s += x[((im * h + oy * k + ky) * wd + ox * k + kx) * cin + ci] * w[((co * cin + ci) * k + ky) * k + kx]
            } } }
            y[((im * oh + oy) * ow + ox) * cout + co] = s
        } } } }
        return y
    }

    static func attention(_ qkv: [Double], b: Int, t: Int, d: Int, heads: Int, causal: Bool) -> [Double] {
        let hd = d / heads
        var out = [Double](repeating: 0, count: b * t * d)
        for bi in 0..<b { for h in 0..<heads { for i in 0..<t {
            let keys = causal ? i + 1 : t
            var s = [Double](repeating: 0, count: keys)
            for j in 0..<keys {
                var dot = 0.0
                for e in 0..<hd { dot += qkv[(bi * t + i) * 3 * d + h * hd + e] * qkv[(bi * t + j) * 3 * d + d + h * hd + e] }
                s[j] = dot / Double(hd).squareRoot()
            }
            let m = s.max()!
            let z = s.reduce(0) { $0 + exp($1 - m) }
            for j in 0..<keys {
                let pj = exp(s[j] - m) / z
                for e in 0..<hd { out[(bi * t + i) * d + h * hd + e] += pj * qkv[(bi * t + j) * 3 * d + 2 * d + h * hd + e] }
            }
        } } }
        return out
    }
}

final class BackwardTests: XCTestCase {
    func testLinearBackward() throws {
        var rng = SeededGenerator(seed: 101)
        for (lead, inF, outF) in [([3, 5], 7, 9), ([1], 13, 3)] {
            let x = rand(lead + [inF], &rng), w = rand([outF, inF], &rng), b = rand([outF], &rng), r = rand(lead + [outF], &rng)
            let m = lead.reduce(1, *)
            var gw: GradBuffer? = GradBuffer(count: outF * inF, rng: &rng), gb: GradBuffer? = GradBuffer(count: outF, rng: &rng)
            let dx = try withGrad(&gw) { pw in try withGrad(&gb) { pb in
                try Ops.linearBackward(r, input: x, weight: w, weightGrad: pw, biasGrad: pb) } }
            let (xd, wd, bd, rd) = (d(x), d(w), d(b), d(r))
            assertClose(try XCTUnwrap(dx).scalars, numeric(xd, rd) { F64.linear($0, wd, bd, m: m, inF: inF, outF: outF) }, "linear dx \(lead)")
            assertClose(gw!.added, numeric(wd, rd) { F64.linear(xd, $0, bd, m: m, inF: inF, outF: outF) }, "linear dW \(lead)")
            assertClose(gb!.added, numeric(bd, rd) { F64.linear(xd, wd, $0, m: m, inF: inF, outF: outF) }, "linear db \(lead)")
        }
    }

    /// The weight gradients on shapes that reach every path of the blocked kernel (`gemm_at`): k
    /// (activation rows) past one 256-row block with a tail, more output rows than one 256-row block
    /// and not a multiple of the micro-tile, whole and partial 32-column groups, both thread splits
    /// (by rows of dW, and by columns when dW has few rows); against a Float64 dyᵀ·x, accumulated
    /// onto the buffer's previous values.
    func testWeightGradientOnLargeAwkwardShapes() throws {
        var rng = SeededGenerator(seed: 104)
        for (m, inF, outF) in [(600, 70, 300), (5000, 200, 12), (257, 33, 9)] {
            let x = rand([m, inF], &rng), w = rand([outF, inF], &rng), dy = rand([m, outF], &rng)
            let (xd, dyd) = (d(x), d(dy))
            var want = [Double](repeating: 0, count: outF * inF)
            for r in 0..<m { for o in 0..<outF { let g = dyd[r * outF + o]; for i in 0..<inF { want[o * inF + i] += g * xd[r * inF + i] } } }
            var gw: GradBuffer? = GradBuffer(count: outF * inF, rng: &rng)
            _ = try withGrad(&gw) { try Ops.linearBackward(dy, input: x, weight: w, weightGrad: $0, biasGrad: nil, inputGrad: false) }
            assertClose(gw!.added, want, "linear dW [\(m), \(inF)] → \(outF)", tol: 1e-5)
            // matmul's dw [in, out] = xᵀ·dy: the same sums transposed.
            var gm: GradBuffer? = GradBuffer(count: inF * outF, rng: &rng)
            _ = try withGrad(&gm) { try Ops.matmulBackward(dy, input: x, weight: Tensor(zeros: [inF, outF]), weightGrad: $0, inputGrad: false) }
            let wantT = (0..<(inF * outF)).map { want[($0 % outF) * inF + $0 / outF] }
            assertClose(gm!.added, wantT, "matmul dw [\(m), \(inF)] → \(outF)", tol: 1e-5)
        }
    }

    /// amp_bf16's linear backward: dx = dy·W and dW += dyᵀ·x with both operands of each product
    /// rounded to bf16 and summed in fp32 (against Float64 over the rounded values), through the
    /// engine's thread split; the bias gradient stays an fp32 sum.
    func testLinearBackwardInBF16() throws {
        var rng = SeededGenerator(seed: 105)
        let round = { (v: [Float]) in v.map { Double(Float(bitPattern: UInt32(ReducedPrecisionKernelTests.bf16($0)) << 16)) } }
        for (m, inF, outF) in [(1100, 70, 300), (37, 9, 5)] {
            let x = rand([m, inF], &rng), w = rand([outF, inF], &rng), dy = rand([m, outF], &rng)
            let (xr, wr, dyr) = (round(x.scalars), round(w.scalars), round(dy.scalars))
            var wantW = [Double](repeating: 0, count: outF * inF), wantX = [Double](repeating: 0, count: m * inF)
            for r in 0..<m { for o in 0..<outF { let g = dyr[r * outF + o]; for i in 0..<inF {
                wantW[o * inF + i] += g * xr[r * inF + i]
                wantX[r * inF + i] += g * wr[o * inF + i]
            } } }
            var gw: GradBuffer? = GradBuffer(count: outF * inF, rng: &rng), gb: GradBuffer? = GradBuffer(count: outF, rng: &rng)
            let dx = try withGrad(&gw) { pw in try withGrad(&gb) { pb in
                try Ops.linearBackward(dy, input: x, weight: w, weightGrad: pw, biasGrad: pb, precision: .bf16) } }
            assertClose(gw!.added, wantW, "bf16 linear dW [\(m), \(inF)] → \(outF)", tol: 1e-5)
            assertClose(try XCTUnwrap(dx).scalars, wantX, "bf16 linear dx [\(m), \(inF)] → \(outF)", tol: 1e-5)
            let dyd = d(dy)
            assertClose(gb!.added, (0..<outF).map { o in (0..<m).map { dyd[$0 * outF + o] }.reduce(0, +) }, "bf16 linear db", tol: 1e-5)
        }
        XCTAssertThrowsError(try Ops.linearBackward(Tensor(zeros: [2, 3]), input: Tensor(zeros: [2, 4]), weight: Tensor(zeros: [3, 4]),
                                                    weightGrad: nil, biasGrad: nil, precision: .int8))
    }

    func testMatmulBackward() throws {
        var rng = SeededGenerator(seed: 102)
        let x = rand([3, 11], &rng), w = rand([11, 5], &rng), r = rand([3, 5], &rng)
        var gw: GradBuffer? = GradBuffer(count: 55, rng: &rng)
        let dx = try withGrad(&gw) { try Ops.matmulBackward(r, input: x, weight: w, weightGrad: $0) }
        // x·w = linear with weight wᵀ.
        func f(_ x: [Double], _ w: [Double]) -> [Double] {
            var y = [Double](repeating: 0, count: 15)
            for i in 0..<3 { for o in 0..<5 { for k in 0..<11 { y[i * 5 + o] += x[i * 11 + k] * w[k * 5 + o] } } }
            return y
        }
        let (xd, wd, rd) = (d(x), d(w), d(r))
        assertClose(try XCTUnwrap(dx).scalars, numeric(xd, rd) { f($0, wd) }, "matmul dx")
        assertClose(gw!.added, numeric(wd, rd) { f(xd, $0) }, "matmul dw")
    }

    func testActivationBackward() throws {
        var rng = SeededGenerator(seed: 103)
        let z = rand([3, 37], &rng, -4...4), r = rand([3, 37], &rng)
        let gelu: (Double) -> Double = { 0.5 * $0 * erfc(-$0 / 2.0.squareRoot()) }
        let quick: (Double) -> Double = { $0 / (1 + exp(-1.702 * $0)) }
        for (act, f) in [(Activation.gelu, gelu), (.quickGelu, quick)] {
            let dz = try Ops.activationBackward(r, preActivation: z, act)
            assertClose(dz.scalars, numeric(d(z), d(r)) { $0.map(f) }, "\(act) backward", tol: 2e-6)
        }
    }

    func testLayerNormBackward() throws {
        var rng = SeededGenerator(seed: 104)
        for (shape, eps) in [([3, 4, 5, 13], Float(1e-6)), ([1, 7, 30], 1e-5)] {
            let c = shape.last!
            let x = rand(shape, &rng, -2...3), g = rand([c], &rng, 0.5...1.5), b = rand([c], &rng), r = rand(shape, &rng)
            var gg: GradBuffer? = GradBuffer(count: c, rng: &rng), gb: GradBuffer? = GradBuffer(count: c, rng: &rng)
            let dx = try withGrad(&gg) { pg in try withGrad(&gb) { pb in
                try Ops.layerNormBackward(r, input: x, weight: g, eps: eps, weightGrad: pg, biasGrad: pb) } }
            let (xd, gd, bd, rd, e) = (d(x), d(g), d(b), d(r), Double(eps))
            assertClose(dx.scalars, numeric(xd, rd) { F64.layerNorm($0, gd, bd, width: c, eps: e) }, "layerNorm dx \(shape)")
            assertClose(gg!.added, numeric(gd, rd) { F64.layerNorm(xd, $0, bd, width: c, eps: e) }, "layerNorm dγ \(shape)")
            assertClose(gb!.added, numeric(bd, rd) { F64.layerNorm(xd, gd, $0, width: c, eps: e) }, "layerNorm dβ \(shape)")
        }
    }

    func testGlobalResponseNormBackward() throws {
        var rng = SeededGenerator(seed: 105)
        for shape in [[3, 3, 5, 11], [1, 2, 2, 7]] {
            let (n, hw, c) = (shape[0], shape[1] * shape[2], shape[3])
            let x = rand(shape, &rng), g = rand([c], &rng), b = rand([c], &rng), r = rand(shape, &rng)
            var gg: GradBuffer? = GradBuffer(count: c, rng: &rng), gb: GradBuffer? = GradBuffer(count: c, rng: &rng)
            let dx = try withGrad(&gg) { pg in try withGrad(&gb) { pb in
                try Ops.globalResponseNormBackward(r, input: x, weight: g, eps: 1e-6, weightGrad: pg, biasGrad: pb) } }
            let (xd, gd, bd, rd) = (d(x), d(g), d(b), d(r))
            assertClose(dx.scalars, numeric(xd, rd) { F64.grn($0, gd, bd, n: n, hw: hw, c: c, eps: 1e-6) }, "GRN dx \(shape)")
            assertClose(gg!.added, numeric(gd, rd) { F64.grn(xd, $0, bd, n: n, hw: hw, c: c, eps: 1e-6) }, "GRN dγ \(shape)")
            assertClose(gb!.added, numeric(bd, rd) { F64.grn(xd, gd, $0, n: n, hw: hw, c: c, eps: 1e-6) }, "GRN dβ \(shape)")
        }
    }

    /// ConvNeXt-V2's GELU → GRN: the fused forward (GELU with GRN's statistics in the same pass)
    /// against Float64, and the fused backward (GRN's and GELU's in one pass, the statistics passed
    /// in) by finite differences of grn(gelu(z)) — dz, dγ, dβ.
    func testGeluThenGlobalResponseNormFused() throws {
        var rng = SeededGenerator(seed: 107)
        for shape in [[3, 3, 5, 11], [1, 2, 2, 7], [2, 9, 9, 37]] {
            let (n, hw, c) = (shape[0], shape[1] * shape[2], shape[3])
            let z = rand(shape, &rng, -3...3), g = rand([c], &rng), b = rand([c], &rng), r = rand(shape, &rng)
            let (h, squares) = try Ops.geluWithSquareSums(z)
            let (zd, gd, bd, rd) = (d(z), d(g), d(b), d(r))
            let hd = zd.map(Ref.gelu)
            assertClose(h.scalars, hd, "GELU \(shape)", tol: 1e-6)
            let wantSquares = (0..<(n * c)).map { i in
                (0..<hw).map { p in hd[((i / c) * hw + p) * c + i % c] }.map { $0 * $0 }.reduce(0, +)
            }
            XCTAssertLessThanOrEqual(zip(squares, wantSquares).map { abs($0 - $1) / max($1, 1e-30) }.max()!, 1e-5, "square sums \(shape)")
            let y = try Ops.globalResponseNorm(h, weight: g, bias: b, squareSums: squares)
            assertClose(y.scalars, F64.grn(hd, gd, bd, n: n, hw: hw, c: c, eps: 1e-6), "GRN from given square sums \(shape)", tol: 1e-6)

            var gg: GradBuffer? = GradBuffer(count: c, rng: &rng), gb: GradBuffer? = GradBuffer(count: c, rng: &rng)
            let dz = try withGrad(&gg) { pg in try withGrad(&gb) { pb in
                try Ops.globalResponseNormBackward(r, input: h, weight: g, eps: 1e-6, squareSums: squares, geluInput: z,
                                                   weightGrad: pg, biasGrad: pb) } }
            let grnOfGelu = { (z: [Double], g: [Double], b: [Double]) in F64.grn(z.map(Ref.gelu), g, b, n: n, hw: hw, c: c, eps: 1e-6) }
            assertClose(dz.scalars, numeric(zd, rd) { grnOfGelu($0, gd, bd) }, "GELU+GRN dz \(shape)")
            assertClose(gg!.added, numeric(gd, rd) { grnOfGelu(zd, $0, bd) }, "GELU+GRN dγ \(shape)")
            assertClose(gb!.added, numeric(bd, rd) { grnOfGelu(zd, gd, $0) }, "GELU+GRN dβ \(shape)")
        }
    }

    func testDepthwiseConvBackward() throws {
        var rng = SeededGenerator(seed: 106)
        // 7×7 with padding 3 on maps larger and smaller than the kernel; odd channel counts.
        for (shape, k) in [([1, 9, 8, 19], 7), ([3, 4, 5, 3], 7), ([3, 6, 6, 5], 3)] {
            let (n, h, w, c) = (shape[0], shape[1], shape[2], shape[3])
            let p = k / 2
            let x = rand(shape, &rng), wOIHW = rand([c, 1, k, k], &rng), b = rand([c], &rng), r = rand(shape, &rng)
            var gw: GradBuffer? = GradBuffer(count: c * k * k, rng: &rng), gb: GradBuffer? = GradBuffer(count: c, rng: &rng)
            let wEngine = try Ops.depthwiseWeight(fromOIHW: wOIHW)
            let dx = try withGrad(&gw) { pw in try withGrad(&gb) { pb in
                try Ops.depthwiseConv2dBackward(r, input: x, weight: wEngine, padding: p, weightGrad: pw, biasGrad: pb) } }
            let (xd, wd, bd, rd) = (d(x), d(wOIHW), d(b), d(r))
            let f = { (x: [Double], wt: [Double], b: [Double]) in F64.depthwise(x, wt, b, n: n, h: h, wd: w, c: c, k: k, p: p) }
            assertClose(try XCTUnwrap(dx).scalars, numeric(xd, rd) { f($0, wd, bd) }, "depthwise dx \(shape)")
            assertClose(gw!.added, numeric(wd, rd) { f(xd, $0, bd) }, "depthwise dW \(shape)")
            assertClose(gb!.added, numeric(bd, rd) { f(xd, wd, $0) }, "depthwise db \(shape)")
        }
    }

    /// The depthwise weight gradient (sliding-window kernel for widths 3 and 7, the generic loop
    /// otherwise) against its defining sums in Float64, on maps wider than the kernel, narrower than
    /// it, and with channel counts that leave a partial vector at every ISA level.
    func testDepthwiseWeightGradientAgainstFloat64Sums() throws {
        var rng = SeededGenerator(seed: 2_612_061)
        for (shape, k) in [([2, 14, 13, 40], 7), ([1, 5, 17, 33], 3), ([2, 3, 2, 16], 7), ([1, 6, 6, 21], 5), ([1, 9, 30, 96], 7)] {
            let (n, h, w, c) = (shape[0], shape[1], shape[2], shape[3])
            let p = k / 2
            let x = rand(shape, &rng), wOIHW = rand([c, 1, k, k], &rng), dy = rand(shape, &rng)
            var gw: GradBuffer? = GradBuffer(count: c * k * k, rng: &rng), gb: GradBuffer? = GradBuffer(count: c, rng: &rng)
            _ = try withGrad(&gw) { pw in try withGrad(&gb) { pb in
                try Ops.depthwiseConv2dBackward(dy, input: x, weight: Ops.depthwiseWeight(fromOIHW: wOIHW), padding: p,
                                                weightGrad: pw, biasGrad: pb, inputGrad: false) } }
            let (xd, gd) = (d(x), d(dy))
            var wantW = [Double](repeating: 0, count: c * k * k), wantB = [Double](repeating: 0, count: c)
            for im in 0..<n { for oy in 0..<h { for ox in 0..<w { for ch in 0..<c {
                let g = gd[((im * h + oy) * w + ox) * c + ch]
                wantB[ch] += g
                for ky in 0..<k { for kx in 0..<k {
                    let (iy, ix) = (oy + ky - p, ox + kx - p)
                    if iy >= 0 && iy < h && ix >= 0 && ix < w { wantW[(ch * k + ky) * k + kx] += g * xd[((im * h + iy) * w + ix) * c + ch] }
                } }
            } } } }
            assertClose(gw!.added, wantW, "depthwise dW \(shape) k \(k)", tol: 1e-5)
            assertClose(gb!.added, wantB, "depthwise db \(shape) k \(k)", tol: 1e-5)
        }
    }

    /// Training's backward recomputes GELU and GRN in one pass from the forward's statistics: bit for
    /// bit the two-pass result, and GRN(GELU(z)) in Float64.
    func testGeluThenGlobalResponseNormInOnePass() throws {
        var rng = SeededGenerator(seed: 2_612_062)
        for shape in [[2, 3, 5, 37], [1, 4, 4, 64], [3, 1, 2, 5]] {
            let (n, hw, c) = (shape[0], shape[1] * shape[2], shape[3])
            let z = rand(shape, &rng, -4...4), g = rand([c], &rng), b = rand([c], &rng)
            let (h, squares) = try Ops.geluWithSquareSums(z)
            let y = try Ops.globalResponseNorm(h, weight: g, bias: b, squareSums: squares)
            let (h1, y1) = try Ops.geluThenGlobalResponseNorm(z, weight: g, bias: b, squareSums: squares)
            XCTAssertEqual(h1.scalars, h.scalars, "GELU \(shape)")
            XCTAssertEqual(y1.scalars, y.scalars, "GRN \(shape)")
            assertClose(y1.scalars, F64.grn(d(z).map(Ref.gelu), d(g), d(b), n: n, hw: hw, c: c, eps: 1e-6), "GRN(GELU) \(shape)", tol: 1e-6)
        }
        XCTAssertThrowsError(try Ops.geluThenGlobalResponseNorm(Tensor(repeating: 1, shape: [1, 2, 2, 3]), weight: Tensor(repeating: 1, shape: [3]),
                                                                bias: Tensor(repeating: 0, shape: [3]), squareSums: [1, 2]))
    }

    func testPatchConvBackward() throws {
        var rng = SeededGenerator(seed: 107)
        // stem (k 4, Cin 3), downsample (k 2, odd Cin/Cout, H and W not multiples of k: dropped pixels get 0).
        for (shape, cout, k) in [([3, 8, 12, 3], 5, 4), ([1, 5, 7, 9], 11, 2)] {
            let (n, h, w, cin) = (shape[0], shape[1], shape[2], shape[3])
            let x = rand(shape, &rng), wt = rand([cout, cin, k, k], &rng), b = rand([cout], &rng)
            let r = rand([n, h / k, w / k, cout], &rng)
            var gw: GradBuffer? = GradBuffer(count: cout * cin * k * k, rng: &rng), gb: GradBuffer? = GradBuffer(count: cout, rng: &rng)
            let dx = try withGrad(&gw) { pw in try withGrad(&gb) { pb in
                try Ops.patchConv2dBackward(r, input: x, weightOIHW: wt, kernel: k, weightGrad: pw, biasGrad: pb) } }
            let (xd, wd, bd, rd) = (d(x), d(wt), d(b), d(r))
            let f = { (x: [Double], w: [Double], b: [Double]) in F64.patchConv(x, w, b, n: n, h: h, wd: shape[2], cin: cin, cout: cout, k: k) }
            let numericDx = numeric(xd, rd) { f($0, wd, bd) }
            assertClose(try XCTUnwrap(dx).scalars, numericDx, "patch conv dx \(shape)")
            assertClose(gw!.added, numeric(wd, rd) { f(xd, $0, bd) }, "patch conv dW \(shape)")
            assertClose(gb!.added, numeric(bd, rd) { f(xd, wd, $0) }, "patch conv db \(shape)")
        }
    }

    func testAttentionBackward() throws {
        var rng = SeededGenerator(seed: 108)
        for (b, t, d0, heads, causal) in [(3, 5, 12, 3, true), (1, 7, 10, 2, false), (3, 4, 8, 1, false)] {
            let qkv = rand([b, t, 3 * d0], &rng, -1.5...1.5), r = rand([b, t, d0], &rng)
            let dqkv = try Ops.attentionBackward(r, qkv: qkv, heads: heads, causal: causal)
            assertClose(dqkv.scalars, numeric(d(qkv), d(r)) { F64.attention($0, b: b, t: t, d: d0, heads: heads, causal: causal) },
                        "attention \(b)×\(t)×\(d0), \(heads) heads, causal \(causal)")
        }
    }

    func testSequenceOpsBackward() throws {
        var rng = SeededGenerator(seed: 109)
        // Positional add: x [3, 4, 5] + table[:4] of [6, 5].
        let table = rand([6, 5], &rng), r = rand([3, 4, 5], &rng)
        var x = rand([3, 4, 5], &rng)
        let x0 = d(x)
        try Ops.addPositional(&x, table)
        XCTAssertEqual(x.scalars[7], Float(x0[7]) + table.scalars[7])
        var gp: GradBuffer? = GradBuffer(count: 30, rng: &rng)
        try withGrad(&gp) { try Ops.addPositionalBackward(r, tableGrad: $0!) }
        let addPos = { (t: [Double]) in x0.indices.map { x0[$0] + t[$0 % 20] } }
        assertClose(gp!.added, numeric(d(table), d(r), addPos), "positional dtable")

        // Class token + positional: tokens [3, 4, 7], class [7], positional [5, 7].
        let tokens = rand([3, 4, 7], &rng), cls = rand([7], &rng), pos = rand([5, 7], &rng), r2 = rand([3, 5, 7], &rng)
        func prepend(_ tk: [Double], _ c: [Double], _ p: [Double]) -> [Double] {
            var y: [Double] = []
            for b in 0..<3 { y += (0..<7).map { c[$0] + p[$0] }; y += (0..<28).map { tk[b * 28 + $0] + p[7 + $0] } }
            return y
        }
        XCTAssertEqual(try Ops.prependClassToken(tokens, classEmbedding: cls, positional: pos).scalars.map(Double.init),
                       prepend(d(tokens), d(cls), d(pos)).map { Double(Float($0)) })
        var gc: GradBuffer? = GradBuffer(count: 7, rng: &rng), gpos: GradBuffer? = GradBuffer(count: 35, rng: &rng)
        let dTokens = try withGrad(&gc) { pc in try withGrad(&gpos) { pp in
            try Ops.prependClassTokenBackward(r2, classGrad: pc, positionalGrad: pp) } }
        let (tkd, cd, pd, r2d) = (d(tokens), d(cls), d(pos), d(r2))
        assertClose(dTokens.scalars, numeric(tkd, r2d) { prepend($0, cd, pd) }, "class token dtokens")
        assertClose(gc!.added, numeric(cd, r2d) { prepend(tkd, $0, pd) }, "class token dclass")
        assertClose(gpos!.added, numeric(pd, r2d) { prepend(tkd, cd, $0) }, "class token dpositional")

        // End-of-text gather: rows 3, 0, 5 of [3, 6, 4].
        let seq = rand([3, 6, 4], &rng), r3 = rand([3, 4], &rng), picks = [3, 0, 5]
        let gathered = try Ops.gatherRows(seq, indices: picks)
        XCTAssertEqual(Array(gathered.scalars[4..<8]), Array(seq.scalars[24..<28]))   // sequence 1, row 0
        let gather = { (s: [Double]) in picks.enumerated().flatMap { b, i in (0..<4).map { s[(b * 6 + i) * 4 + $0] } } }
        assertClose(try Ops.gatherRowsBackward(r3, indices: picks, sequenceLength: 6).scalars, numeric(d(seq), d(r3), gather), "gather dx")
        XCTAssertThrowsError(try Ops.gatherRows(seq, indices: [0, 6, 1]))

        // Embedding: repeated ids accumulate.
        let emb = rand([9, 5], &rng), ids = [4, 1, 4, 8, 0, 4, 2], r4 = rand([7, 5], &rng)
        var ge: GradBuffer? = GradBuffer(count: 45, rng: &rng)
        try withGrad(&ge) { try Ops.embeddingBackward(r4, ids: ids, vocabulary: 9, tableGrad: $0!) }
        let lookup = { (t: [Double]) in ids.flatMap { id in (0..<5).map { t[id * 5 + $0] } } }
        assertClose(ge!.added, numeric(d(emb), d(r4), lookup), "embedding dtable")
        XCTAssertThrowsError(try withGrad(&ge) { try Ops.embeddingBackward(r4, ids: [9] + ids.dropFirst(), vocabulary: 9, tableGrad: $0!) })

        // Mean pooling over H, W: [3, 3, 5, 7] → [3, 7].
        let map = rand([3, 3, 5, 7], &rng), r5 = rand([3, 7], &rng)
        func pool(_ m: [Double]) -> [Double] {
            var y = [Double](repeating: 0, count: 21)
            for i in 0..<21 { for p in 0..<15 { y[i] += m[((i / 7) * 15 + p) * 7 + i % 7] / 15 } }
            return y
        }
        assertClose(try Ops.meanPool2dBackward(r5, inputShape: map.shape).scalars, numeric(d(map), d(r5), pool), "mean pool dx")

        // L2 normalisation of rows: [3, 11] and a single row.
        for shape in [[3, 11], [1, 6]] {
            let v = rand(shape, &rng), r6 = rand(shape, &rng), w = shape[1]
            let norm = { (x: [Double]) -> [Double] in
                (0..<shape[0]).flatMap { r -> [Double] in
                    let row = Array(x[r * w..<(r + 1) * w]); let n = row.reduce(0) { $0 + $1 * $1 }.squareRoot()
                    return row.map { $0 / n }
                }
            }
            assertClose(try Ops.l2NormalizeBackward(r6, input: v).scalars, numeric(d(v), d(r6), norm), "l2 normalize dx \(shape)")
        }
    }

    func testBackwardShapeErrorsAreThrown() {
        let x = Tensor(repeating: 1, shape: [2, 3]), w = Tensor(repeating: 1, shape: [4, 5])
        XCTAssertThrowsError(try Ops.linearBackward(Tensor(repeating: 1, shape: [2, 4]), input: x, weight: w, weightGrad: nil, biasGrad: nil))
        XCTAssertThrowsError(try Ops.attentionBackward(Tensor(repeating: 1, shape: [1, 2, 3]), qkv: Tensor(repeating: 1, shape: [1, 2, 12]), heads: 2, causal: true))
        XCTAssertThrowsError(try Ops.depthwiseConv2dBackward(Tensor(repeating: 1, shape: [1, 4, 4, 3]), input: Tensor(repeating: 1, shape: [1, 5, 5, 3]),
                                                             weight: Tensor(repeating: 1, shape: [3, 3, 3]), padding: 1, weightGrad: nil, biasGrad: nil))
        XCTAssertThrowsError(try Ops.layerNormBackward(x, input: x, weight: Tensor(repeating: 1, shape: [2]), eps: 1e-5, weightGrad: nil, biasGrad: nil))
    }
}
