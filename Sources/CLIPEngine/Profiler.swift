import Foundation

/// Wall-clock time per operation kind, for `swiftclip bench --breakdown`. Off by default; when off
/// `measure` costs a lock and a branch. Safe to use from several threads.
public enum OpProfiler {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var enabled = false
    nonisolated(unsafe) private static var totals: [String: (seconds: Double, calls: Int)] = [:]

    public static var isEnabled: Bool {
        get { lock.lock(); defer { lock.unlock() }; return enabled }
        set { lock.lock(); enabled = newValue; lock.unlock() }
    }

    @inline(__always)
    public static func measure<R>(_ name: String, _ body: () throws -> R) rethrows -> R {
        guard isEnabled else { return try body() }
        let start = DispatchTime.now().uptimeNanoseconds
        let result = try body()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        lock.lock()
        let old = totals[name] ?? (0, 0)
        totals[name] = (old.seconds + seconds, old.calls + 1)
        lock.unlock()
        return result
    }

    public static func reset() { lock.lock(); totals = [:]; lock.unlock() }

    /// (op, seconds, calls), slowest first.
    public static var report: [(name: String, seconds: Double, calls: Int)] {
        lock.lock(); defer { lock.unlock() }
        return totals.map { ($0.key, $0.value.seconds, $0.value.calls) }.sorted { $0.seconds > $1.seconds }
    }
}
