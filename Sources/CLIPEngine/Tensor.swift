import Foundation
import CLIPKernels

/// Errors raised by the engine. Shapes are checked before any kernel touches memory.
public enum TensorError: Error, CustomStringConvertible, Equatable {
    case shapeMismatch(String)
    case invalidArgument(String)
    /// The allocator refused a buffer (or its size overflows); nothing was allocated.
    case allocationFailed(shape: [Int], bytes: Int?)

    public var description: String {
        switch self {
        case .shapeMismatch(let m): return "shape mismatch: \(m)"
        case .invalidArgument(let m): return "invalid argument: \(m)"
        case let .allocationFailed(shape, bytes):
            return "out of memory: cannot allocate a tensor of shape \(shape) ("
                + (bytes.map { MemoryBudget.format($0) } ?? "its size overflows 64 bits") + ")"
        }
    }
}

/// 64-byte aligned Float32 buffer owned by one or more `Tensor` values.
public final class TensorStorage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int

    /// For sizes the engine computed itself (kernel outputs of already-allocated inputs). Sizes
    /// that come from user input go through `init(checkedCount:)`, which throws instead.
    public init(count: Int) {
        guard let p = Self.allocate(count: count) else {
            fatalError("out of memory allocating \(count) floats")
        }
        self.count = count
        pointer = p
    }

    /// Throws `TensorError.allocationFailed` when the size overflows or the allocator refuses.
    public init(checkedCount count: Int, shape: [Int]) throws {
        guard let p = Self.allocate(count: count) else {
            let (bytes, overflow) = max(count, 1).multipliedReportingOverflow(by: MemoryLayout<Float>.stride)
            throw TensorError.allocationFailed(shape: shape, bytes: overflow || count < 0 ? nil : bytes)
        }
        self.count = count
        pointer = p
    }

    private static func allocate(count: Int) -> UnsafeMutablePointer<Float>? {
        guard count >= 0 else { return nil }
        let (bytes, overflow) = max(count, 1).multipliedReportingOverflow(by: MemoryLayout<Float>.stride)
        guard !overflow else { return nil }
        if bytes >= LargeBufferCache.minimumBytes {
            return LargeBufferCache.allocate(bytes: bytes)?.bindMemory(to: Float.self, capacity: max(count, 1))
        }
        var raw: UnsafeMutableRawPointer? = nil
        // posix_memalign fails only when memory is exhausted.
        guard posix_memalign(&raw, 64, bytes) == 0, let raw else { return nil }
        return raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    deinit {
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        if !LargeBufferCache.give(UnsafeMutableRawPointer(pointer), bytes: bytes) { free(pointer) }
    }
}

