// Depthwise 2-D convolution, channels-last, stride 1, zero padding: ConvNeXt's 7×7 token mixer.
// The vectorised row loop (register tiles of 8 output columns × one vector of channels, clamped
// kernel rows, one-column border path) is `depthwise_conv_rows` in the C kernels.

extension Ops {
    /// x: [N, H, W, C]; weight: [kH, kW, C]; bias: [C] or nil → [N, H+2p−kH+1, W+2p−kW+1, C].
    public static func depthwiseConv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, padding: Int) throws -> Tensor {
        try require(x.rank == 4, "depthwiseConv2d: input must be [N, H, W, C], got \(x.shape)")
        try require(weight.rank == 3 && weight.shape[2] == x.shape[3],
                    "depthwiseConv2d: weight \(weight.shape) for input \(x.shape) (need [kH, kW, C])")
        try require(padding >= 0, "depthwiseConv2d: negative padding \(padding)")
        let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (kh, kw) = (weight.shape[0], weight.shape[1])
        let (oh, ow) = (h + 2 * padding - kh + 1, w + 2 * padding - kw + 1)
        try require(kh >= 1 && kw >= 1 && oh >= 1 && ow >= 1,
                    "depthwiseConv2d: kernel \(kh)×\(kw) with padding \(padding) does not fit input \(x.shape)")
        if let bias { try require(bias.shape == [c], "depthwiseConv2d: bias \(bias.shape) for \(c) channels") }
        let out = Tensor(uninitializedShape: [n, oh, ow, c])
        let src = x.storage.pointer, wp = weight.storage.pointer, dst = out.storage.pointer
        let bp = bias.map { UnsafePointer($0.storage.pointer) }
        chunks(n * oh, workPerItem: 2 * ow * c * kh * kw) { rows in
            kernels.depthwise_conv_rows(src, wp, bp, dst, h, w, c, kh, kw, padding, oh, ow, rows.lowerBound, rows.upperBound)
        }
        return out
    }
}
