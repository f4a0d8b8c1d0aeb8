import XCTest
import Foundation
import CLIPEngine

/// Elementwise, normalisation, attention and lookup ops against Float64 references.
final class OpsTests: XCTestCase {
    /// GELU (erf, not tanh) keeps `Ref.geluViolation`'s promise over a dense sweep of the range
    /// where it is not 0 or x, both ends included; far below, it is 0, never NaN.
    func testGeluErrorAgainstFloat64() throws {
        var values: [Float] = []
        var v: Float = -13
        while v < 12 { values.append(v); v += 0.000_37 }
        values += [0, 1e-30, -1e-30, 1e-8, -1e-8, 1e-3, -1e-3, -5.5, -5.499, -5.501, 5.5, -12.9, 30, 1e5]
        let x = try Tensor(shape: [values.count], data: values)
        let y = Ops.gelu(x).scalars
        let (ratio, at) = Ref.geluViolation(y, inputs: values)
        XCTAssertLessThanOrEqual(ratio, 1, "x = \(values[at]) gave \(y[at]), want \(Ref.gelu(Double(values[at])))")
        // Beyond the normal range the result is (nearly) zero, never NaN.
        let far = Ops.gelu(try Tensor(shape: [3], data: [-20, -100, -1e30])).scalars
        XCTAssertTrue(far.allSatisfy { abs($0) < 1e-37 }, "\(far)")
    }

    func testGeluAndQuickGeluOnAwkwardShapes() throws {
        var rng = SeededGenerator(seed: 20)
        for shape in [[37], [3, 5, 7], [1000, 33]] {
            let x = Tensor.random(shape: shape, in: -6...6, using: &rng)
            let xd = Ref.doubles(x)
            let g = Ops.gelu(x)
            XCTAssertEqual(g.shape, shape)
            let (ratio, at) = Ref.geluViolation(g.scalars, inputs: x.scalars)
            XCTAssertLessThanOrEqual(ratio, 1, "gelu \(shape) at \(at)")
            // PyTorch multiplies 1.702·x in Float before the sigmoid; the reference does too.
            let q = xd.map { x in x / (1 + exp(-Double(Float(1.702) * Float(x)))) }
            assertClose(Ops.quickGelu(x), q, rtol: 1e-6, atol: 1e-30, "quickGelu \(shape)")
        }
    }

    func testLayerNorm() throws {
        var rng = SeededGenerator(seed: 21)
        for (shape, eps) in [([3, 5, 97], Float(1e-5)), ([2, 7], 1e-6), ([4, 1], 1e-5), ([3136, 96], 1e-6)] {
            // Offset inputs, so that the mean really has to be removed.
            let x = Tensor.random(shape: shape, in: 2...5, using: &rng)
            let c = shape.last!
            let g = Tensor.random(shape: [c], in: 0.5...1.5, using: &rng)
            let b = Tensor.random(shape: [c], using: &rng)
            let (xd, gd, bd) = (Ref.doubles(x), Ref.doubles(g), Ref.doubles(b))
            var want = [Double](repeating: 0, count: xd.count)
            for r in 0..<(xd.count / c) {
                let row = xd[(r * c)..<((r + 1) * c)]
                let mean = row.reduce(0, +) / Double(c)
                let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(c)
                for i in 0..<c { want[r * c + i] = (xd[r * c + i] - mean) / (variance + Double(eps)).squareRoot() * gd[i] + bd[i] }
            }
            let y = try Ops.layerNorm(x, weight: g, bias: b, eps: eps)
            assertClose(y, want, rtol: 1e-5, atol: 2e-5, "layerNorm \(shape)")
            var inPlace = x
            try Ops.layerNormInPlace(&inPlace, weight: g, bias: b, eps: eps)
            XCTAssertEqual(inPlace.scalars, y.scalars)
            XCTAssertEqual(x.scalars.map(Double.init), xd, "in-place must not write through a shared copy")
        }
        var rng2 = SeededGenerator(seed: 22)
        let x = Tensor.random(shape: [2, 8], using: &rng2)
        assertThrowsTensorError(try Ops.layerNorm(x, weight: Tensor.random(shape: [7], using: &rng2),
                                                  bias: Tensor.random(shape: [8], using: &rng2), eps: 1e-5), mentions: ["layerNorm", "[7]"])
        var y = x
        assertThrowsTensorError(try Ops.layerNormInPlace(&y, weight: Tensor.random(shape: [8], using: &rng2),
                                                         bias: Tensor.random(shape: [9], using: &rng2), eps: 1e-5))
    }