/// Buffers of 64 KB and more: mapped straight from the kernel and reused by best fit (`bestFit`).
///
/// Not malloc: glibc raises its mmap threshold after a large free and then serves such sizes from
/// per-thread arenas that keep freed memory, so the same command peaked at 0.83 GB in one run and
/// 2.2 GB in the next. Not unmapped on free either: a forward pass allocates the same sizes again
/// and again, a training step frees its activations in backward and asks for them again in the
/// next forward, and a first touch of fresh pages is expensive (0.9–3.4 s per GB of 4 KB pages on
/// the project's VM, 0.26–0.31 s of 2 MB pages, against 0.1 s to rewrite warm memory;
/// docs/training.md).
///
/// The bound: mapped bytes (live tensors + cached buffers) stay within the most this process had
/// live at once plus an idle allowance (`idleAllowance`: an eighth of that peak, at least 16 MB).
/// The allowance is there because a forward pass asks for more distinct sizes over its course
/// than it holds at its peak: with the cache capped at the peak (before), convnext_v2_tiny's image
/// tower at batch 1 faulted 10.6 MB afresh in every forward pass, 4 ms of its 38 ms in bf16; with
/// it, none. A miss of 1 MB or more that would cross the limit takes cached
/// buffers of 1 MB or more, oldest first, and *moves* their pages into the new buffer
/// (`clip_move_pages`, Linux `mremap`: page tables move, the pages stay resident, nothing is
/// zeroed), so a size the cache does not hold is built from sizes it does instead of being faulted
/// in afresh (a batch-32 training step used to map 1.7–2 GB afresh after the first). Smaller misses
/// unmap cached buffers, oldest first, as far as the limit requires. `BufferCache.trim()` gives
/// every cached buffer back.
enum LargeBufferCache {
    /// Buffers from this size up are mapped (`mmap`) and reused (`bestFit`).
    /// From this size up. 64 KB rather than 1 MB: a text tower at batch 1 (77 × 512 floats = 157 KB
    /// per activation) through malloc ended 100–130 MB higher in about one run in four, growing
    /// through the timed loop (272–273 MB in 8 of 8 runs since).
    static let minimumBytes = 64 << 10
    static let hugePageMinimumBytes = 16 << 20
    /// A miss at the limit builds buffers from this size up from cached buffers of this size up.
    static let moveMinimumBytes = 1 << 20
    static let pageBytes = max(Int(sysconf(Int32(_SC_PAGESIZE))), 4096)
    nonisolated(unsafe) private static var buffers: [(pointer: UnsafeMutableRawPointer, bytes: Int)] = []
    /// Bytes mapped now (live + cached, whole pages), and the most ever mapped.
    nonisolated(unsafe) private static var mappedBytes = 0
    nonisolated(unsafe) private static var highWaterBytes = 0
    /// Bytes of live buffers (handed out, not yet given back), and the most since the last trim.
    nonisolated(unsafe) private static var liveBytes = 0
    nonisolated(unsafe) private static var peakLiveBytes = 0
    /// Bytes moved into new buffers from cached ones, and bytes mapped afresh.
    nonisolated(unsafe) private static var movedBytes = 0
    nonisolated(unsafe) private static var freshBytes = 0
    private static let lock = NSLock()

    /// What the cache may hold idle beyond the peak of live bytes: an eighth of it, at least 16 MB,
    /// and at most an eighth of the memory that was available when the process began mapping.
    /// Measured (2026-12-05, 2 threads): a convnext_v2_tiny amp_bf16 training step at batch 32 took
    /// 4.21–4.36 s with 32 MB, 4.12–4.19 s with 1/16, 3.97–4.00 s with 1/8, 3.91–3.95 s with 1/4
    /// (peak RSS 4060, 4277, 4527, 4583 MB; PyTorch's autocast step peaks at 6355 MB). At batch 1
    /// (image and text towers, every precision) 16 MB / 1/8 already leaves nothing to fault afresh
    /// in later passes, at 15 MB less resident than 32 MB / 1/4 (image tower, fp32).
    static func idleAllowance(peak: Int) -> Int { min(max(16 << 20, peak / 8), allowanceCap) }
    private static let allowanceCap = max(32 << 20, MemoryBudget.available().bytes / 8)
    /// Mapped bytes stay within this (lock held).
    private static var limitBytes: Int { peakLiveBytes + idleAllowance(peak: peakLiveBytes) }

    static var statistics: (moved: Int, fresh: Int, mapped: Int, highWater: Int, live: Int, limit: Int) {
        lock.lock(); defer { lock.unlock() }
        return (movedBytes, freshBytes, mappedBytes, highWaterBytes, liveBytes, limitBytes)
    }

    static func pages(_ bytes: Int) -> Int { (bytes + pageBytes - 1) / pageBytes * pageBytes }

    /// The cached buffer that fits `bytes` best: the smallest holding at least its pages and at most
    /// `reuseLimit` of them (an exact size first, as before), or nil (lock held).
    private static func bestFit(_ bytes: Int) -> Int? {
        let need = pages(bytes), most = reuseLimit(need)
        var best: Int?
        for (i, b) in buffers.enumerated() {
            let size = pages(b.bytes)
            guard size >= need, size <= most else { continue }
            if size == need { return i }
            if best.map({ size < pages(buffers[$0].bytes) }) ?? true { best = i }
        }
        return best
    }

