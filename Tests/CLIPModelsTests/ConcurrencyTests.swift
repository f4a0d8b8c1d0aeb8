import CLIPEngine
import CLIPModels
import CLIPNN
import Foundation
import XCTest

/// Two models used from two threads at once (a server's concurrent requests) give exactly what
/// each gives alone, and per-call thread budgets change nothing but speed.
final class ConcurrencyTests: XCTestCase {
    func load(_ name: String) throws -> (CLIPModel, Tensor, [[Int]]) {
        let dir = fixturesURL.appendingPathComponent(name)
        let model = try CLIPModel(config: CLIPConfig.load(contentsOf: dir.appendingPathComponent("config.json")),
                                  weights: SafetensorsWeights(url: dir.appendingPathComponent("model.safetensors")))
        let images = try NPY.read(dir.appendingPathComponent("images.npy")).floatTensor()
        let tokens = try NPY.read(dir.appendingPathComponent("tokens.npy"))
        let ids = try tokens.intValues(), length = tokens.shape[1]
        return (model, images, (0..<tokens.shape[0]).map { Array(ids[$0 * length..<($0 + 1) * length]) })
    }

    func testTwoModelsOnTwoThreadsMatchTheirSequentialResults() throws {
        let a = try load("convnext_v2_atto"), b = try load("vit_tiny_quickgelu")
        let wantA = try a.0.encodeImage(a.1), wantB = try b.0.encodeImage(b.1)
        let wantTextA = try a.0.encodeText(a.2), wantTextB = try b.0.encodeText(b.2)
        final class Results: @unchecked Sendable { var tensors = [[Tensor]](repeating: [], count: 2); var errors: [Error] = [] }
        let results = Results()
        let lock = NSLock()
        // Each thread runs its model several times; with a budget of 2, each may fan out too.
        DispatchQueue.concurrentPerform(iterations: 2) { which in
            let (model, images, tokens) = which == 0 ? a : b
            do {
                for _ in 0..<4 {
                    let image = try Parallel.withThreads(2) { try model.encodeImage(images) }
                    let text = try model.encodeText(tokens)
                    lock.lock(); results.tensors[which] += [image, text]; lock.unlock()
                }
            } catch { lock.lock(); results.errors.append(error); lock.unlock() }
        }
        XCTAssertTrue(results.errors.isEmpty, "\(results.errors)")
        for (which, wants) in [(0, [wantA, wantTextA]), (1, [wantB, wantTextB])] {
            XCTAssertEqual(results.tensors[which].count, 8)
            for (i, got) in results.tensors[which].enumerated() {
                XCTAssertEqual(got.scalars, wants[i % 2].scalars, "model \(which) run \(i / 2) \(i % 2 == 0 ? "image" : "text")")
            }
        }
    }

    /// One forward pass per image per thread (the throughput path of `index` and `embed-image`):
    /// the rows a thread computed alone are a one-thread `encodeImage`'s bit for bit, a leftover
    /// image goes through the ordinary pass, and the whole equals `encodeImage` within rounding.
    /// The same model runs on several threads at once here (ConvNeXt and ViT towers).
    func testOnePassPerThreadGivesTheSameEmbeddings() throws {
        for fixture in ["convnext_v2_atto", "vit_tiny_quickgelu"] {
            let (model, images, _) = try load(fixture)
            let n = images.shape[0]
            XCTAssertEqual(n % 2, 1, "the fixture's odd count leaves one image for the ordinary pass")
            let alone = try Parallel.withThreads(1) { try (0..<n).map { try model.encodeImage(images.slice(rows: $0..<($0 + 1)), normalize: true) } }
            for threads in [1, 2, 3] {
                let got = try Parallel.withThreads(threads) { try model.encodeImagePerThread(images, normalize: true) }
                XCTAssertEqual(got.shape, [n, model.config.embedDim])
                let spread = n - n % min(threads, n)
                for i in 0..<spread {
                    XCTAssertEqual(try got.slice(rows: i..<(i + 1)).scalars, alone[i].scalars, "\(fixture), threads \(threads), image \(i)")
                }
                XCTAssertLessThanOrEqual(worstRowRelativeError(got, try model.encodeImage(images, normalize: true)), 1e-6,
                                         "\(fixture), threads \(threads)")
            }
            // An error inside a thread's pass reaches the caller.
            let wrongSize = Tensor(zeros: [4, 3, 8, 8])
            XCTAssertThrowsError(try Parallel.withThreads(2) { try model.encodeImagePerThread(wrongSize) }, fixture)
        }
    }

    func testAOneThreadBudgetGivesTheSameEmbeddings() throws {
        let a = try load("convnext_v2_atto")
        let all = try a.0.encodeImage(a.1)
        let one = try Parallel.withThreads(1) { () throws -> Tensor in
            XCTAssertEqual(Parallel.budget, 1)
            return try a.0.encodeImage(a.1)
        }
        XCTAssertLessThanOrEqual(worstRowRelativeError(one, all), 1e-6)
        XCTAssertEqual(Parallel.budget, Parallel.threadCount, "the budget ends with the call")
    }
}
