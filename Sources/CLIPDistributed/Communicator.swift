import CMPI
import Foundation

/// A failed MPI call: which operation, the MPI error code and MPI's own text for it.
public struct MPIError: Error, CustomStringConvertible {
    public let operation: String
    public let code: Int32
    public let message: String
    public var description: String { "MPI \(operation) failed: \(message) (error \(code))" }
}

/// The processes of one data-parallel job, over MPI's world communicator (`CMPI`), or a single
/// process (`Communicator.single`) where every collective is the identity and MPI is never touched.
///
/// Only the thread that joined the job calls MPI (MPI_THREAD_FUNNELED): the training loop's. The
/// loaders' and the kernels' threads never do. Errors are returned, not fatal (MPI_ERRORS_RETURN),
/// and thrown as `MPIError`; a rank that fails calls `abort`, which ends the whole job.
public final class Communicator: @unchecked Sendable {
    public let rank: Int
    public let size: Int
    /// True when this process joined an MPI job (and must `finalize` or `abort`).
    public let usesMPI: Bool
    public var isRoot: Bool { rank == 0 }

    public static let single = Communicator(rank: 0, size: 1, usesMPI: false)

    private init(rank: Int, size: Int, usesMPI: Bool) {
        self.rank = rank
        self.size = size
        self.usesMPI = usesMPI
    }

    /// Whether this build has MPI (mpi.h was found through pkg-config `ompi-c` when it was built).
    public static var isAvailable: Bool { scmpi_available() != 0 }

    /// The MPI library's version line (empty without MPI).
    public static var libraryVersion: String {
        var buffer = [CChar](repeating: 0, count: Int(scmpi_library_version_capacity()) + 1)
        return String(cString: scmpi_library_version(&buffer))
    }

    /// How many processes the launcher started, from its environment: Open MPI's mpirun
    /// (OMPI_COMM_WORLD_SIZE), PMI-2 (PMI_SIZE, srun --mpi=pmi2), PMIx under SLURM (PMIX_RANK with
    /// SLURM_STEP_NUM_TASKS); nil when none is set (a plain run).
    public static func launchedSize(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Int? {
        if let s = environment["OMPI_COMM_WORLD_SIZE"].flatMap(Int.init) { return s }
        if let s = environment["PMI_SIZE"].flatMap(Int.init) { return s }
        if environment["PMIX_RANK"] != nil, let s = (environment["SLURM_STEP_NUM_TASKS"] ?? environment["SLURM_NTASKS"]).flatMap(Int.init) { return s }
        return nil
    }

    /// Joins the MPI job when the launcher started more than one process; otherwise `single`
    /// (without initialising MPI at all). A multi-process launch of a build without MPI is an error.
    public static func world() throws -> Communicator {
        guard let launched = launchedSize(), launched > 1 else { return .single }
        guard isAvailable else {
            throw MPIError(operation: "init", code: -1, message: "launched as one of \(launched) MPI ranks, but this swiftclip was built without MPI "
                           + "(install libopenmpi-dev, then rebuild: swift build -c release)")
        }
        var provided: Int32 = 0
        try check(scmpi_init(&provided), "MPI_Init_thread")
        guard provided >= scmpi_thread_funneled() else {
            throw MPIError(operation: "init", code: -1, message: "the MPI library offers thread level \(provided), below MPI_THREAD_FUNNELED")
        }
        var rank: Int32 = 0, size: Int32 = 1
        try check(scmpi_rank(&rank), "MPI_Comm_rank")
        try check(scmpi_size(&size), "MPI_Comm_size")
        return Communicator(rank: Int(rank), size: Int(size), usesMPI: true)
    }

    static func check(_ rc: Int32, _ operation: String) throws {
        guard rc != scmpi_success() else { return }
        var text = [CChar](repeating: 0, count: 512)
        scmpi_error_string(rc, &text, Int32(text.count))
        throw MPIError(operation: operation, code: rc, message: String(cString: text))
    }

    /// Largest element count passed to one MPI call (counts are C ints).
    static let chunk = 1 << 30

    // MARK: Collectives (identities on a single process)

    public func barrier() throws {
        guard usesMPI else { return }
        try Self.check(scmpi_barrier(), "MPI_Barrier")
    }

    /// Rank `root`'s bytes, on every rank.
    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int = 0) throws {
        guard usesMPI, let base = buffer.baseAddress else { return }
        var offset = 0
        while offset < buffer.count {
            let n = min(Self.chunk, buffer.count - offset)
            try Self.check(scmpi_bcast_bytes(base + offset, Int32(n), Int32(root)), "MPI_Bcast")
            offset += n
        }
    }