    /// The largest cached buffer a request of `need` page bytes may take: half as much again, so that
    /// passes of neighbouring batch sizes (11 after 16, 24 after 32) reuse each other's
    /// activation buffers instead of mapping or moving pages for every new size, while a small
    /// request never pins a buffer much larger than itself. Sizes below `moveMinimumBytes` reuse by
    /// exact size only: a forward pass asks for many small sizes, and letting them take each
    /// other's buffers would leave the exact sizes missing in the next pass.
    static func reuseLimit(_ need: Int) -> Int { need < moveMinimumBytes ? need : Int(Double(need) * reuseRatio) }
    /// 1.5; `SWIFTCLIP_BUFFER_REUSE` (1…4, 1 = exact sizes only) overrides it, for measuring.
    static let reuseRatio: Double = {
        if let text = ProcessInfo.processInfo.environment["SWIFTCLIP_BUFFER_REUSE"], let r = Double(text), (1...4).contains(r) { return r }
        return 1.5
    }()

    /// Buffers handed out larger than asked (best fit), by address: their mapped size, for `give`.
    nonisolated(unsafe) private static var handedOutSizes: [UnsafeMutableRawPointer: Int] = [:]

    /// The best-fitting cached buffer (`bestFit`), or a new mapping; nil when the kernel refuses.
    static func allocate(bytes: Int) -> UnsafeMutableRawPointer? {
        lock.lock(); defer { lock.unlock() }
        if let i = bestFit(bytes) {
            let taken = buffers.remove(at: i)
            if pages(taken.bytes) != pages(bytes) { handedOutSizes[taken.pointer] = pages(taken.bytes) }
            markLive(taken.bytes)
            return taken.pointer
        }
        let size = pages(bytes)
        var raw = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        if raw == MAP_FAILED {
            // Out of address space or memory: give every cached buffer back and try once more.
            unmapCached { true }
            raw = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        }
        guard let raw, raw != MAP_FAILED else { return nil }
        markLive(bytes)
        // Transparent huge pages where the kernel offers them on request (Debian's default is
        // "madvise"), for buffers large enough that rounding to 2 MB pages costs little memory
        // (an activation map; a 1–16 MB weight could take up to 2 MB more). Advice only.
        if bytes >= hugePageMinimumBytes { _ = madvise(raw, size, MADV_HUGEPAGE) }
        mappedBytes += size
        // Over the limit: fill a large new buffer with large cached buffers' pages, from its start.
        // Only large ones: moving costs system calls and TLB shootdowns, and splitting small
        // buffers would leave pieces no request matches, so that every later allocation of a
        // forward pass misses (measured: text tower batch 1 in bf16 went from 26 to 88 ms).
        var filled = 0
        while size >= moveMinimumBytes, mappedBytes > limitBytes, filled < size,
              let i = buffers.firstIndex(where: { pages($0.bytes) >= moveMinimumBytes }) {
            let (source, sourceSize) = buffers.remove(at: i)
            let take = min(pages(sourceSize), size - filled)
            if clip_move_pages(source, take, raw + filled) == 0 {
                filled += take
                movedBytes += take
                mappedBytes -= take
                // What the move left of the cached buffer stays cached (its own pages).
                if take < pages(sourceSize) { buffers.insert((source + take, pages(sourceSize) - take), at: 0) }
            } else {
                munmap(source, pages(sourceSize))
                mappedBytes -= pages(sourceSize)
            }
        }
        // Still over: unmap cached buffers, oldest first, as far as the limit requires.
        unmapCached { mappedBytes > limitBytes }
        freshBytes += size - filled
        highWaterBytes = max(highWaterBytes, mappedBytes)
        return raw
    }

    private static func markLive(_ bytes: Int) {
        liveBytes += pages(bytes)
        peakLiveBytes = max(peakLiveBytes, liveBytes)
    }

