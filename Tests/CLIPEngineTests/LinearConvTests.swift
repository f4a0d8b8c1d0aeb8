import XCTest
import Foundation
import CLIPEngine

/// GEMM-based ops and convolutions against Float64 references.
final class LinearConvTests: XCTestCase {
    func testSgemmTransposesAlphaBetaAndThreadSplits() throws {
        var rng = SeededGenerator(seed: 10)
        // (m, n, k): small (one thread), large M (split rows), small M large N (split columns).
        for (m, n, k) in [(5, 7, 3), (301, 67, 129), (6, 1500, 300)] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let a = Tensor.random(shape: ta ? [k, m] : [m, k], using: &rng)
                let b = Tensor.random(shape: tb ? [n, k] : [k, n], using: &rng)
                var c = Tensor.random(shape: [m, n], using: &rng)
                let (ad, bd, c0) = (Ref.doubles(a), Ref.doubles(b), Ref.doubles(c))
                var want = [Double](repeating: 0, count: m * n)
                for i in 0..<m { for j in 0..<n {
                    var s = 0.0
                    for p in 0..<k { s += (ta ? ad[p * m + i] : ad[i * k + p]) * (tb ? bd[j * k + p] : bd[p * n + j]) }
                    want[i * n + j] = 0.5 * s - 2 * c0[i * n + j]
                } }
                c.withUnsafeMutableBufferPointer { cb in
                    sgemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 0.5, a: a.storage.pointer, lda: ta ? m : k,
                          b: b.storage.pointer, ldb: tb ? k : n, beta: -2, c: cb.baseAddress!, ldc: n)
                }
                assertClose(c, want, rtol: 1e-5, atol: 1e-5 * Double(k).squareRoot(), "sgemm \(m)×\(n)×\(k) \(ta) \(tb)")
            }
        }
    }

    func testLinearWithBiasAndActivations() throws {
        var rng = SeededGenerator(seed: 11)
        // Leading dims [2, 3]; large M (row split with epilogue blocks); small M, wide N (column split).
        for (lead, inF, outF) in [([2, 3], 33, 13), ([601], 97, 130), ([5], 200, 3001), ([1], 7, 1)] {
            try checkLinearAgainstReference(lead: lead, inF: inF, outF: outF, rng: &rng, "linear") {
                try Ops.linear($0, weight: $1, bias: $2, activation: $3)
            }
        }
    }

    func testLinearAndMatmulShapeErrors() throws {
        var rng = SeededGenerator(seed: 12)
        let x = Tensor.random(shape: [4, 6], using: &rng)
        assertThrowsTensorError(try Ops.linear(x, weight: Tensor.random(shape: [3, 5], using: &rng), bias: nil),
                                mentions: ["linear", "[4, 6]", "[3, 5]"])
        assertThrowsTensorError(try Ops.linear(x, weight: Tensor.random(shape: [3, 6], using: &rng),
                                               bias: Tensor.random(shape: [4], using: &rng)), mentions: ["bias"])
        assertThrowsTensorError(try Ops.matmul(x, Tensor.random(shape: [5, 2], using: &rng)), mentions: ["matmul"])
    }

    func testMatmul() throws {
        var rng = SeededGenerator(seed: 13)
        let x = Tensor.random(shape: [2, 5, 19], using: &rng)
        let w = Tensor.random(shape: [19, 23], using: &rng)
        let (xd, wd) = (Ref.doubles(x), Ref.doubles(w))
        var want = [Double](repeating: 0, count: 10 * 23)
        for r in 0..<10 { for j in 0..<23 { for i in 0..<19 { want[r * 23 + j] += xd[r * 19 + i] * wd[i * 23 + j] } } }
        let y = try Ops.matmul(x, w)
        XCTAssertEqual(y.shape, [2, 5, 23])
        assertClose(y, want, rtol: 1e-5, atol: 1e-5, "matmul")
    }

    /// Depthwise conv through the converted weight and channels-last layout equals PyTorch's
    /// grouped conv on NCHW input and [C, 1, kH, kW] weights.
    func testDepthwiseConvMatchesPyTorchGroupedConv() throws {
        var rng = SeededGenerator(seed: 14)
        // (n, c, h, w, kh, kw, padding, bias): interior tiles, 4-block border path, scalar channel
        // tail, non-square kernel, no padding, padding wider than the kernel, a map too small for
        // any interior column, and a ConvNeXt stage-1 size (threaded).
        let cases: [(Int, Int, Int, Int, Int, Int, Int, Bool)] = [
            (2, 33, 9, 20, 7, 7, 3, true), (1, 97, 11, 23, 7, 7, 3, true), (2, 7, 5, 6, 7, 7, 3, false),
            (1, 13, 8, 19, 3, 5, 1, true), (1, 16, 6, 12, 3, 3, 0, true), (1, 64, 4, 5, 3, 3, 4, true),
            (3, 64, 7, 7, 7, 7, 3, true), (1, 96, 56, 56, 7, 7, 3, true),
        ]
        for (n, c, h, w, kh, kw, p, hasBias) in cases {
            let x = Tensor.random(shape: [n, c, h, w], using: &rng)
            let weight = Tensor.random(shape: [c, 1, kh, kw], in: -0.3...0.3, using: &rng)
            let bias = hasBias ? Tensor.random(shape: [c], using: &rng) : nil
            let ref = Ref.conv2d(Ref.doubles(x), n: n, cin: c, h: h, w: w, Ref.doubles(weight), cout: c, kh: kh, kw: kw,
                                 bias: bias.map(Ref.doubles), stride: 1, padding: p, groups: c)
            let y = try Ops.depthwiseConv2d(try Ops.nchwToNhwc(x), weight: try Ops.depthwiseWeight(fromOIHW: weight),
                                            bias: bias, padding: p)
            XCTAssertEqual(y.shape, [n, ref.oh, ref.ow, c])
            assertClose(try Ops.nhwcToNchw(y), ref.values, rtol: 1e-5, atol: 1e-5, "depthwise n\(n) c\(c) \(h)×\(w) k\(kh)×\(kw) p\(p)")
        }
    }

    func testDepthwiseConvShapeErrors() throws {
        var rng = SeededGenerator(seed: 15)
        let x = Tensor.random(shape: [1, 5, 5, 8], using: &rng)
        assertThrowsTensorError(try Ops.depthwiseConv2d(x, weight: Tensor.random(shape: [7, 7, 9], using: &rng), bias: nil, padding: 3),
                                mentions: ["depthwiseConv2d", "[7, 7, 9]"])
        assertThrowsTensorError(try Ops.depthwiseConv2d(x, weight: Tensor.random(shape: [7, 7, 8], using: &rng), bias: nil, padding: 0),
                                mentions: ["does not fit"])
        assertThrowsTensorError(try Ops.depthwiseConv2d(x, weight: Tensor.random(shape: [3, 3, 8], using: &rng),
                                                        bias: Tensor.random(shape: [3], using: &rng), padding: 1), mentions: ["bias"])
        assertThrowsTensorError(try Ops.depthwiseConv2d(try x.reshaped([5, 5, 8]), weight: Tensor.random(shape: [3, 3, 8], using: &rng),
                                                        bias: nil, padding: 1))
        assertThrowsTensorError(try Ops.depthwiseWeight(fromOIHW: Tensor.random(shape: [8, 2, 3, 3], using: &rng)))
    }

    /// Patch conv through the converted weight equals PyTorch's conv with kernel == stride,
    /// including H and W that the kernel does not divide (floor).
    func testPatchConvMatchesPyTorchConv() throws {
        var rng = SeededGenerator(seed: 16)
        // (n, cin, h, w, cout, k, bias): stem-like, downsample-like with odd Cin, k = 1, threaded GEMM.
        let cases: [(Int, Int, Int, Int, Int, Int, Bool)] = [
            (2, 3, 10, 13, 5, 4, true), (1, 7, 9, 6, 11, 2, false), (2, 5, 3, 4, 6, 1, true), (2, 3, 98, 97, 96, 4, true),
        ]
        for (n, cin, h, w, cout, k, hasBias) in cases {
            let x = Tensor.random(shape: [n, cin, h, w], using: &rng)
            let weight = Tensor.random(shape: [cout, cin, k, k], in: -0.3...0.3, using: &rng)
            let bias = hasBias ? Tensor.random(shape: [cout], using: &rng) : nil
            let ref = Ref.conv2d(Ref.doubles(x), n: n, cin: cin, h: h, w: w, Ref.doubles(weight), cout: cout, kh: k, kw: k,
                                 bias: bias.map(Ref.doubles), stride: k, padding: 0, groups: 1)
            let y = try Ops.patchConv2d(try Ops.nchwToNhwc(x), weight: try Ops.patchConvWeight(fromOIHW: weight), bias: bias, kernel: k)
            XCTAssertEqual(y.shape, [n, h / k, w / k, cout])
            assertClose(try Ops.nhwcToNchw(y), ref.values, rtol: 1e-5, atol: 1e-5, "patchConv \(h)×\(w) k\(k) cin\(cin)")
        }
    }

    func testPatchConvShapeErrors() throws {
        var rng = SeededGenerator(seed: 17)
        let x = Tensor.random(shape: [1, 8, 8, 3], using: &rng)
        assertThrowsTensorError(try Ops.patchConv2d(x, weight: Tensor.random(shape: [47, 4], using: &rng), bias: nil, kernel: 4),
                                mentions: ["patchConv2d", "47 rows"])
        assertThrowsTensorError(try Ops.patchConv2d(x, weight: Tensor.random(shape: [48, 4], using: &rng),
                                                    bias: Tensor.random(shape: [5], using: &rng), kernel: 4), mentions: ["bias"])
        assertThrowsTensorError(try Ops.patchConv2d(x, weight: Tensor.random(shape: [48, 4], using: &rng), bias: nil, kernel: 0))
        assertThrowsTensorError(try Ops.patchConvWeight(fromOIHW: Tensor.random(shape: [4, 3, 2, 3], using: &rng)))
    }

    func testLayoutConversions() throws {
        var rng = SeededGenerator(seed: 18)
        let (n, c, h, w) = (2, 5, 37, 3)
        let x = Tensor.random(shape: [n, c, h, w], using: &rng)
        let y = try Ops.nchwToNhwc(x)
        XCTAssertEqual(y.shape, [n, h, w, c])
        assertClose(y, Ref.nchwToNhwc(Ref.doubles(x), n: n, c: c, h: h, w: w), rtol: 0, atol: 0, "nchwToNhwc")
        XCTAssertEqual(try Ops.nhwcToNchw(y).scalars, x.scalars)
        assertThrowsTensorError(try Ops.nchwToNhwc(try x.reshaped([10, 37, 3])), mentions: ["nchwToNhwc"])
        assertThrowsTensorError(try Ops.nhwcToNchw(try x.reshaped([10, 37, 3])), mentions: ["nhwcToNchw"])
    }
}
