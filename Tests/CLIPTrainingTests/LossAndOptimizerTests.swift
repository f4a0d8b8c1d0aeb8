import CLIPEngine
import CLIPNN
import CLIPTraining
import Foundation
import XCTest

final class LossAndOptimizerTests: XCTestCase {
    /// ClipLoss in Float64 from its definition, for finite differences.
    static func clipLoss(_ img: [Double], _ txt: [Double], _ s: Double, n: Int, e: Int) -> Double {
        var logits = [[Double]](repeating: [Double](repeating: 0, count: n), count: n)
        for i in 0..<n { for j in 0..<n { logits[i][j] = exp(s) * (0..<e).reduce(0.0) { $0 + img[i * e + $1] * txt[j * e + $1] } } }
        var total = 0.0
        for i in 0..<n {
            let row = logits[i], col = (0..<n).map { logits[$0][i] }
            total += log(row.reduce(0) { $0 + exp($1) }) - row[i]
            total += log(col.reduce(0) { $0 + exp($1) }) - col[i]
        }
        return total / Double(2 * n)
    }

    func testClipLossAndGradientsByFiniteDifferences() throws {
        var rng = SeededGenerator(seed: 31)
        for (n, e) in [(3, 5), (1, 4), (4, 7)] {
            let img = Ops.l2Normalize(Tensor.random(shape: [n, e], using: &rng))
            let txt = Ops.l2Normalize(Tensor.random(shape: [n, e], using: &rng))
            let s = Float.random(in: 1...3, using: &rng)
            let r = try ClipLoss.compute(image: img, text: txt, logitScale: s)
            let (id, td, sd) = (img.scalars.map(Double.init), txt.scalars.map(Double.init), Double(s))
            XCTAssertEqual(r.loss, Self.clipLoss(id, td, sd, n: n, e: e), accuracy: 1e-12)
            let h = 1e-6
            for i in 0..<(n * e) {
                var up = id, down = id
                up[i] += h; down[i] -= h
                let g = (Self.clipLoss(up, td, sd, n: n, e: e) - Self.clipLoss(down, td, sd, n: n, e: e)) / (2 * h)
                XCTAssertEqual(Double(r.dImage[flat: i]), g, accuracy: 1e-6 + 1e-5 * abs(g), "dImage[\(i)] n=\(n)")
                up = td; down = td
                up[i] += h; down[i] -= h
                let gt = (Self.clipLoss(id, up, sd, n: n, e: e) - Self.clipLoss(id, down, sd, n: n, e: e)) / (2 * h)
                XCTAssertEqual(Double(r.dText[flat: i]), gt, accuracy: 1e-6 + 1e-5 * abs(gt), "dText[\(i)] n=\(n)")
            }
            let gs = (Self.clipLoss(id, td, sd + h, n: n, e: e) - Self.clipLoss(id, td, sd - h, n: n, e: e)) / (2 * h)
            XCTAssertEqual(r.dLogitScale, gs, accuracy: 1e-7 + 1e-6 * abs(gs), "dlogit_scale n=\(n)")
            if n == 1 { XCTAssertEqual(r.loss, 0, accuracy: 1e-12, "one pair: both softmaxes are certain") }
        }
        XCTAssertThrowsError(try ClipLoss.compute(image: Tensor(zeros: [2, 3]), text: Tensor(zeros: [3, 3]), logitScale: 1))
    }