    /// Unmaps cached buffers, oldest first, while `needed()` holds and any are left (lock held).
    private static func unmapCached(while needed: () -> Bool) {
        while needed(), !buffers.isEmpty {
            let evicted = buffers.removeFirst()
            munmap(evicted.pointer, pages(evicted.bytes))
            mappedBytes -= pages(evicted.bytes)
        }
    }

    /// Takes back a freed buffer; false for small ones (malloc's).
    static func give(_ pointer: UnsafeMutableRawPointer, bytes: Int) -> Bool {
        guard bytes >= minimumBytes else { return false }
        lock.lock(); defer { lock.unlock() }
        let size = handedOutSizes.removeValue(forKey: pointer) ?? bytes
        buffers.append((pointer, size))
        liveBytes -= pages(size)
        return true
    }

    /// Unmaps every cached buffer and restarts the peak from what is live now.
    static func trim() {
        lock.lock(); defer { lock.unlock() }
        unmapCached { true }
        peakLiveBytes = liveBytes
    }
}

/// The large-buffer cache (buffers from 64 KB): what it holds and has done.
public enum BufferCache {
    /// Gives every cached (idle) buffer back to the system and restarts the peak the cache is
    /// bounded by from what is live now: for a long-lived process that has finished a large batch
    /// and wants its memory back. The next passes fault their buffers in afresh.
    public static func trim() { LargeBufferCache.trim() }
}

/// What the large-buffer cache (buffers from 64 KB) has done so far in this process: bytes of pages
/// moved from cached buffers into new ones, bytes mapped afresh (each a first touch), bytes mapped
/// now (live + cached), the most ever mapped, bytes live now and the limit on mapped bytes (the
/// peak of live bytes since the last trim plus the idle allowance). For benchmarks and tests.
public enum BufferCacheStatistics {
    public static var movedBytes: Int { LargeBufferCache.statistics.moved }
    public static var freshBytes: Int { LargeBufferCache.statistics.fresh }
    public static var mappedBytes: Int { LargeBufferCache.statistics.mapped }
    public static var highWaterBytes: Int { LargeBufferCache.statistics.highWater }
    public static var liveBytes: Int { LargeBufferCache.statistics.live }
    public static var limitBytes: Int { LargeBufferCache.statistics.limit }
}

/// A contiguous, row-major Float32 tensor. Value semantics: copies share storage until one of
/// them is written (copy-on-write through `withUnsafeMutableBufferPointer`).
public struct Tensor: @unchecked Sendable {
    public private(set) var shape: [Int]
    public private(set) var storage: TensorStorage

    public var count: Int { shape.reduce(1, *) }
    public var rank: Int { shape.count }

    /// Uninitialised memory: every caller must write all elements before reading.
    public init(uninitializedShape shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        self.storage = TensorStorage(count: shape.reduce(1, *))
    }

    /// Uninitialised memory for a shape that comes from user input: a negative dimension, an
    /// overflowing element count or a refused allocation is a thrown `TensorError`, never a trap.
    public init(checkedShape shape: [Int]) throws {
        var n = 1
        for d in shape {
            let (p, overflow) = n.multipliedReportingOverflow(by: d)
            guard d >= 0, !overflow else { throw TensorError.allocationFailed(shape: shape, bytes: nil) }
            n = p
        }
        self.shape = shape
        self.storage = try TensorStorage(checkedCount: n, shape: shape)
    }

    public init(zeros shape: [Int]) {
        self.init(repeating: 0, shape: shape)
    }

    public init(repeating value: Float, shape: [Int]) {
        self.init(uninitializedShape: shape)
        Self.fill(storage.pointer, count: count, with: value)
    }

