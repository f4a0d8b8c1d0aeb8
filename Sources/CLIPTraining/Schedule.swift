/// open_clip_train/scheduler.py's per-step learning rates (`--lr-scheduler`), step counted from 0
/// over the whole run (`num_batches_per_epoch · epoch + i`).
public enum LearningRateSchedule: Equatable, Sendable {
    /// `cosine_lr`: linear warmup, then 0.5·(1 + cos(π·e/es))·base with e = step − warmup, es = steps − warmup.
    case cosine(baseLR: Double, warmup: Int, steps: Int)
    /// `const_lr`: linear warmup, then base.
    case const(baseLR: Double, warmup: Int)
    /// `const_lr_cooldown`: warmup, base, then (1 − e/es)^power·(base − end) + end over the last
    /// `cooldownSteps` steps.
    case constCooldown(baseLR: Double, warmup: Int, steps: Int, cooldownSteps: Int, power: Double, endLR: Double)

    /// `_warmup_lr`: base·(step + 1)/warmup while step < warmup.
    static func warmupLR(_ base: Double, _ warmup: Int, _ step: Int) -> Double { base * Double(step + 1) / Double(warmup) }

    public func learningRate(at step: Int) -> Double {
        switch self {
        case let .cosine(base, warmup, steps):
            if step < warmup { return Self.warmupLR(base, warmup, step) }
            let e = Double(step - warmup), es = Double(steps - warmup)
            return 0.5 * (1 + cos(Double.pi * e / es)) * base
        case let .const(base, warmup):
            return step < warmup ? Self.warmupLR(base, warmup, step) : base
        case let .constCooldown(base, warmup, steps, cooldownSteps, power, endLR):
            if step < warmup { return Self.warmupLR(base, warmup, step) }
            let start = steps - cooldownSteps
            if step < start { return base }
            let e = Double(step - start), es = Double(steps - start)
            return pow(1 - e / es, power) * (base - endLR) + endLR
        }
    }
}

import Foundation
