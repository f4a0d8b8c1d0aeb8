// Vectorised elementary functions and SIMD load/store helpers shared by the kernels.
// Everything here works on SIMD16<Float> (one AVX-512 register with `-target-cpu native`).

typealias Vec = SIMD16<Float>
let vecWidth = 16

@inline(__always) func load(_ p: UnsafePointer<Float>) -> Vec {
    UnsafeRawPointer(p).loadUnaligned(as: Vec.self)
}

@inline(__always) func load(_ p: UnsafeMutablePointer<Float>) -> Vec {
    UnsafeRawPointer(p).loadUnaligned(as: Vec.self)
}

@inline(__always) func store(_ v: Vec, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vec.self)
}

/// Loads `count` (< 16) floats, the other lanes set to `fill`.
@inline(__always) func loadPartial(_ p: UnsafePointer<Float>, _ count: Int, fill: Float = 0) -> Vec {
    var v = Vec(repeating: fill)
    for i in 0..<count { v[i] = p[i] }
    return v
}

@inline(__always) func storePartial(_ v: Vec, _ p: UnsafeMutablePointer<Float>, _ count: Int) {
    for i in 0..<count { p[i] = v[i] }
}

/// Applies `f` to `count` floats from `src` into `dst` (which may equal `src`), 16 lanes at a time.
@inline(__always) func mapVectors(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ count: Int,
                                  _ f: (Vec) -> Vec) {
    var i = 0
    while i + vecWidth <= count {
        store(f(load(src + i)), dst + i)
        i += vecWidth
    }
    if i < count { storePartial(f(loadPartial(src + i, count - i)), dst + i, count - i) }
}

// Codegen notes (Swift 6.3, x86-64, -target-cpu native; checked with objdump): SIMD `+ - * /`
// and comparisons are vector builtins (zmm). `clamped`, `pointwiseMin/Max`, `.max()` and the
// Float↔Int SIMD conversions are per-lane scalar loops (IEEE NaN rules), so we use selects and
// bit tricks instead. `addingProduct` is a lane loop that LLVM turns into one zmm vfmadd in Horner
// chains and in the kernels' accumulations, but a `(-a).addingProduct(b, c)` error term mixed
// into the chain made it split the whole function into xmm pieces; so only the polynomial steps
// use it, and products that must be exact use a Dekker split.
@inline(__always) func vmin(_ a: Vec, _ b: Vec) -> Vec { a.replacing(with: b, where: b .< a) }
@inline(__always) func vmax(_ a: Vec, _ b: Vec) -> Vec { a.replacing(with: b, where: b .> a) }

/// Largest lane (NaN lanes are ignored unless all are NaN).
@inline(__always) func horizontalMax(_ v: Vec) -> Float {
    let a = v.lowHalf.replacing(with: v.highHalf, where: v.highHalf .> v.lowHalf)
    let b = a.lowHalf.replacing(with: a.highHalf, where: a.highHalf .> a.lowHalf)
    let c = b.lowHalf.replacing(with: b.highHalf, where: b.highHalf .> b.lowHalf)
    return c[1] > c[0] ? c[1] : c[0]
}

enum VectorMath {
    static let log2e: Float = 1.442_695_04
    // ln 2 split so that n · ln2Hi is exact for |n| < 2^15 (Cody–Waite).
    static let ln2Hi: Float = 0.693_359_375
    static let ln2Lo: Float = -2.121_944_4e-4