    /// Writes `value` to `count` floats, a large buffer on every thread of the budget: such a buffer
    /// is usually fresh from the kernel, and the write is its first touch, so its cost is the page
    /// faults (0.9–3.4 s per GB of 4 KB pages on the project's VM, docs/training.md), which two
    /// cores take in half the time. A training step's first gradients and AdamW's moments (1.1 GB
    /// for convnext_v2_tiny) were faulted in on one core while the other waited.
    static func fill(_ p: UnsafeMutablePointer<Float>, count: Int, with value: Float) {
        guard count >= parallelFillMinimum else { p.initialize(repeating: value, count: count); return }
        Parallel.forEachChunk(count / parallelFillMinimum, workPerItem: Parallel.minimumWorkPerThread) { chunks in
            let lo = chunks.lowerBound * parallelFillMinimum
            let hi = chunks.upperBound == count / parallelFillMinimum ? count : chunks.upperBound * parallelFillMinimum
            (p + lo).initialize(repeating: value, count: hi - lo)
        }
    }
    /// 256 K floats (1 MB, 256 pages): below this a buffer is filled on the calling thread.
    static let parallelFillMinimum = 1 << 18

    public init(shape: [Int], data: [Float]) throws {
        guard shape.allSatisfy({ $0 >= 0 }), shape.reduce(1, *) == data.count else {
            throw TensorError.shapeMismatch("shape \(shape) holds \(shape.reduce(1, *)) elements, got \(data.count)")
        }
        self.init(uninitializedShape: shape)
        data.withUnsafeBufferPointer { storage.pointer.update(from: $0.baseAddress!, count: data.count) }
    }

    public var scalars: [Float] { Array(UnsafeBufferPointer(start: storage.pointer, count: count)) }

    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.pointer, count: count))
    }

    public mutating func withUnsafeMutableBufferPointer<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        if !isKnownUniquelyReferenced(&storage) {
            let copy = TensorStorage(count: count)
            copy.pointer.update(from: storage.pointer, count: count)
            storage = copy
        }
        return try body(UnsafeMutableBufferPointer(start: storage.pointer, count: count))
    }

    /// Same data, new shape (no copy).
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        var newShape = newShape
        if let inferred = newShape.firstIndex(of: -1) {
            let known = newShape.enumerated().filter { $0.offset != inferred }.map(\.element).reduce(1, *)
            guard known > 0, count % known == 0 else {
                throw TensorError.shapeMismatch("cannot reshape \(shape) to \(newShape)")
            }
            newShape[inferred] = count / known
        }
        guard newShape.allSatisfy({ $0 >= 0 }), newShape.reduce(1, *) == count else {
            throw TensorError.shapeMismatch("cannot reshape \(shape) to \(newShape)")
        }
        var t = self
        t.shape = newShape
        return t
    }

    public subscript(flat index: Int) -> Float {
        get { storage.pointer[index] }
        set {
            withUnsafeMutableBufferPointer { $0[index] = newValue }
        }
    }

    /// Rows `start..<end` along the first dimension (a copy).
    public func slice(rows range: Range<Int>) throws -> Tensor {
        guard rank >= 1, range.lowerBound >= 0, range.upperBound <= shape[0] else {
            throw TensorError.shapeMismatch("rows \(range) out of bounds for shape \(shape)")
        }
        let inner = shape.dropFirst().reduce(1, *)
        let out = Tensor(uninitializedShape: [range.count] + shape.dropFirst())
        out.storage.pointer.update(from: storage.pointer + range.lowerBound * inner, count: range.count * inner)
        return out
    }

    /// Concatenates tensors along the first dimension.
    public static func concatenate(rows parts: [Tensor]) throws -> Tensor {
        guard let first = parts.first else { throw TensorError.invalidArgument("nothing to concatenate") }
        let inner = Array(first.shape.dropFirst())
        for p in parts where Array(p.shape.dropFirst()) != inner {
            throw TensorError.shapeMismatch("cannot concatenate \(p.shape) with \(first.shape)")
        }
        let total = parts.reduce(0) { $0 + $1.shape[0] }
        let out = Tensor(uninitializedShape: [total] + inner)
        var offset = 0
        for p in parts {
            (out.storage.pointer + offset).update(from: p.storage.pointer, count: p.count)
            offset += p.count
        }
        return out
    }
}

