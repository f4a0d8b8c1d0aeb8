import CLIPEngine
import CLIPModels
import CLIPNN
import Foundation

/// `swiftclip convert IN OUT`: weights and training checkpoints between safetensors, torch state
/// dicts (`.bin`, `.pth`) and open_clip_train's `epoch_K.pt`. The input's format is read from its
/// bytes; the output's from `target` or OUT's extension.
public enum CheckpointConversion {
    public enum Target: String, CaseIterable, Sendable {
        /// open_clip's `.safetensors` (fp32 weights).
        case safetensors
        /// `torch.save(model.state_dict())`: an OrderedDict of fp32 tensors (`.bin`, `.pth`).
        case stateDict = "state-dict"
        /// open_clip_train's `epoch_K.pt` (weights, epoch, name, AdamW state): from a SwiftCLIP
        /// training checkpoint (`epoch_K.safetensors` + its `.optimizer.safetensors`).
        case openCLIPTrain = "open-clip-train"
    }

    public struct Report: Equatable, Sendable {
        public var target: Target
        public var tensors: Int
        /// The epoch written into an `epoch_K.pt`.
        public var epoch: Int?

        public init(target: Target, tensors: Int, epoch: Int?) { self.target = target; self.tensors = tensors; self.epoch = epoch }
    }

    /// The target OUT's extension implies: `.safetensors`; `.bin`/`.pth` a state dict; `.pt` an
    /// open_clip_train checkpoint when the input is a training checkpoint, else a state dict.
    public static func defaultTarget(for output: URL, inputIsTrainingCheckpoint: Bool) -> Target? {
        switch output.pathExtension.lowercased() {
        case "safetensors": return .safetensors
        case "bin", "pth": return .stateDict
        case "pt": return inputIsTrainingCheckpoint ? .openCLIPTrain : .stateDict
        default: return nil
        }
    }

    public static func convert(_ input: URL, to output: URL, target: Target? = nil, model modelName: String? = nil,
                               name: String? = nil) throws -> Report {
        let format = try WeightFiles.format(of: input)
        let state = format == .safetensors ? try Checkpoint.state(of: input) : nil
        let isTraining = state != nil
        guard let target = target ?? defaultTarget(for: output, inputIsTrainingCheckpoint: isTraining) else {
            throw TensorError.invalidArgument("\(output.path): cannot tell the output format from the extension "
                                              + "'.\(output.pathExtension)'; give --to safetensors|state-dict|open-clip-train")
        }
        if input.standardizedFileURL.path == output.standardizedFileURL.path {
            throw TensorError.invalidArgument("\(output.path): the output would replace the input")
        }
        switch target {
        case .safetensors, .stateDict:
            let source = try WeightFiles.open(input)
            var tensors: [(String, Tensor)] = []
            for key in source.allKeys {
                guard let t = try source.tensor(forKey: key) else { continue }
                tensors.append((key, t))
            }
            if target == .safetensors {
                try Safetensors.write(Dictionary(uniqueKeysWithValues: tensors), metadata: ["format": "pt"], to: output)
            } else {
                try TorchCheckpointWriter.write(.orderedDict(tensors.map { ($0.0, .tensor($0.1)) }), to: output)
            }
            return Report(target: target, tensors: tensors.count, epoch: nil)
        case .openCLIPTrain:
            guard let state else {
                throw TensorError.invalidArgument("\(input.path): not a SwiftCLIP training checkpoint (no training state with "
                                                  + "AdamW's moments); an epoch_K.pt needs one (weights alone: --to state-dict)")
            }
            guard state.batchesDone == 0 else {
                throw TensorError.invalidArgument("\(input.path): written \(state.batchesDone) batches into epoch \(state.epoch + 1); "
                                                  + "open_clip_train resumes at epoch boundaries only: convert an epoch_K checkpoint")
            }
            let args = state.arguments
            guard let modelName = modelName ?? args["model"] else {
                throw TensorError.invalidArgument("\(input.path): its training state names no model; give --model")
            }
            let model = try CLIPModel(model: modelName, weightsURL: input)
            var settings = AdamW.Settings.openCLIPDefaults(modelName: modelName)
            func number(_ key: String) -> Double? { args[key].flatMap(Double.init) }
            if let v = number("lr") { settings.lr = v }
            if let v = number("beta1") { settings.beta1 = v }
            if let v = number("beta2") { settings.beta2 = v }
            if let v = number("eps") { settings.eps = v }
            if let v = number("wd") { settings.weightDecay = v }
            if args["lock_image"] == "true" || args["lock_text"] == "true" {
                throw TensorError.invalidArgument("\(input.path): trained with a locked tower; converting such a run's "
                                                  + "optimizer groups is not supported")
            }
            let optimizer = AdamW(parameters: model.parameters.parameters, settings: settings)
            try Checkpoint.restoreOptimizer(optimizer, from: input, state: state)
            let runName = name ?? args["name"] ?? input.deletingLastPathComponent().deletingLastPathComponent().lastPathComponent
            try OpenCLIPTrainCheckpoint.save(model: model, optimizer: optimizer, epoch: state.epoch, name: runName, to: output)
            return Report(target: target, tensors: model.weights.stateDict.count, epoch: state.epoch)
        }
    }
}
