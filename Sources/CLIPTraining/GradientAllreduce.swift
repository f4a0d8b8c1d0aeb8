import CLIPDistributed
import CLIPEngine
import CLIPNN
import Foundation

/// DistributedDataParallel's gradient averaging over MPI: after each rank's backward, every
/// trainable parameter's gradient becomes the mean over ranks. Gradients are packed into buckets
/// of about `bucketBytes` (DDP's 25 MB) and each bucket is summed with a non-blocking allreduce.
///
/// Overlap with the backward pass: the text tower's backward runs first, so its buckets (and
/// logit_scale's) are started as soon as it ends (`startEarlyBuckets`) and travel while the image
/// tower's backward runs; `progress` — called whenever a layer asks for a gradient buffer — lets
/// MPI move them along (Open MPI progresses non-blocking collectives only inside MPI calls).
/// `finish` starts the rest, waits, and writes sum / W back. Frozen parameters are skipped (every
/// rank has the same ones).
public final class GradientAllreduce {
    public let communicator: Communicator
    public static let defaultBucketBytes = 25 << 20

    struct Bucket {
        let parameters: [Parameter]
        let count: Int
        let buffer: UnsafeMutablePointer<Float>
    }
    private var early: [Bucket] = [], late: [Bucket] = []
    private var pending: [(Bucket, Communicator.Request)] = []
    private let thread = pthread_self()
    private var startedEarly = false

    /// Per step: seconds `finish` spent (packing, starting, waiting, unpacking: the part not hidden
    /// behind the backward pass), and whether the early buckets were already complete when it began.
    public private(set) var exposedSeconds = 0.0
    public private(set) var earlyCompletedDuringBackward = false
    public private(set) var bytes = 0

    public init(parameters: [Parameter], communicator: Communicator, bucketBytes: Int = GradientAllreduce.defaultBucketBytes) {
        self.communicator = communicator
        let trainable = parameters.filter { !$0.isFrozen }
        // The text tower's parameters (and logit_scale) are final when the text backward ends.
        let isEarly = { (p: Parameter) in !p.key.hasPrefix("visual.") }
        func buckets(_ ps: [Parameter]) -> [Bucket] {
            var out: [Bucket] = [], current: [Parameter] = [], floats = 0
            func close() {
                guard !current.isEmpty else { return }
                out.append(Bucket(parameters: current, count: floats, buffer: .allocate(capacity: floats)))
                current = []; floats = 0
            }
            // Reverse declaration order: the order backward finishes them (DDP's default).
            for p in ps.reversed() {
                if floats > 0 && (floats + p.count) * 4 > bucketBytes { close() }
                current.append(p); floats += p.count
            }
            close()
            return out
        }
        early = buckets(trainable.filter(isEarly))
        late = buckets(trainable.filter { !isEarly($0) })
        bytes = (early + late).reduce(0) { $0 + $1.count * 4 }
    }

    deinit { for b in early + late { b.buffer.deallocate() } }

    public var bucketCount: Int { early.count + late.count }

    private func start(_ b: Bucket) throws {
        var offset = 0
        for p in b.parameters {
            let g = p.gradPointer()!
            (b.buffer + offset).update(from: g, count: p.count)
            offset += p.count
        }
        pending.append((b, try communicator.startAllreduceSum(b.buffer, count: b.count)))
    }

    /// Starts the text tower's and logit_scale's buckets (their gradients are final).
    public func startEarlyBuckets() throws {
        guard communicator.size > 1, !startedEarly else { return }
        startedEarly = true
        for b in early { try start(b) }
    }

    /// Lets MPI progress the buckets under way (only on the thread that runs the step).
    public func progress() {
        guard !pending.isEmpty, pthread_equal(pthread_self(), thread) != 0 else { return }
        for (_, r) in pending { _ = try? r.test() }
    }

    /// Starts what is not started yet, waits for every bucket and writes the means back.
    public func finish() throws {
        defer { startedEarly = false }
        guard communicator.size > 1 else { return }
        let t0 = DispatchTime.now().uptimeNanoseconds
        earlyCompletedDuringBackward = startedEarly && !early.isEmpty && pending.allSatisfy { (try? $0.1.test()) ?? false }
        if !startedEarly { for b in early { try start(b) } }
        for b in late { try start(b) }
        let scale = 1 / Float(communicator.size)
        for (b, r) in pending {
            try r.wait()
            var offset = 0
            for p in b.parameters {
                let g = p.gradPointer()!
                for i in 0..<p.count { g[i] = b.buffer[offset + i] * scale }
                offset += p.count
            }
        }
        pending.removeAll()
        exposedSeconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    }
}

/// DDP's start: every rank takes rank 0's parameter values (a resumed or pretrained run included).
public func broadcastParameters(_ parameters: [Parameter], communicator: Communicator, root: Int = 0) throws {
    guard communicator.size > 1 else { return }
    for p in parameters {
        try p.updateValue { try communicator.broadcast(UnsafeMutableRawBufferPointer($0), root: root) }
    }
}