    /// e^(hi + lo) where `lo` is a small correction to `hi` (|lo| ≲ 2); the range reduction
    /// subtracts n·ln2 from `hi` before `lo` is added, so `hi` may carry a large exact value.
    /// Relative error ≈ 2 ulp for results in the normal range. Arguments beyond ±88 are
    /// clamped: results below ~1e-38 are tiny but not exact (callers needing true underflow
    /// select 0 themselves) and above ~1.6e38 saturate (finite, never inf or NaN).
    @inline(__always) static func exp(_ hi: Vec, _ lo: Vec = Vec(repeating: 0)) -> Vec {
        let h = vmax(vmin(hi, Vec(repeating: 88)), Vec(repeating: -88))
        let x = vmax(vmin(h + lo, Vec(repeating: 88.3)), Vec(repeating: -87.3))
        // n = round(x·log2e) by the 1.5·2^23 trick: the sum's low mantissa bits hold n.
        let shifted = x * log2e + 12_582_912
        let n = shifted - 12_582_912
        let r = (h - n * ln2Hi) - n * ln2Lo + lo
        // Taylor series of e^r to degree 8 on |r| ≤ 0.35 (truncation < 3e-10).
        var p = r * (1.0 / 40320) + (1.0 / 5040)
        p = Vec(repeating: 1.0 / 720).addingProduct(p, r)
        p = Vec(repeating: 1.0 / 120).addingProduct(p, r)
        p = Vec(repeating: 1.0 / 24).addingProduct(p, r)
        p = Vec(repeating: 1.0 / 6).addingProduct(p, r)
        p = Vec(repeating: 0.5).addingProduct(p, r)
        p = Vec(repeating: 1).addingProduct(p, r)
        p = Vec(repeating: 1).addingProduct(p, r)
        let bits = (unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
        return p * unsafeBitCast(bits, to: Vec.self)
    }

    /// Exact (erf) GELU, x·Φ(x), with Φ(x) = ½·erfc(−x/√2) evaluated so that the negative tail
    /// keeps its relative accuracy (1 + erf would cancel there). erfc(z), z ≥ 0, is Numerical
    /// Recipes' Chebyshev fit erfc(z) = t·exp(−z² + P(t)), t = 1/(1 + z/2), whose fractional error
    /// is below 1.1e-7 everywhere. −z² = −x²/2 goes into `exp` as an exact hi/lo pair (Dekker:
    /// x = xh + xl with 12-bit halves, so xh², 2·xh·xl and xl² are exact), because rounding x²
    /// alone would cost |x²/2|·6e-8 of relative accuracy in the tail.
    @inline(__always) static func gelu(_ x: Vec) -> Vec {
        let bits = unsafeBitCast(x, to: SIMD16<UInt32>.self)
        let ax = unsafeBitCast(bits & 0x7FFF_FFFF, to: Vec.self)
        let t = 1 / (ax * 0.353_553_39 + 1)      // 1 / (1 + |x|/(2√2))
        var p = t * 0.170_872_77 - 0.822_152_23
        p = Vec(repeating: 1.488_515_87).addingProduct(p, t)
        p = Vec(repeating: -1.135_203_98).addingProduct(p, t)
        p = Vec(repeating: 0.278_868_07).addingProduct(p, t)
        p = Vec(repeating: -0.186_288_06).addingProduct(p, t)
        p = Vec(repeating: 0.096_784_18).addingProduct(p, t)
        p = Vec(repeating: 0.374_091_96).addingProduct(p, t)
        p = Vec(repeating: 1.000_023_68).addingProduct(p, t)
        p = Vec(repeating: -1.265_512_23).addingProduct(p, t)
        let xh = unsafeBitCast(bits & 0xFFFF_F000, to: Vec.self)
        let xl = x - xh
        let hi = xh * xh * -0.5
        let lo = (xh * xl + xl * xl * 0.5) * -1
        let tail = 0.5 * t * exp(hi, lo + p)     // Φ(−|x|)
        var phi = tail.replacing(with: 1 - tail, where: x .> 0)
        phi.replace(with: 0, where: x .< -14)   // x·Φ(x) < 1e-43 there
        return x * phi
    }

    /// x·σ(1.702·x), the QuickGELU of OpenAI's CLIP.
    @inline(__always) static func quickGelu(_ x: Vec) -> Vec {
        x / (1 + exp(x * -1.702))
    }
}

// Array forms. Each loop lives in its own out-of-line generic function (specialised per element
// function) holding exactly one inlined copy of the math: with a second copy in the same function
// (a bias variant, a partial tail vector) LLVM merged them and re-vectorised the result in xmm
// pieces, at up to twice the cost (seen with objdump). Tails go through a one-vector buffer.

protocol VectorFunction { static func apply(_ x: Vec) -> Vec }
enum GeluFunction: VectorFunction { @inline(__always) static func apply(_ x: Vec) -> Vec { VectorMath.gelu(x) } }
enum QuickGeluFunction: VectorFunction { @inline(__always) static func apply(_ x: Vec) -> Vec { VectorMath.quickGelu(x) } }

extension VectorMath {
    @inline(never)
    static func wholeVectors<F: VectorFunction>(_: F.Type, _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>,
                                                _ vectors: Int) {
        for v in 0..<vectors { store(F.apply(load(src + v * vecWidth)), dst + v * vecWidth) }
    }

    @inline(never)
    static func wholeVectors<F: VectorFunction>(_: F.Type, _ src: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                                                _ dst: UnsafeMutablePointer<Float>, _ vectors: Int) {
        for v in 0..<vectors { store(F.apply(load(src + v * vecWidth) + load(bias + v * vecWidth)), dst + v * vecWidth) }
    }

    /// dst[i] = F(src[i] (+ bias[i])) for i in 0..<count; `dst` may equal `src`.
    static func apply<F: VectorFunction>(_ f: F.Type, _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>,
                                         _ count: Int, bias: UnsafePointer<Float>? = nil) {
        let whole = count / vecWidth, done = whole * vecWidth, rest = count - done
        if let bias { wholeVectors(f, src, bias: bias, dst, whole) } else { wholeVectors(f, src, dst, whole) }
        guard rest > 0 else { return }
        var tail = loadPartial(src + done, rest) + (bias.map { loadPartial($0 + done, rest) } ?? Vec())
        withUnsafeMutableBytes(of: &tail) { raw in
            let p = raw.baseAddress!.assumingMemoryBound(to: Float.self)
            wholeVectors(f, p, p, 1)
        }
        storePartial(tail, dst + done, rest)
    }
}
