// Residual branch with per-channel layer scale (ConvNeXt V1's `gamma`) and per-sample
// stochastic-depth factors (timm's drop_path: 0 for a dropped sample, 1/keep for a kept one):
//   out[n, …, c] = x[n, …, c] + s[n] · γ[c] · u[n, …, c]
// and its backward. Plain loops.

extension Ops {
    /// x += s[n]·γ[c]·u in place. x, u: [N, …, C]; `sampleScale`: N factors or nil (all 1);
    /// `channelScale`: [C] or nil (all 1).
    public static func addScaledBranch(_ x: inout Tensor, _ u: Tensor, sampleScale: [Float]?, channelScale: Tensor?) throws {
        try require(x.shape == u.shape && x.rank >= 2, "addScaledBranch: x \(x.shape) and branch \(u.shape)")
        let (n, c) = (x.shape[0], x.shape.last!)
        let perSample = x.count / max(n, 1)
        if let s = sampleScale { try require(s.count == n, "addScaledBranch: \(s.count) sample factors for batch \(n)") }
        if let g = channelScale { try require(g.shape == [c], "addScaledBranch: channel scale \(g.shape) for \(c) channels") }
        let up = u.storage.pointer, gp = channelScale?.storage.pointer
        x.withUnsafeMutableBufferPointer { buf in
            let xp = buf.baseAddress!
            for b in 0..<n {
                let s = sampleScale?[b] ?? 1
                if s == 0 { continue }
                let base = b * perSample
                for i in stride(from: 0, to: perSample, by: c) {
                    for ch in 0..<c { xp[base + i + ch] += s * (gp?[ch] ?? 1) * up[base + i + ch] }
                }
            }
        }
    }

    /// Backward of `addScaledBranch` for the branch: returns du = dOut·s[n]·γ[c]; adds
    /// dγ[c] += Σ dOut·s[n]·u when `channelScaleGrad` is given. (dx is dOut itself.)
    public static func scaledBranchBackward(_ dOut: Tensor, branch u: Tensor, sampleScale: [Float]?, channelScale: Tensor?,
                                            channelScaleGrad: UnsafeMutablePointer<Float>?) throws -> Tensor {
        try require(dOut.shape == u.shape && u.rank >= 2, "scaledBranchBackward: dOut \(dOut.shape) and branch \(u.shape)")
        let (n, c) = (u.shape[0], u.shape.last!)
        let perSample = u.count / max(n, 1)
        if let s = sampleScale { try require(s.count == n, "scaledBranchBackward: \(s.count) sample factors for batch \(n)") }
        if let g = channelScale { try require(g.shape == [c], "scaledBranchBackward: channel scale \(g.shape) for \(c) channels") }
        let du = Tensor(uninitializedShape: u.shape)
        let gp = dOut.storage.pointer, up = u.storage.pointer, dp = du.storage.pointer, cp = channelScale?.storage.pointer
        var acc = [Double](repeating: 0, count: c)
        for b in 0..<n {
            let s = sampleScale?[b] ?? 1
            let base = b * perSample
            for i in stride(from: 0, to: perSample, by: c) {
                for ch in 0..<c {
                    let g = gp[base + i + ch] * s
                    dp[base + i + ch] = g * (cp?[ch] ?? 1)
                    if channelScaleGrad != nil { acc[ch] += Double(g * up[base + i + ch]) }
                }
            }
        }
        if let channelScaleGrad { for ch in 0..<c { channelScaleGrad[ch] += Float(acc[ch]) } }
        return du
    }
}