    func testGlobalResponseNorm() throws {
        var rng = SeededGenerator(seed: 23)
        for shape in [[2, 5, 7, 13], [1, 9, 9, 97], [3, 1, 1, 16], [1, 56, 56, 384]] {
            let (n, hw, c) = (shape[0], shape[1] * shape[2], shape[3])
            let x = Tensor.random(shape: shape, using: &rng)
            let g = Tensor.random(shape: [c], using: &rng)
            let b = Tensor.random(shape: [c], using: &rng)
            let (xd, gd, bd) = (Ref.doubles(x), Ref.doubles(g), Ref.doubles(b))
            var want = [Double](repeating: 0, count: xd.count)
            for img in 0..<n {
                var gx = [Double](repeating: 0, count: c)
                for p in 0..<hw { for ch in 0..<c { gx[ch] += xd[(img * hw + p) * c + ch] * xd[(img * hw + p) * c + ch] } }
                gx = gx.map { $0.squareRoot() }
                let denominator = gx.reduce(0, +) / Double(c) + 1e-6
                for p in 0..<hw { for ch in 0..<c {
                    let i = (img * hw + p) * c + ch
                    want[i] = xd[i] + (gd[ch] * (xd[i] * gx[ch] / denominator) + bd[ch])
                } }
            }
            let y = try Ops.globalResponseNorm(x, weight: g, bias: b)
            assertClose(y, want, rtol: 1e-5, atol: 1e-5, "GRN \(shape)")
            var inPlace = x
            try Ops.globalResponseNormInPlace(&inPlace, weight: g, bias: b, eps: 1e-6)
            XCTAssertEqual(inPlace.scalars, y.scalars)
        }
        let x = Tensor.random(shape: [1, 2, 2, 5], using: &rng)
        assertThrowsTensorError(try Ops.globalResponseNorm(x, weight: Tensor.random(shape: [4], using: &rng),
                                                           bias: Tensor.random(shape: [5], using: &rng)), mentions: ["globalResponseNorm"])
        assertThrowsTensorError(try Ops.globalResponseNorm(try x.reshaped([4, 5]), weight: Tensor.random(shape: [5], using: &rng),
                                                           bias: Tensor.random(shape: [5], using: &rng)))
    }

    func testSoftmax() throws {
        var rng = SeededGenerator(seed: 24)
        for (shape, spread) in [([4, 37], Float(60)), ([3, 5], 1), ([2, 3, 16], 10), ([1], 3)] {
            let x = Tensor.random(shape: shape, in: -spread...spread, using: &rng)
            let xd = Ref.doubles(x)
            let w = shape.last!
            var want = [Double](repeating: 0, count: xd.count)
            for r in 0..<(xd.count / w) {
                let row = xd[(r * w)..<((r + 1) * w)]
                let m = row.max()!
                let total = row.map { exp($0 - m) }.reduce(0, +)
                for i in 0..<w { want[r * w + i] = exp(xd[r * w + i] - m) / total }
            }
            assertClose(Ops.softmax(x), want, rtol: 2e-6, atol: 1e-30, "softmax \(shape)")
        }
    }

    /// Attention on packed qkv against a direct Float64 evaluation, T = 1 and T = 17, causal and not.
    func testAttention() throws {
        var rng = SeededGenerator(seed: 25)
        for (b, t, heads, hd) in [(2, 17, 3, 5), (1, 1, 2, 8), (3, 17, 1, 16), (2, 77, 8, 64)] {
            let d = heads * hd
            let qkv = Tensor.random(shape: [b, t, 3 * d], in: -2...2, using: &rng)
            let q = Ref.doubles(qkv)
            for causal in [false, true] {
                var want = [Double](repeating: 0, count: b * t * d)
                for bi in 0..<b { for h in 0..<heads { for i in 0..<t {
                    let qi = (bi * t + i) * 3 * d + h * hd
                    let keys = causal ? i + 1 : t
                    var s = [Double](repeating: 0, count: keys)
                    for j in 0..<keys {
                        let kj = (bi * t + j) * 3 * d + d + h * hd
                        for e in 0..<hd { s[j] += q[qi + e] * q[kj + e] }
                        s[j] /= Double(hd).squareRoot()
                    }
                    let m = s.max()!
                    let p = s.map { exp($0 - m) }
                    let total = p.reduce(0, +)
                    for e in 0..<hd {
                        var o = 0.0
                        for j in 0..<keys { o += p[j] / total * q[(bi * t + j) * 3 * d + 2 * d + h * hd + e] }
                        want[(bi * t + i) * d + h * hd + e] = o
                    }
                } } }
                let y = try Ops.attention(qkv: qkv, heads: heads, causal: causal)
                XCTAssertEqual(y.shape, [b, t, d])
                assertClose(y, want, rtol: 1e-5, atol: 1e-5, "attention b\(b) t\(t) h\(heads) causal \(causal)")
            }
        }
        let bad = Tensor.random(shape: [1, 4, 30], using: &rng)
        assertThrowsTensorError(try Ops.attention(qkv: bad, heads: 4, causal: false), mentions: ["attention", "[1, 4, 30]"])
        assertThrowsTensorError(try Ops.attention(qkv: try bad.reshaped([4, 30]), heads: 2, causal: false))
    }

