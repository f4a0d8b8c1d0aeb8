import CLIPEngine
import CLIPModels
import CLIPNN
import Foundation
import XCTest

/// The keys, order and shapes SwiftCLIP declares equal open_clip's `state_dict()` for each model in
/// Fixtures/param_counts.json (written by tools/reference/make_model_fixtures.py), and so do the
/// parameter counts.
final class StateDictTests: XCTestCase {
    func testKeysShapesAndCountsMatchOpenCLIP() throws {
        let counts = try JSONSerialization.jsonObject(
            with: Data(contentsOf: fixturesURL.appendingPathComponent("param_counts.json"))) as! [String: Any]
        var checked = 0
        for (name, value) in counts.sorted(by: { $0.key < $1.key }) {
            guard let entry = value as? [String: Any], let config = entry["config"] else { continue }
            let shapesURL = fixturesURL.appendingPathComponent("state_dict_shapes/\(name).json")
            let json = try JSONSerialization.data(withJSONObject: config)
            let model = try CLIPModel(config: CLIPConfig.parse(json: json, source: name))
            XCTAssertEqual(model.parameterCounts.visual, entry["visual"] as? Int, "\(name) visual")
            XCTAssertEqual(model.parameterCounts.total, entry["total"] as? Int, "\(name) total")
            if FileManager.default.fileExists(atPath: shapesURL.path) {
                let expected = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: shapesURL)) as? [[Any]])
                let expectedKeys = expected.map { $0[0] as? String ?? "?" }
                let expectedShapes = expected.map { (($0[1] as? [NSNumber]) ?? []).map(\.intValue) }
                // open_clip orders the text tower before `visual` in some versions; compare as sets
                // of (key, shape) and report the first difference.
                let ours = Dictionary(uniqueKeysWithValues: model.weights.stateDict.map { ($0.key, $0.tensor.shape) })
                let theirs = Dictionary(uniqueKeysWithValues: zip(expectedKeys, expectedShapes))
                XCTAssertEqual(Set(ours.keys).subtracting(theirs.keys).sorted(), [], "\(name): keys open_clip lacks")
                XCTAssertEqual(Set(theirs.keys).subtracting(ours.keys).sorted(), [], "\(name): keys SwiftCLIP lacks")
                for (key, shape) in theirs where ours[key] != nil && ours[key]! != shape {
                    XCTFail("\(name): \(key) is \(ours[key]!) in SwiftCLIP, \(shape) in open_clip")
                }
                // torch's optimizer state is indexed in this order (epoch_K.pt): it must be exact.
                XCTAssertEqual(model.openCLIPParameterOrder.map(\.key), expectedKeys, "\(name): named_parameters() order")
            }
            checked += 1
        }
        XCTAssertGreaterThanOrEqual(checked, 5)
    }
}
