import XCTest
import Foundation
import CLIPEngine

// Naive Float64 references and comparison helpers for the kernel tests.

enum Ref {
    static func doubles(_ t: Tensor) -> [Double] { t.scalars.map(Double.init) }

    static func gelu(_ x: Double) -> Double { 0.5 * x * erfc(-x / 2.0.squareRoot()) }

    /// The engine's GELU promise (its Φ is a rational with an absolute error): within
    /// `geluBound`·max(1, |x|) of the exact value everywhere, relative error ≤ 1e-6 where x ≥ −1,
    /// never of the wrong sign, and 0 (not a product with a tiny Φ) below −5.5. PyTorch's own erf
    /// GELU measures 3.2e-7·|x|, and up to 21% relative below −3.
    static let geluBound = 2.5e-7

    /// The worst violation of that promise, as a multiple of the bound (≤ 1 passes), and where.
    static func geluViolation(_ got: [Float], inputs x: [Float]) -> (ratio: Double, at: Int) {
        var worst = 0.0, at = 0
        for (i, (y, xv)) in zip(got, x).enumerated() {
            let xd = Double(xv), want = gelu(xd), e = abs(Double(y) - want)
            var ratio = e / (geluBound * max(1, abs(xd)))
            if xd >= -1, want != 0 { ratio = max(ratio, e / abs(want) / 1e-6) }
            if (xd < 0 && y > 0) || (xd > 0 && y < 0) || (xd < -5.5 && y != 0) || !y.isFinite { ratio = .infinity }
            if !(ratio <= worst) { worst = ratio; at = i }
        }
        return (worst, at)
    }

    /// y[m, o] = Σ_i x[m, i]·w[o, i] (+ b[o]).
    static func linear(_ x: [Double], _ w: [Double], _ b: [Double]?, m: Int, inF: Int, outF: Int) -> [Double] {
        var y = [Double](repeating: 0, count: m * outF)
        for r in 0..<m {
            for o in 0..<outF {
                var s = b?[o] ?? 0
                for i in 0..<inF { s += x[r * inF + i] * w[o * inF + i] }
                y[r * outF + o] = s
            }
        }
        return y
    }

    /// PyTorch F.conv2d on NCHW input and OIHW weight, given stride, padding and groups.
    static func conv2d(_ x: [Double], n: Int, cin: Int, h: Int, w: Int,
                       _ weight: [Double], cout: Int, kh: Int, kw: Int, bias: [Double]?,
                       stride: Int, padding: Int, groups: Int) -> (values: [Double], oh: Int, ow: Int) {
        let oh = (h + 2 * padding - kh) / stride + 1, ow = (w + 2 * padding - kw) / stride + 1
        let cinPerGroup = cin / groups, coutPerGroup = cout / groups
        var y = [Double](repeating: 0, count: n * cout * oh * ow)
        for b in 0..<n {
            for co in 0..<cout {
                let g = co / coutPerGroup
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        var s = bias?[co] ?? 0
                        for cg in 0..<cinPerGroup {
                            let ci = g * cinPerGroup + cg
                            for ky in 0..<kh {
                                let iy = oy * stride + ky - padding
                                if iy < 0 || iy >= h { continue }
                                for kx in 0..<kw {
                                    let ix = ox * stride + kx - padding
                                    if ix < 0 || ix >= w { continue }
                                    s += x[((b * cin + ci) * h + iy) * w + ix] * weight[((co * cinPerGroup + cg) * kh + ky) * kw + kx]
                                }
                            }
                        }
                        y[((b * cout + co) * oh + oy) * ow + ox] = s
                    }
                }
            }
        }
        return (y, oh, ow)
    }

    /// NHWC ↔ NCHW index helpers for comparing channels-last results with NCHW references.
    static func nchwToNhwc(_ x: [Double], n: Int, c: Int, h: Int, w: Int) -> [Double] {
        var y = [Double](repeating: 0, count: x.count)
        for b in 0..<n { for ch in 0..<c { for i in 0..<h { for j in 0..<w {
            y[((b * h + i) * w + j) * c + ch] = x[((b * c + ch) * h + i) * w + j]
        } } } }
        return y
    }

    static func nhwcToNchw(_ x: [Double], n: Int, h: Int, w: Int, c: Int) -> [Double] {
        var y = [Double](repeating: 0, count: x.count)
        for b in 0..<n { for ch in 0..<c { for i in 0..<h { for j in 0..<w {
            y[((b * c + ch) * h + i) * w + j] = x[((b * h + i) * w + j) * c + ch]
        } } } }
        return y
    }
}