    /// Rank `root`'s string (its length first), on every rank.
    public func broadcast(_ string: String, root: Int = 0) throws -> String {
        guard usesMPI else { return string }
        var bytes = Array(string.utf8)
        var length = Int64(bytes.count)
        try withUnsafeMutableBytes(of: &length) { try broadcast($0, root: root) }
        if rank != root { bytes = [UInt8](repeating: 0, count: Int(length)) }
        try bytes.withUnsafeMutableBytes { try broadcast($0, root: root) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Every rank's `count` bytes, in rank order (`size` × `count` bytes at `receive`).
    public func allgather(_ send: UnsafeRawBufferPointer, into receive: UnsafeMutableRawBufferPointer) throws {
        precondition(receive.count == send.count * size, "allgather: receive buffer must hold size × send bytes")
        guard usesMPI else { receive.copyMemory(from: send); return }
        try Self.check(scmpi_allgather_bytes(send.baseAddress, Int32(send.count), receive.baseAddress), "MPI_Allgather")
    }

    /// Each rank's value, in rank order.
    public func allgather<T: BitwiseCopyable>(_ value: T) throws -> [T] {
        var v = value
        var out = [T](repeating: value, count: size)
        try withUnsafeBytes(of: &v) { send in try out.withUnsafeMutableBytes { try allgather(send, into: $0) } }
        return out
    }

    /// Every rank's rows of `columns` floats, concatenated in rank order; and each rank's row count.
    public func allgatherRows(_ rows: UnsafePointer<Float>, count: Int, columns: Int) throws -> (values: [Float], counts: [Int]) {
        let counts = try allgather(Int64(count)).map(Int.init)
        let total = counts.reduce(0, +)
        var out = [Float](repeating: 0, count: total * columns)
        guard usesMPI else {
            out.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: rows, count: count * columns) }
            return (out, counts)
        }
        guard total * columns < Int(Int32.max) else {
            throw MPIError(operation: "allgather", code: -1, message: "\(total) rows × \(columns) floats exceed one MPI call")
        }
        let elementCounts = counts.map { Int32($0 * columns) }
        var displacements = [Int32](repeating: 0, count: size)
        for r in 1..<max(1, size) { displacements[r] = displacements[r - 1] + elementCounts[r - 1] }
        try out.withUnsafeMutableBufferPointer { o in
            try Self.check(scmpi_allgatherv_floats(rows, Int32(count * columns), o.baseAddress, elementCounts, displacements), "MPI_Allgatherv")
        }
        return (out, counts)
    }

    /// The sum over ranks of `send` — every rank's rows, `counts[r]` rows of `columns` floats for
    /// rank r — of which this rank receives its own block (all-gather's backward).
    public func reduceScatterRows(_ send: UnsafePointer<Float>, counts: [Int], columns: Int) throws -> [Float] {
        precondition(counts.count == size, "reduceScatterRows: one count per rank")
        let mine = counts[rank] * columns
        var out = [Float](repeating: 0, count: mine)
        guard usesMPI else {
            out.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: send, count: mine) }
            return out
        }
        guard counts.reduce(0, +) * columns < Int(Int32.max) else {
            throw MPIError(operation: "reduce-scatter", code: -1, message: "\(counts.reduce(0, +)) rows × \(columns) floats exceed one MPI call")
        }
        let elementCounts = counts.map { Int32($0 * columns) }
        try out.withUnsafeMutableBufferPointer { o in
            try Self.check(scmpi_reduce_scatter_sum_floats(send, o.baseAddress, elementCounts), "MPI_Reduce_scatter")
        }
        return out
    }

    /// Element-wise sum over ranks, in place.
    public func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws {
        guard usesMPI else { return }
        var offset = 0
        while offset < count {
            let n = min(Self.chunk, count - offset)
            try Self.check(scmpi_allreduce_sum_floats(buffer + offset, Int32(n)), "MPI_Allreduce")
            offset += n
        }
    }

    public func allreduceSum(_ values: [Double]) throws -> [Double] {
        guard usesMPI else { return values }
        var v = values
        try v.withUnsafeMutableBufferPointer { try Self.check(scmpi_allreduce_sum_doubles($0.baseAddress, Int32($0.count)), "MPI_Allreduce") }
        return v
    }

    public func allreduceMax(_ values: [Int64]) throws -> [Int64] {
        guard usesMPI else { return values }
        var v = values
        try v.withUnsafeMutableBufferPointer { try Self.check(scmpi_allreduce_max_int64($0.baseAddress, Int32($0.count)), "MPI_Allreduce") }
        return v
    }

    /// An allreduce (sum, in place) under way; `test` lets MPI progress it, `wait` completes it.
    public final class Request {
        var request = scmpi_request()
        var done: Bool
        init(done: Bool) { self.done = done }

        /// True once complete (drives MPI's progress engine: call it between pieces of other work).
        public func test() throws -> Bool {
            guard !done else { return true }
            var flag: Int32 = 0
            try Communicator.check(scmpi_test(&request, &flag), "MPI_Test")
            done = flag != 0
            return done
        }

        public func wait() throws {
            guard !done else { return }
            try Communicator.check(scmpi_wait(&request), "MPI_Wait")
            done = true
        }
    }

    /// Starts an element-wise sum over ranks of `buffer` (in place); the buffer must stay alive
    /// and untouched until the request completes.
    public func startAllreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) throws -> Request {
        guard usesMPI else { return Request(done: true) }
        guard count < Int(Int32.max) else { throw MPIError(operation: "Iallreduce", code: -1, message: "\(count) floats exceed one MPI call") }
        let r = Request(done: false)
        try Self.check(scmpi_iallreduce_sum_floats(buffer, Int32(count), &r.request), "MPI_Iallreduce")
        return r
    }

    /// Leaves the job cleanly (every rank, at the end).
    public func finalize() {
        guard usesMPI, scmpi_finalized() == 0 else { return }
        _ = scmpi_finalize()
    }

    /// Ends the whole job: every rank is killed, the launcher exits with `code`.
    public func abort(code: Int32) -> Never {
        if usesMPI { _ = scmpi_abort(code) }
        exit(code)
    }
}
