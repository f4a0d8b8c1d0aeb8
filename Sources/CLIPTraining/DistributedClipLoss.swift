import CLIPDistributed
import CLIPEngine
import Foundation

/// open_clip's `ClipLoss` with `world_size > 1`: every rank's L2-normalised features all-gathered
/// (`gather_features`), then either
///
/// - the global loss over all B = Σ nᵣ pairs (the default): every rank computes the same B×B
///   loss; or
/// - `localLoss`: rank r's nᵣ rows against all B columns, labels offset by its first row
///   (`logits_per_image = s · Iᵣ · Tᵀ`, `logits_per_text = s · Tᵣ · Iᵀ`).
///
/// Gradients to the local features follow open_clip's autograd: without `gatherWithGrad` the
/// gathered copies are constants except this rank's own slot (`all_image_features[rank] =
/// image_features`); with it, `torch.distributed.nn.all_gather`'s backward sums (reduce-scatter)
/// every rank's gradient with respect to this rank's rows. After the gradient allreduce averages
/// over ranks, both `gatherWithGrad` modes give exactly the gradient of the single-process loss
/// on the global batch; without `gatherWithGrad`, the towers' gradients are 1/W of it (as in
/// open_clip) while logit_scale's is whole.
public enum DistributedClipLoss {
    public struct Result {
        /// The loss over the global batch (with `localLoss`: the row-weighted mean of the ranks'
        /// local losses, which is the same number).
        public let loss: Double
        /// ∂(this rank's loss)/∂(its normalised features), as open_clip's autograd delivers them.
        public let dImage: Tensor, dText: Tensor
        /// ∂(this rank's loss)/∂logit_scale.
        public let dLogitScale: Double
        /// Pairs in the global batch.
        public let globalBatch: Int
    }

    public static func compute(image: Tensor, text: Tensor, logitScale: Float, communicator c: Communicator,
                               gatherWithGrad: Bool, localLoss: Bool) throws -> Result {
        guard image.rank == 2, image.shape == text.shape, image.shape[0] > 0 else {
            throw TensorError.shapeMismatch("ClipLoss: image features \(image.shape) and text features \(text.shape) must both be [N, E], N > 0")
        }
        let (n, e) = (image.shape[0], image.shape[1])
        let gi = try c.allgatherRows(image.storage.pointer, count: n, columns: e)
        let gt = try c.allgatherRows(text.storage.pointer, count: n, columns: e)
        let b = gi.counts.reduce(0, +)
        let offset = gi.counts[..<c.rank].reduce(0, +)
        let allImage = try Tensor(shape: [b, e], data: gi.values), allText = try Tensor(shape: [b, e], data: gt.values)
        let rows = offset..<(offset + n)

        if !localLoss {
            let r = try ClipLoss.compute(image: allImage, text: allText, logitScale: logitScale)
            // The reduce-scatter of W identical copies of the gradient is W times this rank's slice.
            let factor: Float = gatherWithGrad ? Float(c.size) : 1
            return Result(loss: r.loss, dImage: scaled(try r.dImage.slice(rows: rows), factor), dText: scaled(try r.dText.slice(rows: rows), factor),
                          dLogitScale: r.dLogitScale, globalBatch: b)
        }
        let r = try ClipLoss.computeLocal(image: image, text: text, allImage: allImage, allText: allText, rowOffset: offset, logitScale: logitScale)
        let dImage: Tensor, dText: Tensor
        if gatherWithGrad {
            // all_gather's backward: the sum over ranks of every rank's gradient for these rows.
            let i = try c.reduceScatterRows(r.dAllImage.storage.pointer, counts: gi.counts, columns: e)
            let t = try c.reduceScatterRows(r.dAllText.storage.pointer, counts: gi.counts, columns: e)
            dImage = try Ops.add(r.dImage, Tensor(shape: [n, e], data: i))
            dText = try Ops.add(r.dText, Tensor(shape: [n, e], data: t))
        } else {
            // Only this rank's slot of the gathered features is live.
            dImage = try Ops.add(r.dImage, try r.dAllImage.slice(rows: rows))
            dText = try Ops.add(r.dText, try r.dAllText.slice(rows: rows))
        }
        let weighted = try c.allreduceSum([r.loss * Double(n)])[0] / Double(b)
        return Result(loss: weighted, dImage: dImage, dText: dText, dLogitScale: r.dLogitScale, globalBatch: b)
    }

