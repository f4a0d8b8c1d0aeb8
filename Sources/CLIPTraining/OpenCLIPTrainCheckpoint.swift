import CLIPEngine
import CLIPModels
import CLIPNN
import Foundation

/// open_clip_train's checkpoint, `epoch_K.pt`: `torch.save({"epoch", "name", "state_dict",
/// "optimizer"})` with the optimizer's `state_dict()` in torch's layout — `state` keyed by the
/// parameter's index in open_clip_train's two groups (the no-decay "gain or bias" parameters in
/// `named_parameters()` order, then the rest), each `{"step": tensor, "exp_avg", "exp_avg_sq"}`,
/// and `param_groups` as torch 2.x writes them. Written so that `python -m open_clip_train.main
/// --resume epoch_K.pt` continues a SwiftCLIP run, and read so that `swiftclip train --resume`
/// continues an open_clip_train run.
public enum OpenCLIPTrainCheckpoint {
    /// open_clip_train.main's parameter groups: `ordered` (in `named_parameters()` order) less the
    /// frozen ones and those the optimizer does not hold, split by its weight-decay rule.
    public static func parameterGroups(_ ordered: [Parameter], optimizer: AdamW) -> (noDecay: [Parameter], decay: [Parameter]) {
        let held = Set(optimizer.parameters.map(ObjectIdentifier.init))
        let trainable = ordered.filter { !$0.isFrozen && held.contains(ObjectIdentifier($0)) }
        return (trainable.filter(AdamW.excludedFromWeightDecay), trainable.filter { !AdamW.excludedFromWeightDecay($0) })
    }

    /// Writes `epoch_K.pt`: the model's weights (fp32), `epoch` (completed epochs), `name`, and
    /// AdamW's state and settings (`lr` as the groups held it at the last step).
    public static func save(model: CLIPModel, optimizer: AdamW, epoch: Int, name: String, learningRate: Double? = nil,
                            to url: URL) throws {
        let (noDecay, decay) = parameterGroups(model.openCLIPParameterOrder, optimizer: optimizer)
        let (moments, steps) = optimizer.exportState()
        var state: [(key: TorchSaveValue, value: TorchSaveValue)] = []
        for (index, p) in (noDecay + decay).enumerated() {
            guard let step = steps[p.key], let m = moments["exp_avg." + p.key], let v = moments["exp_avg_sq." + p.key] else { continue }
            state.append((.int(index), .dict([
                (.string("step"), .tensor(Tensor(repeating: Float(step), shape: []))),
                (.string("exp_avg"), .tensor(m)),
                (.string("exp_avg_sq"), .tensor(v)),
            ])))
        }
        let s = optimizer.settings
        func group(_ params: ArraySlice<Int>, weightDecay: Double) -> TorchSaveValue {
            .dict([
                (.string("weight_decay"), .float(weightDecay)),
                (.string("lr"), .float(learningRate ?? s.lr)),
                (.string("betas"), .tuple([.float(s.beta1), .float(s.beta2)])),
                (.string("eps"), .float(s.eps)),
                (.string("amsgrad"), .bool(false)),
                (.string("maximize"), .bool(false)),
                (.string("foreach"), .none),
                (.string("capturable"), .bool(false)),
                (.string("differentiable"), .bool(false)),
                (.string("fused"), .none),
                (.string("decoupled_weight_decay"), .bool(true)),
                (.string("params"), .list(params.map { .int($0) })),
            ])
        }
        let indices = Array(0..<(noDecay.count + decay.count))
        let optimizerState: TorchSaveValue = .dict([
            (.string("state"), .dict(state)),
            (.string("param_groups"), .list([group(indices[..<noDecay.count], weightDecay: 0),
                                             group(indices[noDecay.count...], weightDecay: s.weightDecay)])),
        ])
        // state_dict() order, which the optimizer's indices follow (and a reader may rely on).
        let weights: TorchSaveValue = .orderedDict(model.openCLIPParameterOrder.map { ($0.key, .tensor($0.value)) })
        try TorchCheckpointWriter.write(.dict([
            (.string("epoch"), .int(epoch)),
            (.string("name"), .string(name)),
            (.string("state_dict"), weights),
            (.string("optimizer"), optimizerState),
        ]), to: url)
    }