/// Deterministic random numbers (SplitMix64), so that a `--seed` reproduces a model exactly.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64
    /// Box–Muller yields two samples; the second is kept for the next call.
    private var spareGaussian: Float?
    public init(seed: UInt64) { state = seed }

    /// The whole generator state (checkpoints restore it to continue a run bit for bit).
    public var snapshot: [UInt64] { [state, spareGaussian.map { 1 << 32 | UInt64($0.bitPattern) } ?? 0] }

    public init(snapshot: [UInt64]) throws {
        guard snapshot.count == 2, snapshot[1] >> 33 == 0 else {
            throw TensorError.invalidArgument("random generator state must be 2 words (state, spare), got \(snapshot)")
        }
        state = snapshot[0]
        spareGaussian = snapshot[1] >> 32 == 1 ? Float(bitPattern: UInt32(truncatingIfNeeded: snapshot[1])) : nil
    }

    static let increment: UInt64 = 0x9E37_79B9_7F4A_7C15

    public mutating func next() -> UInt64 {
        state &+= Self.increment
        return Self.mix(state)
    }

    /// SplitMix64's output function: the draw made when the counter reaches `z`.
    static func mix(_ z: UInt64) -> UInt64 {
        var z = z
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Standard normal sample (Box–Muller).
    public mutating func nextGaussian() -> Float {
        if let spare = spareGaussian {
            spareGaussian = nil
            return spare
        }
        let (first, second) = Self.gaussianPair(Self.mix(state &+ Self.increment), Self.mix(state &+ 2 &* Self.increment))
        state &+= 2 &* Self.increment
        spareGaussian = second
        return first
    }

    /// Box–Muller from two draws: the sample returned first and the one kept for the next call.
    @inline(__always)
    static func gaussianPair(_ a: UInt64, _ b: UInt64) -> (Float, Float) {
        let u1 = max(Float(a >> 40) * 0x1p-24, 0x1p-30)
        let u2 = Float(b >> 40) * 0x1p-24
        let radius = (-2 * Foundation.log(u1)).squareRoot()
        return (radius * Foundation.cos(2 * .pi * u2), radius * Foundation.sin(2 * .pi * u2))
    }

    /// `p[i] = scale * nextGaussian()` for i in 0..<count, bit for bit, with the generator left
    /// where those calls leave it, but on every thread of the budget: the generator is a counter, so
    /// each pair of draws is computed from its index. (Random initialisation of a model: 63 M
    /// normal samples for convnext_v2_tiny's text tower, ~0.6 s on one core.)
    public mutating func fillGaussian(_ p: UnsafeMutablePointer<Float>, count: Int, scale: Float) {
        var start = 0
        if count > 0, let spare = spareGaussian {
            p[0] = scale * spare
            spareGaussian = nil
            start = 1
        }
        let left = count - start, pairs = (left + 1) / 2
        guard pairs > 0 else { return }
        let base = state
        Parallel.forEachChunk(pairs, workPerItem: 100) { range in
            for j in range {
                let counter = base &+ UInt64(2 * j) &* Self.increment
                let (first, second) = Self.gaussianPair(Self.mix(counter &+ Self.increment), Self.mix(counter &+ 2 &* Self.increment))
                let i = start + 2 * j
                p[i] = scale * first
                if i + 1 < count { p[i + 1] = scale * second }
            }
        }
        state = base &+ UInt64(2 * pairs) &* Self.increment
        if left % 2 == 1 {
            // The last pair's second sample is the spare, as a sequential call would keep it.
            let counter = base &+ UInt64(2 * (pairs - 1)) &* Self.increment
            spareGaussian = Self.gaussianPair(Self.mix(counter &+ Self.increment), Self.mix(counter &+ 2 &* Self.increment)).1
        }
    }
}

extension Tensor {
    /// Fresh random values, uniform in `range`.
    public static func random(shape: [Int], in range: ClosedRange<Float> = -1...1, using rng: inout SeededGenerator) -> Tensor {
        var t = Tensor(uninitializedShape: shape)
        t.withUnsafeMutableBufferPointer { buf in
            for i in buf.indices { buf[i] = Float.random(in: range, using: &rng) }
        }
        return t
    }
}
