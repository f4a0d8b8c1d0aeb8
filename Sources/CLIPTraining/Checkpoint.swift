import CLIPEngine
import CLIPModels
import CLIPNN
import Foundation

/// A checkpoint ready to be written (`Checkpoint.prepare`). `write()` writes the optimizer file,
/// then the weights file, each atomically, and lets go of the tensors when it returns.
public final class PendingCheckpoint: @unchecked Sendable {
    public let url: URL
    private var contents: (moments: [String: Tensor], momentsMetadata: [String: String],
                           weights: [String: Tensor], weightsMetadata: [String: String])?

    init(url: URL, moments: [String: Tensor], momentsMetadata: [String: String], weights: [String: Tensor],
         weightsMetadata: [String: String]) {
        self.url = url
        contents = (moments, momentsMetadata, weights, weightsMetadata)
    }

    public func write() throws {
        // Released before returning: a tensor still referenced here would make the optimizer's
        // next in-place update copy it.
        defer { contents = nil }
        guard let c = contents else { return }
        try Safetensors.write(c.moments, metadata: c.momentsMetadata, to: Checkpoint.optimizerURL(for: url))
        try Safetensors.write(c.weights, metadata: c.weightsMetadata, to: url)
    }
}

/// Where a run stands, stored with its checkpoint (as JSON in the safetensors metadata).
public struct TrainingState: Codable, Equatable, Sendable {
    /// Completed epochs; with `batchesDone` > 0, the epoch in progress is `epoch` and its first
    /// `batchesDone` batches are done (a checkpoint written on interruption).
    public var epoch: Int
    public var batchesDone: Int
    /// The trainer's step (the schedule's step).
    public var step: Int
    /// The trainer's generator (stochastic depth), `SeededGenerator.snapshot`.
    public var rng: [UInt64]
    /// AdamW's step count per parameter key.
    public var optimizerSteps: [String: Int]
    /// The run's arguments (flag name → value), for the record and for checking a resume.
    public var arguments: [String: String]
    /// Ties the weights file to its optimizer file.
    public var checkpointID: String
    /// Data parallel: every rank's generator, in rank order (`rng` is rank 0's); nil for one process.
    public var rankRNG: [[UInt64]]? = nil

    public init(epoch: Int, batchesDone: Int, step: Int, rng: [UInt64], optimizerSteps: [String: Int],
                arguments: [String: String], checkpointID: String, rankRNG: [[UInt64]]? = nil) {
        self.epoch = epoch; self.batchesDone = batchesDone; self.step = step; self.rng = rng
        self.optimizerSteps = optimizerSteps; self.arguments = arguments; self.checkpointID = checkpointID; self.rankRNG = rankRNG
    }
}

/// A training checkpoint is two safetensors files written atomically (temporary file, fsync,
/// rename), the optimizer file first:
///
/// - `NAME.safetensors`: the model's weights under open_clip's `state_dict()` keys — loadable by
///   `--weights`, `--pretrained` and open_clip's `load_checkpoint` — with the `TrainingState` as
///   JSON in its metadata (`swiftclip.training_state`);
/// - `NAME.optimizer.safetensors`: AdamW's moments (`exp_avg.KEY`, `exp_avg_sq.KEY`), with the
///   same checkpoint id in its metadata.
///
/// A crash between the two renames leaves the previous weights file in place and a newer
/// optimizer file whose id does not match it; resuming from such a pair is refused, naming both.
public enum Checkpoint {
    public static let stateKey = "swiftclip.training_state"
    static let idKey = "swiftclip.checkpoint_id"

    public static func optimizerURL(for url: URL) -> URL {
        let base = url.deletingPathExtension()
        return base.appendingPathExtension("optimizer").appendingPathExtension("safetensors")
    }

    public static func save(model: CLIPModel, optimizer: AdamW, state: TrainingState, to url: URL) throws {
        try prepare(model: model, optimizer: optimizer, state: state, to: url).write()
    }

    /// A checkpoint's contents gathered now — the state, and references to the live weight and
    /// moment tensors — to be written by `write()`, on another thread if need be, as long as
    /// nothing changes those tensors until it returns.
    public static func prepare(model: CLIPModel, optimizer: AdamW, state: TrainingState, to url: URL) throws -> PendingCheckpoint {
        let (moments, steps) = optimizer.exportState()
        var state = state
        state.optimizerSteps = steps
        let json = String(decoding: try JSONEncoder.sorted.encode(state), as: UTF8.self)
        return PendingCheckpoint(url: url, moments: moments, momentsMetadata: [idKey: state.checkpointID],
                                 weights: model.weights.stateDictionary, weightsMetadata: [stateKey: json, "format": "pt"])
    }

    /// The state stored in a checkpoint's weights file; nil for plain open_clip weights.
    public static func state(of url: URL) throws -> TrainingState? {
        let file = try SafetensorsFile.read(url)
        guard let json = file.metadata[stateKey] else { return nil }
        do { return try JSONDecoder().decode(TrainingState.self, from: Data(json.utf8)) } catch {
            throw TensorError.invalidArgument("\(url.path): unreadable training state in its metadata (\(error))")
        }
    }

    /// Restores AdamW's moments from the checkpoint at `url` (written by `save`).
    public static func restoreOptimizer(_ optimizer: AdamW, from url: URL, state: TrainingState) throws {
        let optURL = optimizerURL(for: url)
        guard FileManager.default.fileExists(atPath: optURL.path) else {
            throw TensorError.invalidArgument("\(url.path): its optimizer state \(optURL.lastPathComponent) is missing")
        }
        let file = try SafetensorsFile.read(optURL)
        guard file.metadata[idKey] == state.checkpointID else {
            throw TensorError.invalidArgument("\(optURL.path) does not belong to \(url.path) (checkpoint ids differ: an interrupted save?)")
        }
        try optimizer.importState(tensors: file.tensors(), steps: state.optimizerSteps, source: optURL.path)
    }

    /// Removes a checkpoint's two files (missing ones are fine).
    public static func delete(_ url: URL) {
        try? FileManager.default.removeItem(at: url)
        try? FileManager.default.removeItem(at: optimizerURL(for: url))
    }
}

extension JSONEncoder {
    static var sorted: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }
}
