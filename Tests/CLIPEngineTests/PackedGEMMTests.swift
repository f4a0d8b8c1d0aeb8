import CLIPEngine
import Foundation
import XCTest

/// The packed 8×32 GEMM (the models' path) against Float64, on shapes that exercise full tiles,
/// partial row tiles (M % 8), partial column panels (N % 32), the row-block and column splits.
final class PackedGEMMTests: XCTestCase {
    let shapes: [(m: Int, k: Int, n: Int)] = [(1, 7, 5), (7, 33, 40), (8, 32, 32), (77, 512, 96), (301, 96, 384), (2053, 17, 70), (3, 300, 3000)]

    func testLinearPackedWithBiasAndActivations() throws {
        var rng = SeededGenerator(seed: 41)
        for s in shapes {
            try checkLinearAgainstReference(lead: [s.m], inF: s.k, outF: s.n, rng: &rng, "packed") {
                try Ops.linear($0, packed: PackedMatrix(linearWeight: $1), bias: $2, activation: $3)
            }
        }
    }

    func testLinearAccumulateAddsIntoTheResidual() throws {
        var rng = SeededGenerator(seed: 42)
        for s in shapes {
            let x = Tensor.random(shape: [s.m, s.k], using: &rng)
            let w = Tensor.random(shape: [s.n, s.k], in: -0.5...0.5, using: &rng)
            let b = Tensor.random(shape: [s.n], using: &rng)
            var residual = Tensor.random(shape: [s.m, s.n], using: &rng)
            let shared = residual   // copy-on-write: the copy must not change
            let want = zip(Ref.linear(Ref.doubles(x), Ref.doubles(w), Ref.doubles(b), m: s.m, inF: s.k, outF: s.n),
                           Ref.doubles(residual)).map { $0 + $1 }
            try Ops.linearAccumulate(x, packed: PackedMatrix(linearWeight: w), bias: b, into: &residual)
            assertClose(residual, want, rtol: 1e-5, atol: 1e-5 * Double(s.k).squareRoot(), "accumulate \(s)")
            XCTAssertNotEqual(shared.scalars, residual.scalars)
        }
    }

    func testKByNPackingMatchesMatmul() throws {
        var rng = SeededGenerator(seed: 43)
        let x = Tensor.random(shape: [19, 45], using: &rng), w = Tensor.random(shape: [45, 37], using: &rng)
        let got = try Ops.linear(x, packed: PackedMatrix(kByN: w), bias: nil)
        assertClose(got, Ref.doubles(try Ops.matmul(x, w)), rtol: 1e-5, atol: 1e-5, "kByN")
    }

    func testShapeErrors() throws {
        var rng = SeededGenerator(seed: 44)
        let packed = try PackedMatrix(linearWeight: Tensor.random(shape: [6, 5], using: &rng))
        assertThrowsTensorError(try Ops.linear(Tensor.random(shape: [2, 4], using: &rng), packed: packed, bias: nil), mentions: ["linear"])
        assertThrowsTensorError(try Ops.linear(Tensor.random(shape: [2, 5], using: &rng), packed: packed,
                                               bias: Tensor.random(shape: [5], using: &rng)), mentions: ["bias"])
        var wrong = Tensor.random(shape: [3, 6], using: &rng)
        assertThrowsTensorError(try Ops.linearAccumulate(Tensor.random(shape: [2, 5], using: &rng), packed: packed, bias: nil,
                                                         into: &wrong), mentions: ["residual"])
    }
}