/// Asserts |got − want| ≤ atol + rtol·|want| elementwise, reporting the worst element.
func assertClose(_ got: Tensor, _ want: [Double], rtol: Double, atol: Double, _ what: String = "",
                 file: StaticString = #filePath, line: UInt = #line) {
    guard got.count == want.count else {
        XCTFail("\(what): \(got.count) values, expected \(want.count)", file: file, line: line)
        return
    }
    let g = got.scalars
    var worst = 0.0, worstIndex = -1
    for i in want.indices {
        let excess = abs(Double(g[i]) - want[i]) - (atol + rtol * abs(want[i]))
        if !(excess <= worst) { worst = excess.isNaN ? .infinity : excess; worstIndex = i }
    }
    if worstIndex >= 0 {
        XCTFail("\(what): element \(worstIndex) is \(g[worstIndex]), expected \(want[worstIndex]) (rtol \(rtol), atol \(atol))",
                file: file, line: line)
    }
}

/// Asserts that `body` throws a `TensorError` whose description mentions every string in `mentions`.
func assertThrowsTensorError<T>(_ body: @autoclosure () throws -> T, mentions: [String] = [],
                                file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertThrowsError(try body(), file: file, line: line) { error in
        guard let e = error as? TensorError else {
            XCTFail("expected TensorError, got \(error)", file: file, line: line)
            return
        }
        for s in mentions {
            XCTAssertTrue(e.description.contains(s), "\"\(e.description)\" does not mention \(s)", file: file, line: line)
        }
    }
}

/// Checks a linear-layer implementation (x, weight [out, in], bias, activation) against Float64:
/// no bias, bias, bias + GELU, GELU without bias, bias + QuickGELU.
func checkLinearAgainstReference(lead: [Int], inF: Int, outF: Int, rng: inout SeededGenerator, _ what: String,
                                 _ linear: (Tensor, Tensor, Tensor?, Activation) throws -> Tensor) throws {
    let x = Tensor.random(shape: lead + [inF], using: &rng)
    let w = Tensor.random(shape: [outF, inF], in: -0.5...0.5, using: &rng)
    let b = Tensor.random(shape: [outF], using: &rng)
    let m = lead.reduce(1, *)
    let plain = Ref.linear(Ref.doubles(x), Ref.doubles(w), nil, m: m, inF: inF, outF: outF)
    let biased = Ref.linear(Ref.doubles(x), Ref.doubles(w), Ref.doubles(b), m: m, inF: inF, outF: outF)
    let tol = 1e-5 * Double(inF).squareRoot()
    let y0 = try linear(x, w, nil, .none)
    XCTAssertEqual(y0.shape, lead + [outF])
    assertClose(y0, plain, rtol: 1e-5, atol: tol, "\(what) no bias \(lead) \(inF)→\(outF)")
    assertClose(try linear(x, w, b, .none), biased, rtol: 1e-5, atol: tol, "\(what) bias")
    assertClose(try linear(x, w, b, .gelu), biased.map(Ref.gelu), rtol: 1e-5, atol: tol, "\(what) bias gelu")
    assertClose(try linear(x, w, nil, .gelu), plain.map(Ref.gelu), rtol: 1e-5, atol: tol, "\(what) gelu")
    assertClose(try linear(x, w, b, .quickGelu), biased.map { $0 / (1 + exp(-1.702 * $0)) }, rtol: 1e-5, atol: tol,
                "\(what) bias quickGelu")
}
