import CLIPEngine
import CLIPSearch
import XCTest

/// The in-memory matrix's int8 first pass gives the float scan's answer: the same ids in the same
/// order and the same scores, on random unit vectors, on clustered ones with exact duplicates
/// (ties and near-ties at the cut-off), with `minScore` and an `allowed` filter.
final class VectorMatrixTests: XCTestCase {
    private var rng = SeededGenerator(seed: 20261207)

    private func unit(_ v: [Float]) -> [Float] {
        let n = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return v.map { $0 / n }
    }

    private func gaussian(_ count: Int) -> [Float] { (0..<count).map { _ in rng.nextGaussian() } }

    private func assertSameAnswers(_ rows: [[Float]], queries: [[Float]], minimumSettled: Double, _ what: String) throws {
        let dim = rows[0].count, ids = (0..<rows.count).map { Int64(1_000 + 3 * $0) }
        let quantized = try VectorMatrix(ids: ids, dimension: dim, values: rows.flatMap { $0 }, quantize: true)
        let floats = try VectorMatrix(ids: ids, dimension: dim, values: rows.flatMap { $0 }, quantize: false)
        XCTAssertNil(floats.quantized)
        let int8 = try XCTUnwrap(quantized.quantized)
        var settled = 0, asked = 0
        for query in queries {
            for (top, minScore, allowed) in [(1, nil, nil), (10, nil, nil), (40, Float(0.2), nil),
                                             (10, nil, { (id: Int64) in id % 2 == 0 })] as [(Int, Float?, ((Int64) -> Bool)?)] {
                let want = try floats.search(query, top: top, minScore: minScore, allowed: allowed)
                let got = try quantized.search(query, top: top, minScore: minScore, allowed: allowed)
                XCTAssertEqual(got.map(\.id), want.map(\.id), "\(what): top \(top) ids")
                for (g, w) in zip(got, want) { XCTAssertEqual(g.score, w.score, accuracy: 1e-6, "\(what): score of \(g.id)") }
                asked += 1
                if let first = quantized.searchWithInt8Pass(int8, query, top: top, minScore: minScore, allowed: allowed) {
                    settled += 1
                    XCTAssertEqual(first.map(\.id), want.map(\.id), "\(what): the first pass's own answer")
                }
            }
        }
        XCTAssertGreaterThanOrEqual(Double(settled) / Double(asked), minimumSettled, "\(what): share settled by the int8 pass")
    }

    func testInt8FirstPassGivesTheFloatScansAnswerOnRandomVectors() throws {
        let rows = (0..<6_000).map { _ in unit(gaussian(64)) }
        let queries = (0..<12).map { _ in unit(gaussian(64)) } + [rows[17], rows[4_000]]
        try assertSameAnswers(rows, queries: queries, minimumSettled: 0.9, "random")
    }

    func testClusteredVectorsWithDuplicatesFallBackWhereTheBoundCannotDecide() throws {
        // 40 centres, each row a centre plus small noise, every 10th row duplicated exactly.
        let centres = (0..<40).map { _ in unit(gaussian(48)) }
        var rows: [[Float]] = []
        for i in 0..<5_000 {
            if i % 10 == 9 { rows.append(rows[i - 1]); continue }
            rows.append(unit(zip(centres[i % 40], gaussian(48)).map { $0 + 0.02 * $1 }))
        }
        let queries = (0..<6).map { i in unit(zip(centres[i], gaussian(48)).map { $0 + 0.05 * $1 }) } + [rows[8]]
        // Near-ties are the norm here, so many queries go to the float scan; the answers must still match.
        try assertSameAnswers(rows, queries: queries, minimumSettled: 0, "clustered")
    }

    func testNonFiniteValuesDisableTheFirstPass() throws {
        var values = (0..<4_000).flatMap { _ in unit(gaussian(16)) }
        values[5 * 16 + 3] = .nan
        let matrix = try VectorMatrix(ids: (0..<4_000).map(Int64.init), dimension: 16, values: values, quantize: true)
        let int8 = try XCTUnwrap(matrix.quantized)
        XCTAssertEqual(int8.errorPerQueryNorm, .infinity)
        XCTAssertNil(matrix.searchWithInt8Pass(int8, unit(gaussian(16)), top: 5))
        XCTAssertEqual(try matrix.search(unit(gaussian(16)), top: 5).count, 5)
    }
}
