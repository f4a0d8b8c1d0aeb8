// Backward of `depthwiseConv2d` (DepthwiseConv.swift): channels-last, stride 1, zero padding.
//   y[n, i, j, c] = b[c] + Σ_{ky,kx} x[n, i+ky−p, j+kx−p, c] · w[ky, kx, c]
//   dx[n, u, v, c] = Σ_{ky,kx} dy[n, u−ky+p, v−kx+p, c] · w[ky, kx, c]
//   dw[ky, kx, c]  = Σ_{n,i,j} dy[n, i, j, c] · x[n, i+ky−p, j+kx−p, c]
// dw/db in the C kernels (vectorised over channels, each thread its own sums); dx as a forward
// convolution of dy with the flipped kernel.

extension Ops {
    /// x: [N, H, W, C] (the forward's input); weight: [kH, kW, C] (the engine's layout); dy: the
    /// forward's output shape. Adds dw (in PyTorch's layout [C, 1, kH, kW]) and db into the given
    /// buffers; returns dx when `inputGrad`.
    public static func depthwiseConv2dBackward(_ dy: Tensor, input x: Tensor, weight: Tensor, padding: Int,
                                               weightGrad: UnsafeMutablePointer<Float>?, biasGrad: UnsafeMutablePointer<Float>?,
                                               inputGrad: Bool = true) throws -> Tensor? {
        try require(x.rank == 4 && weight.rank == 3 && weight.shape[2] == x.shape[3] && padding >= 0,
                    "depthwiseConv2dBackward: input \(x.shape), weight \(weight.shape), padding \(padding)")
        let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (kh, kw) = (weight.shape[0], weight.shape[1])
        let (oh, ow) = (h + 2 * padding - kh + 1, w + 2 * padding - kw + 1)
        try require(dy.shape == [n, oh, ow, c], "depthwiseConv2dBackward: dy \(dy.shape) for input \(x.shape) (need [\(n), \(oh), \(ow), \(c)])")
        let xp = x.storage.pointer, gp = dy.storage.pointer

        if weightGrad != nil || biasGrad != nil {
            // Each thread sums its rows into its own [kH·kW·C + C] buffer (engine layout), reduced at the end.
            let rows = n * oh, stride = (kh * kw + 1) * c
            let parts = max(1, min(Parallel.budget, rows * ow * c * kh * kw / 2_000_000))
            let partial = UnsafeMutablePointer<Float>.allocate(capacity: parts * stride)
            partial.initialize(repeating: 0, count: parts * stride)
            defer { partial.deallocate() }
            let withBias = biasGrad != nil
            Parallel.run(parts) { part in
                let dw = partial + part * stride
                kernels.depthwise_weight_grad_rows(xp, gp, dw, withBias ? dw + kh * kw * c : nil, h, w, c, kh, kw, padding, oh, ow,
                                                   rows * part / parts, rows * (part + 1) / parts)
            }
            for part in 0..<parts {
                let dw = partial + part * stride, db = dw + kh * kw * c
                if let weightGrad {
                    for ch in 0..<c { for t in 0..<(kh * kw) { weightGrad[ch * kh * kw + t] += dw[t * c + ch] } }
                }
                if let biasGrad { for ch in 0..<c { biasGrad[ch] += db[ch] } }
            }
        }

        guard inputGrad else { return nil }
        // dx is the forward convolution of dy with the kernel flipped in both axes and padding
        // kH − 1 − p (stride 1): the fast forward kernel computes it.
        try require(kh == kw && padding == kh / 2 && kh % 2 == 1,
                    "depthwiseConv2dBackward: input gradient needs an odd square kernel with 'same' padding, got \(kh)×\(kw), padding \(padding)")
        let flipped = Tensor(uninitializedShape: weight.shape)
        let wp = weight.storage.pointer, fp = flipped.storage.pointer
        for ky in 0..<kh {
            for kx in 0..<kw {
                (fp + (ky * kw + kx) * c).update(from: wp + ((kh - 1 - ky) * kw + (kw - 1 - kx)) * c, count: c)
            }
        }
        return try depthwiseConv2d(dy, weight: flipped, bias: nil, padding: kh - 1 - padding)
    }
}
