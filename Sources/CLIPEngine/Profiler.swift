import Foundation

/// Wall-clock time per operation kind, for `swiftclip bench --breakdown`. Off by default; when off
/// `measure` costs one branch.
public enum OpProfiler {
    nonisolated(unsafe) public static var isEnabled = false
    nonisolated(unsafe) private static var totals: [String: (seconds: Double, calls: Int)] = [:]

    @inline(__always)
    public static func measure<R>(_ name: String, _ body: () throws -> R) rethrows -> R {
        guard isEnabled else { return try body() }
        let start = DispatchTime.now().uptimeNanoseconds
        let result = try body()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let old = totals[name] ?? (0, 0)
        totals[name] = (old.seconds + seconds, old.calls + 1)
        return result
    }

    public static func reset() { totals = [:] }

    /// (op, seconds, calls), slowest first.
    public static var report: [(name: String, seconds: Double, calls: Int)] {
        totals.map { ($0.key, $0.value.seconds, $0.value.calls) }.sorted { $0.seconds > $1.seconds }
    }
}