    func testEmbedding() throws {
        var rng = SeededGenerator(seed: 26)
        let table = Tensor.random(shape: [11, 6], using: &rng)
        let ids = [3, 0, 10, 3]
        let y = try Ops.embedding(table, ids: ids)
        XCTAssertEqual(y.shape, [4, 6])
        let t = table.scalars
        XCTAssertEqual(y.scalars, ids.flatMap { t[($0 * 6)..<($0 * 6 + 6)] })
        assertThrowsTensorError(try Ops.embedding(table, ids: [1, 2, 11]), mentions: ["11", "position 2"])
        assertThrowsTensorError(try Ops.embedding(table, ids: [-1]), mentions: ["-1", "position 0"])
        assertThrowsTensorError(try Ops.embedding(try table.reshaped([66]), ids: [0]))
    }

    func testMeanPoolAndL2Normalize() throws {
        var rng = SeededGenerator(seed: 27)
        let x = Tensor.random(shape: [2, 3, 5, 13], using: &rng)
        let xd = Ref.doubles(x)
        var want = [Double](repeating: 0, count: 26)
        for n in 0..<2 { for p in 0..<15 { for c in 0..<13 { want[n * 13 + c] += xd[(n * 15 + p) * 13 + c] / 15 } } }
        let pooled = try Ops.meanPool2d(x)
        XCTAssertEqual(pooled.shape, [2, 13])
        assertClose(pooled, want, rtol: 1e-6, atol: 1e-6, "meanPool2d")
        assertThrowsTensorError(try Ops.meanPool2d(try x.reshaped([6, 5, 13])), mentions: ["meanPool2d"])

        // One ordinary row and one whose norm is below 1e-12 (divided by 1e-12, as F.normalize does).
        var rows = Tensor.random(shape: [2, 37], using: &rng)
        rows.withUnsafeMutableBufferPointer { buf in for i in 37..<74 { buf[i] *= 1e-15 } }
        let rd = Ref.doubles(rows)
        var normalized = [Double](repeating: 0, count: 74)
        for r in 0..<2 {
            let norm = rd[(r * 37)..<(r * 37 + 37)].map { $0 * $0 }.reduce(0, +).squareRoot()
            for i in 0..<37 { normalized[r * 37 + i] = rd[r * 37 + i] / max(norm, 1e-12) }
        }
        assertClose(Ops.l2Normalize(rows), normalized, rtol: 1e-6, atol: 0, "l2Normalize")
    }

    func testAddAndMul() throws {
        var rng = SeededGenerator(seed: 28)
        let a = Tensor.random(shape: [3, 5, 19], using: &rng)
        let b = Tensor.random(shape: [3, 5, 19], using: &rng)
        let row = Tensor.random(shape: [19], using: &rng)
        let (ad, bd, rd) = (Ref.doubles(a), Ref.doubles(b), Ref.doubles(row))
        assertClose(try Ops.add(a, b), zip(ad, bd).map { Double(Float($0) + Float($1)) }, rtol: 0, atol: 0, "add")
        assertClose(try Ops.add(a, row), ad.indices.map { Double(Float(ad[$0]) + Float(rd[$0 % 19])) }, rtol: 0, atol: 0, "add row")
        var c = a
        try Ops.addInPlace(&c, b)
        XCTAssertEqual(c.scalars, try Ops.add(a, b).scalars)
        XCTAssertEqual(a.scalars.map(Double.init), ad, "addInPlace must not write through a shared copy")
        assertClose(Ops.mul(a, scalar: -1.5), ad.map { $0 * -1.5 }, rtol: 1e-7, atol: 0, "mul")
        assertThrowsTensorError(try Ops.add(a, Tensor.random(shape: [3, 19, 5], using: &rng)), mentions: ["add", "[3, 19, 5]"])
        assertThrowsTensorError(try Ops.addInPlace(&c, Tensor.random(shape: [5], using: &rng)))
    }
}
