import Foundation

/// Where a `swiftclip train` run's wall time goes, for the log's last line ("Time: …"): what is
/// not a training step (process start-up, set-up, waiting for data, evaluation, checkpoints that
/// were not overlapped with a step, the loss chart) next to the steps themselves.
struct RunTimes {
    /// Seconds from the process's start to the start of `TrainingRun.init` (loading, argument
    /// parsing, the vocabulary); nil where the kernel does not say when the process started.
    var beforeSetUp: Double?
    /// `TrainingRun.init`: the model built (or loaded), the data listed, the run folder made.
    var setUp = 0.0
    /// The training loop waiting for the loader's next batch (and tokenising it).
    var dataWait = 0.0
    /// Each `CLIPTrainer.step`, in order (forward, loss, backward, the optimizer; a background
    /// checkpoint's wait before the update included, and counted again under `checkpoints`).
    var steps: [Double] = []
    var evaluation = 0.0
    /// Checkpoint writing the run waited for (a foreground save, or finishing a background one).
    var checkpoints = 0.0
    var chart = 0.0

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
    static func seconds(since t: UInt64) -> Double { Double(now() - t) / 1e9 }

    /// Runs `body` and adds its seconds to `into`.
    static func measure<T>(_ into: inout Double, _ body: () throws -> T) rethrows -> T {
        let t = now()
        defer { into += seconds(since: t) }
        return try body()
    }

    /// Seconds since this process started, from /proc (Linux); nil elsewhere or if unreadable.
    static func processAge() -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
              let uptime = try? String(contentsOfFile: "/proc/uptime", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        // Fields after the command name (which may hold spaces): state is field 3, starttime field 22.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        guard fields.count > 19, let start = Double(fields[19]), ticks > 0,
              let up = uptime.split(separator: " ").first.flatMap({ Double($0) }) else { return nil }
        return max(0, up - start / ticks)
    }

    var summary: String {
        var parts: [String] = []
        if let b = beforeSetUp { parts.append(String(format: "start-up %.2f s", b)) }
        parts.append(String(format: "set-up %.2f s", setUp))
        parts.append(String(format: "waiting for data %.2f s", dataWait))
        if let first = steps.first {
            let rest = steps.dropFirst()
            let later = rest.isEmpty ? "" : String(format: ", later ones %.2f s on average", rest.reduce(0, +) / Double(rest.count))
            parts.append(String(format: "%d step(s) %.2f s (first %.2f s%@)", steps.count, steps.reduce(0, +), first, later))
        }
        parts.append(String(format: "evaluation %.2f s", evaluation))
        parts.append(String(format: "checkpoint writing waited for %.2f s", checkpoints))
        parts.append(String(format: "loss chart %.2f s", chart))
        return "Time: " + parts.joined(separator: ", ")
    }
}
