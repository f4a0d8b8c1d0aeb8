import Foundation

/// A model or batch that needs more memory than the machine has: both numbers, before anything
/// is allocated for it.
public struct InsufficientMemory: Error, CustomStringConvertible, Equatable {
    /// What needs the memory ("model ViT-B-32 (weights)", "batch of 32 images").
    public let what: String
    public let neededBytes: Int
    public let availableBytes: Int
    /// Where the available figure comes from ("MemAvailable", "RLIMIT_AS", …).
    public let limitSource: String

    public var description: String {
        "\(what) needs about \(MemoryBudget.format(neededBytes)), but only \(MemoryBudget.format(availableBytes)) "
            + "is available (\(limitSource))"
    }
}

/// How much memory this process may still allocate: the smallest of /proc/meminfo's
/// MemAvailable, the address-space limit (RLIMIT_AS) minus what is mapped, the cgroup's
/// memory.max minus memory.current, and `SWIFTCLIP_MEMORY_LIMIT` (bytes; K/M/G suffixes) if set.
public enum MemoryBudget {
    public static let environmentVariable = "SWIFTCLIP_MEMORY_LIMIT"

    /// Available bytes and the limit that sets them; `Int.max` when nothing is known.
    public static func available() -> (bytes: Int, source: String) {
        var best = (bytes: Int.max, source: "no limit known")
        func consider(_ bytes: Int?, _ source: String) {
            if let bytes, bytes < best.bytes { best = (max(bytes, 0), source) }
        }
        if let raw = ProcessInfo.processInfo.environment[environmentVariable] {
            consider(parseByteCount(raw), "\(environmentVariable)=\(raw)")
        }
        consider(meminfoKB("MemAvailable").map { $0.multipliedReportingOverflow(by: 1024).partialValue }, "MemAvailable in /proc/meminfo")
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_AS.rawValue), &limit) == 0, limit.rlim_cur < UInt64(Int.max) {
            consider(Int(limit.rlim_cur) - mappedBytes(), "address-space limit RLIMIT_AS \(format(Int(limit.rlim_cur)))")
        }
        if let max = readInteger("/sys/fs/cgroup/memory.max"), let current = readInteger("/sys/fs/cgroup/memory.current") {
            consider(max - current, "cgroup memory.max \(format(max))")
        }
        return best
    }

    /// Throws `InsufficientMemory` if `bytes` (nil: the arithmetic overflowed) exceed what is available.
    public static func require(_ bytes: Int?, for what: String) throws {
        let (available, source) = available()
        guard let bytes else {
            throw InsufficientMemory(what: what, neededBytes: Int.max, availableBytes: available, limitSource: source)
        }
        if bytes > available {
            throw InsufficientMemory(what: what, neededBytes: bytes, availableBytes: available, limitSource: source)
        }
    }

    /// `12345678` -> "11.8 MiB (12,345,678 bytes)".
    public static func format(_ bytes: Int) -> String {
        if bytes == Int.max { return "more than 9.2 EB (the size overflows 64 bits)" }
        let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var value = Double(bytes), unit = 0
        while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
        let grouped = NumberFormatter.localizedString(from: NSNumber(value: bytes), number: .decimal)
        return unit == 0 ? "\(bytes) bytes" : String(format: "%.1f %@ (%@ bytes)", value, units[unit], grouped)
    }

    /// "4096", "512M", "4G" -> bytes; nil when unparsable.
    public static func parseByteCount(_ text: String) -> Int? {
        let t = text.trimmingCharacters(in: .whitespaces).uppercased()
        let shifts: [Character: Int] = ["K": 10, "M": 20, "G": 30, "T": 40]
        if let last = t.last, let shift = shifts[last], let n = Int(t.dropLast()), n >= 0, n <= Int.max >> shift {
            return n << shift
        }
        return Int(t).flatMap { $0 >= 0 ? $0 : nil }
    }

    private static func meminfoKB(_ key: String) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(key + ":") {
            return Int(line.dropFirst(key.count + 1).split(separator: " ").first ?? "")
        }
        return nil
    }

    private static func mappedBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
              let pages = Int(text.split(separator: " ").first ?? "") else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    private static func readInteger(_ path: String) -> Int? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        return Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }
}

/// `4 · a · b · …` (bytes of Float32), or nil on overflow or a negative factor.
public func checkedFloatBytes(_ factors: [Int]) -> Int? {
    factors.reduce(Optional(MemoryLayout<Float>.stride)) { product, factor in
        guard let product, factor >= 0 else { return nil }
        let (p, overflow) = product.multipliedReportingOverflow(by: factor)
        return overflow ? nil : p
    }
}
