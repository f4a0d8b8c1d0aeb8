import ArgumentParser
import CLIPEngine
import CLIPNN
@_spi(Benchmark) import CLIPSearch
@_spi(Benchmark) import CLIPSearchPostgres
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
    @Option(name: .long, help: "A postgresql:// index: load the vectors, build the HNSW index, time the store's search per --ef-search (recall against exact).") var db: String?
    @Option(name: .long, parsing: .upToNextOption, help: "hnsw.ef_search values for --db.") var efSearch: [Int] = [40, 100, 200]
    @Flag(inversion: .prefixedNo, help: "The int8 first pass (from \(VectorMatrix.quantizedMinimumRows) vectors, as `serve` uses it); --no-int8-pass scans the floats only.")
    var int8Pass = true

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
            let matrix = try VectorMatrix(ids: (0..<n).map(Int64.init), dimension: dim, values: stored.scalars, quantize: int8Pass ? nil : false)
            let all = asked.scalars
            func query(_ i: Int) -> [Float] { Array(all[i * dim..<(i + 1) * dim]) }
            if let db { return try benchStore(db, matrix: matrix, vectors: stored.scalars, dim: dim, queries: (0..<q).map(query)) }
            for i in 0..<min(warmup, q) { _ = try matrix.search(query(i), top: top) }
            var times: [Double] = [], ids: [Int32] = []
            for i in 0..<q {
                let start = DispatchTime.now().uptimeNanoseconds
                let hits = try matrix.search(query(i), top: top)
                times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
                ids += hits.map { Int32(truncatingIfNeeded: $0.id) } + Array(repeating: -1, count: top - hits.count)
            }
            times.sort()
            var object: [String: Any] = ["system": matrix.quantized == nil ? "swiftclip" : "swiftclip-int8-pass", "n": n, "dim": dim, "queries": q,
                                         "top": top, "threads": Parallel.threadCount,
                                         "median_ms": times[q / 2], "p10_ms": times[q / 10], "p90_ms": times[q * 9 / 10]]
            if let int8 = matrix.quantized {
                // Untimed: how many queries the first pass settled (the others fell back to the float scan).
                object["settled_by_int8_pass"] = (0..<q).filter { matrix.searchWithInt8Pass(int8, query($0), top: top) != nil }.count
            }
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
            if let output { try NPY.write(int32: ids, shape: [q, top], to: URL(fileURLWithPath: output)) }
        }
    }

    /// The PostgreSQL store: load time, HNSW build time, then per ef_search the median latency of
    /// `SearchIndex.search(vector:slot:options:)` and recall@top against exact search in memory.
    private func benchStore(_ db: String, matrix: VectorMatrix, vectors: [Float], dim: Int, queries: [[Float]]) throws {
        func emit(_ object: [String: Any]) throws {
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
        }
        func ms(_ start: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6 }
        let index = try IndexDatabase.open(db)
        var t = DispatchTime.now().uptimeNanoseconds
        let (slot, ids) = try index.loadBenchmarkVectors(vectors, dimension: dim)
        let loadS = ms(t) / 1e3
        t = DispatchTime.now().uptimeNanoseconds
        let built = try index.buildVectorIndex(slot: slot)
        try emit(["system": "swiftclip-postgres", "n": ids.count, "dim": dim, "load_s": loadS, "hnsw_build_s": built ? ms(t) / 1e3 : -1])
        let truth = try queries.map { try Set(matrix.search($0, top: top).map { ids[Int($0.id)] }) }
        func run(_ label: String, _ options: SearchOptions, count: Int) throws {
            var times: [Double] = [], recall = 0.0
            for (i, v) in queries.prefix(count).enumerated() {
                let start = DispatchTime.now().uptimeNanoseconds
                let hits = try index.search(vector: v, slot: slot, options: options)
                times.append(ms(start))
                recall += Double(Set(hits.map(\.id)).intersection(truth[i]).count) / Double(top)
            }
            times.sort()
            try emit(["system": "swiftclip-postgres", "mode": label, "n": ids.count, "queries": times.count, "median_ms": times[times.count / 2],
                      "p90_ms": times[times.count * 9 / 10], "recall_at_\(top)": recall / Double(times.count)])
        }
        for ef in efSearch { try run("hnsw ef_search \(ef)", SearchOptions(top: top, efSearch: ef), count: queries.count) }
        // --under makes the store scan exactly (every live vector scored by the server): a few queries suffice.
        try run("exact scan", SearchOptions(top: top, under: "/bench"), count: min(10, queries.count))
    }
}
