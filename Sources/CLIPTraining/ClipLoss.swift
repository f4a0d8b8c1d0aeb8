import CLIPEngine
import Foundation

/// open_clip's `ClipLoss` on one process: logits = exp(logit_scale) · I·Tᵀ on L2-normalised
/// features, cross-entropy with labels 0..<N over rows (image → text) and over columns
/// (text → image), averaged. Computed in Double (N×N is small next to the towers).
public enum ClipLoss {
    public struct Result {
        public let loss: Double
        /// ∂loss/∂(normalised image features) [N, E], ∂loss/∂(normalised text features) [N, E].
        public let dImage: Tensor, dText: Tensor
        /// ∂loss/∂logit_scale (the raw parameter, before exp).
        public let dLogitScale: Double
        public let logitsPerImage: [[Double]]
    }

    public static func compute(image: Tensor, text: Tensor, logitScale: Float) throws -> Result {
        guard image.rank == 2, image.shape == text.shape, image.shape[0] > 0 else {
            throw TensorError.shapeMismatch("ClipLoss: image features \(image.shape) and text features \(text.shape) must both be [N, E], N > 0")
        }
        let (n, e) = (image.shape[0], image.shape[1])
        let scale = Foundation.exp(Double(logitScale))
        let ip = image.storage.pointer, tp = text.storage.pointer
        var logits = [[Double]](repeating: [Double](repeating: 0, count: n), count: n)
        for i in 0..<n {
            for j in 0..<n {
                var dot = 0.0
                for k in 0..<e { dot += Double(ip[i * e + k]) * Double(tp[j * e + k]) }
                logits[i][j] = scale * dot
            }
        }
        // Softmax over rows and over columns; loss terms.
        var rowP = logits, colP = logits
        var lossI = 0.0, lossT = 0.0
        for i in 0..<n {
            let m = logits[i].max()!
            let z = logits[i].reduce(0) { $0 + Foundation.exp($1 - m) }
            for j in 0..<n { rowP[i][j] = Foundation.exp(logits[i][j] - m) / z }
            lossI += m + Foundation.log(z) - logits[i][i]
        }
        for j in 0..<n {
            var m = -Double.infinity
            for i in 0..<n { m = max(m, logits[i][j]) }
            var z = 0.0
            for i in 0..<n { z += Foundation.exp(logits[i][j] - m) }
            for i in 0..<n { colP[i][j] = Foundation.exp(logits[i][j] - m) / z }
            lossT += m + Foundation.log(z) - logits[j][j]
        }
        let loss = (lossI + lossT) / Double(2 * n)
        // dL[i][j] = (rowP − δ + colP − δ) / 2N
        var dL = logits
        var dScale = 0.0
        for i in 0..<n {
            for j in 0..<n {
                let delta = i == j ? 1.0 : 0.0
                dL[i][j] = (rowP[i][j] - delta + colP[i][j] - delta) / Double(2 * n)
                dScale += dL[i][j] * logits[i][j]
            }
        }
        let dImage = Tensor(uninitializedShape: [n, e]), dText = Tensor(uninitializedShape: [n, e])
        let di = dImage.storage.pointer, dt = dText.storage.pointer
        for i in 0..<n {
            for k in 0..<e {
                var a = 0.0, b = 0.0
                for j in 0..<n {
                    a += dL[i][j] * Double(tp[j * e + k])
                    b += dL[j][i] * Double(ip[j * e + k])
                }
                di[i * e + k] = Float(scale * a)
                dt[i * e + k] = Float(scale * b)
            }
        }
        return Result(loss: loss, dImage: dImage, dText: dText, dLogitScale: dScale, logitsPerImage: logits)
    }
}