    /// open_clip_train/scheduler.py's tables, written by make_training_fixtures.py.
    func testSchedulesMatchOpenCLIPTrain() throws {
        let url = trainingFixtures.appendingPathComponent("schedules.json")
        let tables = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [[String: Any]])
        XCTAssertEqual(tables.count, 4)
        for t in tables {
            let kind = try XCTUnwrap(t["kind"] as? String), lrs = try XCTUnwrap(t["lr"] as? [Double])
            let base = try XCTUnwrap(t["base_lr"] as? Double), warmup = try XCTUnwrap(t["warmup"] as? Int)
            let steps = try XCTUnwrap(t["steps"] as? Int)
            let schedule: LearningRateSchedule
            switch kind {
            case "cosine": schedule = .cosine(baseLR: base, warmup: warmup, steps: steps)
            case "const": schedule = .const(baseLR: base, warmup: warmup)
            default:
                schedule = .constCooldown(baseLR: base, warmup: warmup, steps: steps, cooldownSteps: try XCTUnwrap(t["cooldown_steps"] as? Int),
                                          power: try XCTUnwrap(t["power"] as? Double), endLR: try XCTUnwrap(t["end_lr"] as? Double))
            }
            for (i, lr) in lrs.enumerated() {
                XCTAssertEqual(schedule.learningRate(at: i), lr, accuracy: 1e-18, "\(kind) step \(i)")
            }
        }
    }

    func testOpenCLIPTrainDefaultsAndParameterGroups() {
        XCTAssertEqual(AdamW.Settings.openCLIPDefaults(modelName: "ViT-B-32"),
                       AdamW.Settings(lr: 5e-4, beta1: 0.9, beta2: 0.98, eps: 1e-6, weightDecay: 0.2))
        XCTAssertEqual(AdamW.Settings.openCLIPDefaults(modelName: "convnext_v2_tiny"),
                       AdamW.Settings(lr: 5e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.2))
        let p = { (key: String, shape: [Int]) in Parameter(key: key, value: Tensor(zeros: shape)) }
        XCTAssertTrue(AdamW.excludedFromWeightDecay(p("visual.trunk.stages.0.blocks.0.norm.weight", [5])))
        XCTAssertTrue(AdamW.excludedFromWeightDecay(p("transformer.resblocks.0.ln_1.weight", [4])))
        XCTAssertTrue(AdamW.excludedFromWeightDecay(p("visual.head.proj.bias", [4])))
        XCTAssertTrue(AdamW.excludedFromWeightDecay(p("logit_scale", [])))
        XCTAssertTrue(AdamW.excludedFromWeightDecay(p("visual.ln_post.something", [3, 3])))     // "ln" in the name
        XCTAssertFalse(AdamW.excludedFromWeightDecay(p("token_embedding.weight", [10, 4])))
        XCTAssertFalse(AdamW.excludedFromWeightDecay(p("positional_embedding", [7, 4])))
        XCTAssertFalse(AdamW.excludedFromWeightDecay(p("visual.trunk.stages.0.blocks.0.conv_dw.weight", [5, 1, 7, 7])))
    }

    /// torch.optim.AdamW's update, stated in Float64, on one tensor over three steps.
    func testAdamWAgainstItsDefinition() throws {
        var rng = SeededGenerator(seed: 32)
        let w = Parameter(key: "w.weight", value: Tensor.random(shape: [3, 5], using: &rng))
        let b = Parameter(key: "w.bias", value: Tensor.random(shape: [5], using: &rng))
        let settings = AdamW.Settings(lr: 1e-2, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1)
        let opt = AdamW(parameters: [w, b], settings: settings)
        var ref = [w.value.scalars.map(Double.init), b.value.scalars.map(Double.init)]
        var m = ref.map { $0.map { _ in 0.0 } }, v = m
        for t in 1...3 {
            var grads: [[Double]] = []
            for p in [w, b] {
                let g = Tensor.random(shape: p.shape, using: &rng)
                try p.setGrad(g)
                grads.append(g.scalars.map(Double.init))
            }
            opt.step()
            for k in 0..<2 {
                let wd = k == 0 ? 0.1 : 0.0
                for i in ref[k].indices {
                    ref[k][i] *= 1 - 1e-2 * wd
                    m[k][i] = 0.9 * m[k][i] + 0.1 * grads[k][i]
                    v[k][i] = 0.99 * v[k][i] + 0.01 * grads[k][i] * grads[k][i]
                    let mh = m[k][i] / (1 - pow(0.9, Double(t))), vh = v[k][i] / (1 - pow(0.99, Double(t)))
                    ref[k][i] -= 1e-2 * mh / (vh.squareRoot() + 1e-8)
                }
            }
        }
        for (k, p) in [w, b].enumerated() {
            for i in 0..<p.count { XCTAssertEqual(Double(p.value[flat: i]), ref[k][i], accuracy: 1e-6, "\(p.key)[\(i)]") }
        }
        // Frozen parameters and parameters without a gradient are skipped.
        let frozen = Parameter(key: "f.weight", value: Tensor(repeating: 1, shape: [2, 2]))
        frozen.isFrozen = true
        try frozen.setGrad(Tensor(repeating: 1, shape: [2, 2]))
        let none = Parameter(key: "n.weight", value: Tensor(repeating: 1, shape: [2, 2]))
        AdamW(parameters: [frozen, none], settings: settings).step()
        XCTAssertEqual(frozen.value.scalars, [1, 1, 1, 1])
        XCTAssertEqual(none.value.scalars, [1, 1, 1, 1])
    }

    /// Moments reserved before the first step change no result, and a parameter that never got a
    /// gradient has no state to save (as in torch), reserved or not.
    func testReservedMomentsChangeNothing() throws {
        let settings = AdamW.Settings(lr: 1e-2, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1)
        func run(reserve: Bool) throws -> (values: [[Float]], saved: [String]) {
            var rng = SeededGenerator(seed: 33)
            let w = Parameter(key: "w.weight", value: Tensor.random(shape: [3, 5], using: &rng))
            let idle = Parameter(key: "idle.weight", value: Tensor.random(shape: [4, 4], using: &rng))
            let opt = AdamW(parameters: [w, idle], settings: settings)
            if reserve { opt.reserveState() }
            for _ in 0..<3 {
                try w.setGrad(Tensor.random(shape: w.shape, using: &rng))
                opt.step()
            }
            return ([w.value.scalars, idle.value.scalars], opt.exportState().tensors.keys.sorted())
        }
        let (plain, reserved) = (try run(reserve: false), try run(reserve: true))
        XCTAssertEqual(plain.values, reserved.values)
        XCTAssertEqual(reserved.saved, ["exp_avg.w.weight", "exp_avg_sq.w.weight"])
        XCTAssertEqual(plain.saved, reserved.saved)
    }

    func testClipGradNormAsTorch() throws {
        let a = Parameter(key: "a", value: Tensor(zeros: [2])), b = Parameter(key: "b", value: Tensor(zeros: [1]))
        try a.setGrad(Tensor(shape: [2], data: [3, 0]))
        try b.setGrad(Tensor(shape: [1], data: [4]))
        XCTAssertEqual(clipGradNorm([a, b], maxNorm: 1), 5, accuracy: 1e-6)
        XCTAssertEqual(Double(try XCTUnwrap(a.grad)[flat: 0]), 3 / (5 + 1e-6), accuracy: 1e-7)
        XCTAssertEqual(Double(try XCTUnwrap(b.grad)[flat: 0]), 4 / (5 + 1e-6), accuracy: 1e-7)
        // Below the limit nothing changes.
        XCTAssertEqual(clipGradNorm([a, b], maxNorm: 10), 1, accuracy: 1e-5)
        XCTAssertEqual(Double(try XCTUnwrap(b.grad)[flat: 0]), 4 / (5 + 1e-6), accuracy: 1e-7)
    }

    /// Adam's first step moves each value by lr·sign(g) exactly: from 4.6 upwards or from 0.3
    /// downwards by 1 must end on the clamp [0, ln 100].
    func testLogitScaleIsClampedToZeroAndLn100() throws {
        var triggered = 0
        for start: Float in [4.6, 0.3] {
            let f = try TrainingFixture("train_convnext_v2")
            try f.model.parameters.update(["logit_scale": Tensor(repeating: start, shape: [])])
            let trainer = CLIPTrainer(model: f.model, settings: AdamW.Settings(lr: 1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0),
                                      schedule: .const(baseLR: 1, warmup: 0))
            _ = try trainer.lossAndGradients(images: f.images, tokens: f.tokens)
            let g = try XCTUnwrap(f.model.logitScaleParameter.grad)[flat: 0]
            try trainer.step(images: f.images, tokens: f.tokens)
            if start > 1 && g < 0 { XCTAssertEqual(f.model.logitScale, Float(log(100.0))); triggered += 1 }
            if start < 1 && g > 0 { XCTAssertEqual(f.model.logitScale, 0); triggered += 1 }
        }
        XCTAssertGreaterThan(triggered, 0, "neither start pushed logit_scale out of [0, ln 100]")
    }
}
