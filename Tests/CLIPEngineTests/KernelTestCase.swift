import XCTest
import CLIPKernels
import CLIPEngine

/// What the kernel tests share: the levels this CPU has, seeded inputs, and a worst-error check
/// against Float64. No tests of its own.
class KernelTestCase: XCTestCase {
    var rng = SeededGenerator(seed: 20261202)

    /// (name, table) of each level available here; the portable one always is.
    var levels: [(String, clip_kernel_table)] {
        (0...Int(CLIP_ISA_AVX512_BF16.rawValue)).compactMap { clip_kernels_for_level(Int32($0)) }.map { (String(cString: $0.pointee.name), $0.pointee) }
    }

    func random(_ count: Int, _ range: ClosedRange<Float> = -1...1) -> [Float] {
        (0..<count).map { _ in Float.random(in: range, using: &rng) }
    }

    func check(_ got: [Float], _ want: [Double], tolerance: Double, relative: Bool = false, _ what: String,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, want.count, what, file: file, line: line)
        var worst = 0.0, at = 0
        for i in 0..<min(got.count, want.count) {
            let scale = relative ? max(abs(want[i]), 1e-30) : 1
            let e = abs(Double(got[i]) - want[i]) / scale
            if !(e <= worst) { worst = e; at = i }
        }
        XCTAssertLessThanOrEqual(worst, tolerance, "\(what): worst error at \(at): got \(got[at]) want \(want[at])",
                                 file: file, line: line)
    }
}
