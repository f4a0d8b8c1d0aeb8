import ArgumentParser
import CLIPEngine
import CLIPNN
import CLIPSearch
import Foundation

/// Exact-search latency on vectors held in memory, for the side-by-side with numpy and FAISS
/// (benchmarks/search_latency.sh gives all three the same .npy files).
struct BenchSearch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-search",
        abstract: "Top-k exact search latency over stored unit vectors (a benchmark: figures, not assertions).")

    @Option(name: .long, help: "float32 .npy (N, dim): the stored vectors.") var vectors: String
    @Option(name: .long, help: "float32 .npy (Q, dim): the queries, one search each.") var queries: String
    @Option(name: .long, help: "Results per query.") var top = 10
    @Option(name: .long, help: "Untimed queries first.") var warmup = 3
    @Option(name: .long, help: "Write the top row indices (Q, top) as int32 .npy, to compare with another system.") var output: String?
    @Option(name: .long, help: "Threads for the kernels (default: all cores).") var threads: Int?

    func validate() throws {
        guard (1...10_000).contains(top) else { throw ValidationError("--top must be in 1...10000") }
        if let threads { guard (1...4096).contains(threads) else { throw ValidationError("--threads must be in 1...4096") }; Parallel.threadCount = threads }
    }

    func run() throws {
        try runReportingErrors {
            let stored = try NPY.read(URL(fileURLWithPath: vectors)).floatTensor()
            let asked = try NPY.read(URL(fileURLWithPath: queries)).floatTensor()
            guard stored.rank == 2, asked.rank == 2, stored.shape[1] == asked.shape[1] else {
                throw InputError(description: "\(vectors) and \(queries) must be (N, dim) and (Q, dim) with the same dim")
            }
            let n = stored.shape[0], dim = stored.shape[1], q = asked.shape[0]
            let matrix = try VectorMatrix(ids: (0..<n).map(Int64.init), dimension: dim, values: stored.scalars)
            let all = asked.scalars
            func query(_ i: Int) -> [Float] { Array(all[i * dim..<(i + 1) * dim]) }
            for i in 0..<min(warmup, q) { _ = try matrix.search(query(i), top: top) }
            var times: [Double] = [], ids: [Int32] = []
            for i in 0..<q {
                let start = DispatchTime.now().uptimeNanoseconds
                let hits = try matrix.search(query(i), top: top)
                times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
                ids += hits.map { Int32(truncatingIfNeeded: $0.id) } + Array(repeating: -1, count: top - hits.count)
            }
            times.sort()
            let object: [String: Any] = ["system": "swiftclip", "n": n, "dim": dim, "queries": q, "top": top, "threads": Parallel.threadCount,
                                         "median_ms": times[q / 2], "p10_ms": times[q / 10], "p90_ms": times[q * 9 / 10]]
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
            if let output { try NPY.write(int32: ids, shape: [q, top], to: URL(fileURLWithPath: output)) }
        }
    }
}
