/// SIMD helpers over raw Float pointers. The package builds with `-target-cpu native`, so SIMD16
/// maps to one AVX-512 register (two AVX2 registers elsewhere).
typealias F16 = SIMD16<Float>

@inline(__always) func load16(_ p: UnsafePointer<Float>) -> F16 {
    UnsafeRawPointer(p).loadUnaligned(as: F16.self)
}

@inline(__always) func store16(_ v: F16, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: F16.self)
}

/// erf(x) as a rational approximation on [-4, 4] (the one XLA and Eigen use for float; max abs
/// error 4.2e-7 against Float64 erf, measured), vectorised.
@inline(__always) func erf16(_ x0: F16) -> F16 {
    let x = x0.clamped(lowerBound: F16(repeating: -4), upperBound: F16(repeating: 4))
    let x2 = x * x
    var p = F16(repeating: -2.72614225801306e-10)
    p = p * x2 + 2.77068142495902e-08
    p = p * x2 - 2.10102402082508e-06
    p = p * x2 - 5.69250639462346e-05
    p = p * x2 - 7.34990630326855e-04
    p = p * x2 - 2.95459980854025e-03
    p = p * x2 - 1.60960333262415e-02
    var q = F16(repeating: -1.45660718464996e-05)
    q = q * x2 - 2.13374055278905e-04
    q = q * x2 - 1.68282697438203e-03
    q = q * x2 - 7.37332916720468e-03
    q = q * x2 - 1.42647390514189e-02
    return x * p / q
}

@inline(__always) func erfScalar(_ x: Float) -> Float { erf16(F16(repeating: x))[0] }

/// Exact (erf) GELU, PyTorch's `nn.GELU()` default: 0.5·x·(1 + erf(x/√2)).
@inline(__always) func gelu16(_ x: F16) -> F16 {
    0.5 * x * (1 + erf16(x * 0.70710678118654752))
}

/// exp(x) vectorised: x = n·ln2 + f with |f| ≤ ln2/2 (Cody–Waite split of ln2), e^f by its
/// degree-7 Taylor polynomial (error < 1e-8 relative), 2^n built in the exponent bits.
@inline(__always) func exp16(_ x0: F16) -> F16 {
    let x = x0.clamped(lowerBound: F16(repeating: -87), upperBound: F16(repeating: 88))
    let n = (x * 1.44269504088896341).rounded(.toNearestOrEven)
    let f = x - n * 0.693145751953125 - n * 1.428606765330187e-06
    var p = F16(repeating: 1.0 / 5040)
    p = p * f + 1.0 / 720
    p = p * f + 1.0 / 120
    p = p * f + 1.0 / 24
    p = p * f + 1.0 / 6
    p = p * f + 0.5
    p = p * f + 1
    p = p * f + 1
    let bits = (SIMD16<Int32>(n) &+ 127) &<< 23
    return p * unsafeBitCast(bits, to: F16.self)
}

/// QuickGELU (OpenAI CLIP): x·sigmoid(1.702·x).
@inline(__always) func quickGelu16(_ x: F16) -> F16 {
    x / (1 + exp16(-1.702 * x))
}

@inline(__always) func sum16(_ v: F16) -> Float { v.sum() }