    static func scaled(_ t: Tensor, _ factor: Float) -> Tensor {
        guard factor != 1 else { return t }
        var out = t
        out.withUnsafeMutableBufferPointer { p in for i in p.indices { p[i] *= factor } }
        return out
    }
}

extension ClipLoss {
    public struct LocalResult {
        public let loss: Double
        /// Through the local rows (queries): [n, E] each.
        public let dImage: Tensor, dText: Tensor
        /// Through the gathered features (keys): [B, E] each.
        public let dAllImage: Tensor, dAllText: Tensor
        public let dLogitScale: Double
    }

    /// open_clip's `local_loss=True`: logits_per_image = s·I·allTᵀ and logits_per_text = s·T·allIᵀ
    /// ([n, B]), labels rowOffset + i, loss = (CE(rows of the first) + CE(rows of the second)) / 2,
    /// each averaged over the n rows. Computed in Double like `compute`.
    public static func computeLocal(image: Tensor, text: Tensor, allImage: Tensor, allText: Tensor, rowOffset: Int,
                                    logitScale: Float) throws -> LocalResult {
        let (n, e) = (image.shape[0], image.shape[1]), b = allImage.shape[0]
        guard image.shape == text.shape, allImage.shape == allText.shape, allImage.shape[1] == e, rowOffset >= 0, rowOffset + n <= b else {
            throw TensorError.shapeMismatch("local ClipLoss: features \(image.shape) / \(text.shape), gathered \(allImage.shape) / \(allText.shape), offset \(rowOffset)")
        }
        let scale = Foundation.exp(Double(logitScale))
        // One direction: queries q [n, E] against keys k [B, E]; returns the loss sum, ∂/∂q, ∂/∂k, ∂/∂(raw scale).
        func direction(_ q: UnsafePointer<Float>, _ k: UnsafePointer<Float>) -> (Double, [Double], [Double], Double) {
            var loss = 0.0, dScale = 0.0
            var dq = [Double](repeating: 0, count: n * e), dk = [Double](repeating: 0, count: b * e)
            var logits = [Double](repeating: 0, count: b)
            for i in 0..<n {
                for j in 0..<b {
                    var dot = 0.0
                    for x in 0..<e { dot += Double(q[i * e + x]) * Double(k[j * e + x]) }
                    logits[j] = scale * dot
                }
                let m = logits.max()!
                let z = logits.reduce(0) { $0 + Foundation.exp($1 - m) }
                loss += m + Foundation.log(z) - logits[rowOffset + i]
                for j in 0..<b {
                    let g = (Foundation.exp(logits[j] - m) / z - (j == rowOffset + i ? 1 : 0)) / Double(2 * n)
                    dScale += g * logits[j]
                    for x in 0..<e {
                        dq[i * e + x] += scale * g * Double(k[j * e + x])
                        dk[j * e + x] += scale * g * Double(q[i * e + x])
                    }
                }
            }
            return (loss, dq, dk, dScale)
        }
        let (lossI, dI, dAllT, sI) = direction(image.storage.pointer, allText.storage.pointer)
        let (lossT, dT, dAllI, sT) = direction(text.storage.pointer, allImage.storage.pointer)
        func tensor(_ v: [Double], _ shape: [Int]) throws -> Tensor { try Tensor(shape: shape, data: v.map(Float.init)) }
        return LocalResult(loss: (lossI + lossT) / Double(2 * n), dImage: try tensor(dI, [n, e]), dText: try tensor(dT, [n, e]),
                           dAllImage: try tensor(dAllI, [b, e]), dAllText: try tensor(dAllT, [b, e]), dLogitScale: sI + sT)
    }
}