    /// What `restore` read besides the tensors.
    public struct Info: Equatable {
        public var epoch: Int
        public var name: String?
        /// The steps AdamW has taken (the largest `step` in the optimizer state; 0 without one).
        public var optimizerStep: Int

        public init(epoch: Int, name: String?, optimizerStep: Int) {
            self.epoch = epoch; self.name = name; self.optimizerStep = optimizerStep
        }
    }

    /// Loads `url` (an open_clip_train `epoch_K.pt`) into `model` (strictly) and `optimizer`.
    public static func restore(model: CLIPModel, optimizer: AdamW, from url: URL) throws -> Info {
        let file = url.path
        func fail(_ key: String?, _ m: String) -> TorchCheckpointError { TorchCheckpointError(file: file, key: key, message: m) }
        let checkpoint = try TorchCheckpoint.read(url)
        guard case .int(let epoch)? = checkpoint.root["epoch"] else {
            throw fail(nil, "not an open_clip_train checkpoint: no int 'epoch' (a plain state dict goes to --pretrained)")
        }
        var name: String?
        if case .string(let n)? = checkpoint.root["name"] { name = n }
        var weights: [String: Tensor] = [:]
        let stateDict = try checkpoint.stateDict()
        for (k, t) in stateDict { weights[k] = try t.decode() }
        try model.parameters.update(weights, strict: true, source: file)
        // The optimizer's indices follow the writer's named_parameters() order: its state_dict's.
        let ordered = stateDict.compactMap { model.parameters[$0.key] }

        guard let opt = checkpoint.root["optimizer"] else { throw fail(nil, "has no 'optimizer' entry") }
        guard case .list(let groups)? = opt["param_groups"], groups.count == 2 else {
            throw fail("optimizer/param_groups", "expected open_clip_train's two parameter groups")
        }
        let (noDecay, decay) = parameterGroups(ordered, optimizer: optimizer)
        var byIndex: [Int: Parameter] = [:]
        for (g, (group, mine)) in zip(groups, [noDecay, decay]).enumerated() {
            guard case .list(let params)? = group["params"] else { throw fail("optimizer/param_groups/\(g)/params", "missing") }
            guard params.count == mine.count else {
                throw fail("optimizer/param_groups/\(g)", "holds \(params.count) parameters, this model's group has \(mine.count) "
                           + "(another model, or other towers locked?)")
            }
            for (i, p) in zip(params, mine) {
                guard case .int(let index) = i else { throw fail("optimizer/param_groups/\(g)/params", "holds a \(i.kind)") }
                byIndex[index] = p
            }
        }
        guard case .dict(let entries)? = opt["state"] else { throw fail("optimizer/state", "missing or not a dict") }
        var moments: [String: Tensor] = [:], steps: [String: Int] = [:]
        for (k, v) in entries {
            guard case .int(let index) = k, let p = byIndex[index] else { throw fail("optimizer/state", "key \(k) names no parameter") }
            let path = "optimizer/state/\(index) (\(p.key))"
            guard case .tensor(let m)? = v["exp_avg"], case .tensor(let s)? = v["exp_avg_sq"] else {
                throw fail(path, "exp_avg / exp_avg_sq missing or not tensors")
            }
            let step: Double
            switch v["step"] {
            case .tensor(let t)?: step = Double(try t.decode()[flat: 0])
            case .int(let i)?: step = Double(i)
            case .float(let f)?: step = f
            default: throw fail(path, "step missing")
            }
            guard step >= 0, step == step.rounded() else { throw fail(path, "step \(step) is not a count") }
            moments["exp_avg." + p.key] = try m.decode()
            moments["exp_avg_sq." + p.key] = try s.decode()
            steps[p.key] = Int(step)
        }
        try optimizer.importState(tensors: moments, steps: steps, source: file)
        return Info(epoch: epoch, name: name, optimizerStep: steps.values.max() ?? 0)
    }
}
