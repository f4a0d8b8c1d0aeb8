import CLIPData
import CLIPDetection
import CLIPEngine
import Foundation
import XCTest

/// mAP against pycocotools (tools/reference/make_coco_eval_fixtures.py) and the checks on COCO files.
final class COCOTests: XCTestCase {
    func testMAPEqualsPycocotools() throws {
        let dir = detectionFixtures.appendingPathComponent("cocoeval")
        let gt = try COCODataset.load(dir.appendingPathComponent("instances.json"))
        let dets = try COCODetection.load(dir.appendingPathComponent("detections.json"))
        let expected = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("expected.json"))) as? [String: Any])
        let eval = COCOEvaluation(groundTruth: gt, detections: dets)
        for (name, set) in [("all", nil), ("base", gt.baseCategoryIDs), ("novel", gt.novelCategoryIDs)] as [(String, Set<Int>?)] {
            let s = eval.summary(categories: set)
            let e = try XCTUnwrap(expected[name] as? [String: Double])
            XCTAssertEqual(s.ap, e["ap"]!, accuracy: 1e-12, "\(name) mAP")
            XCTAssertEqual(s.ap50, e["ap50"]!, accuracy: 1e-12, "\(name) AP50")
            XCTAssertEqual(s.ap75, e["ap75"]!, accuracy: 1e-12, "\(name) AP75")
        }
    }

    func testPerfectDetectionsScoreOne() throws {
        let gt = COCODataset(images: [.init(id: 1, file_name: "a.png", width: 100, height: 100)],
                             annotations: [.init(id: 1, image_id: 1, category_id: 1, bbox: [10, 10, 30, 40]),
                                           .init(id: 2, image_id: 1, category_id: 2, bbox: [50, 50, 20, 20])],
                             categories: [.init(id: 1, name: "x"), .init(id: 2, name: "y", split: "novel")])
        let dets = gt.annotations.map { COCODetection(image_id: 1, category_id: $0.category_id, bbox: $0.bbox, score: 0.9) }
        let s = COCOEvaluation(groundTruth: gt, detections: dets).summary()
        XCTAssertEqual(s.ap, 1, accuracy: 1e-12)
        XCTAssertEqual(COCOEvaluation(groundTruth: gt, detections: []).summary().ap, 0)
    }

    private func write(_ json: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("coco-\(UUID().uuidString).json")
        try Data(json.utf8).write(to: url)
        return url
    }

    private func assertRejected(_ json: String, mentions parts: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let url = try write(json)
        defer { try? FileManager.default.removeItem(at: url) }
        XCTAssertThrowsError(try COCODataset.load(url), file: file, line: line) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains(url.path), "error names the file: \(text)", file: file, line: line)
            for p in parts { XCTAssertTrue(text.contains(p), "error mentions '\(p)': \(text)", file: file, line: line) }
        }
    }

    func testBadAnnotationFilesAreRejectedByName() throws {
        let images = #"[{"id": 1, "file_name": "a.png", "width": 64, "height": 48}]"#
        let cats = #"[{"id": 1, "name": "red circle"}]"#
        try assertRejected(#"{"images": \#(images), "categories": \#(cats)}"#, mentions: ["annotations"])
        try assertRejected(#"{"images": \#(images), "annotations": [{"id": 1, "image_id": 1, "bbox": [1, 2, 3, 4]}], "categories": \#(cats)}"#,
                           mentions: ["category_id", "annotations[0]"])
        try assertRejected(#"{"images": [{"id": 1, "width": 64, "height": 48}], "annotations": [], "categories": \#(cats)}"#, mentions: ["file_name"])
        // Boxes outside the image, negative, degenerate, wrong length.
        for bbox in ["[60, 10, 10, 10]", "[-1, 0, 5, 5]", "[10, 40, 5, 9]", "[1, 1, 0, 3]", "[1, 2, 3]"] {
            try assertRejected(#"{"images": \#(images), "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "bbox": \#(bbox)}], "categories": \#(cats)}"#,
                               mentions: ["annotations[0] (id 7)", "bbox"])
        }
        try assertRejected(#"{"images": \#(images), "annotations": [{"id": 7, "image_id": 2, "category_id": 1, "bbox": [1, 1, 2, 2]}], "categories": \#(cats)}"#,
                           mentions: ["image_id 2"])
        try assertRejected(#"{"images": \#(images), "annotations": [], "categories": [{"id": 1, "name": "x", "split": "rare"}]}"#, mentions: ["split"])
        // Two categories under one name (evaluation and training look categories up by name).
        try assertRejected(#"{"images": \#(images), "annotations": [], "categories": [{"id": 1, "name": "x"}, {"id": 2, "name": "x"}]}"#,
                           mentions: ["categories[1] (id 2)", "name 'x' is also category 1's"])
        try assertRejected("{not json", mentions: [])
    }

    func testEmptyOrRepeatedLabelsAreRejected() {
        XCTAssertThrowsError(try OpenVocabularyDetector.checkLabels([])) { XCTAssertTrue("\($0)".contains("empty")) }
        XCTAssertThrowsError(try OpenVocabularyDetector.checkLabels(["a", "b", "a"])) { XCTAssertTrue("\($0)".contains("label 'a' is given twice")) }
        XCTAssertThrowsError(try OpenVocabularyDetector.checkLabels(["red circle", " "])) { XCTAssertTrue("\($0)".contains("empty label")) }
        XCTAssertNoThrow(try OpenVocabularyDetector.checkLabels(["red circle"]))
    }

    func testNMSKeepsTheBestOfOverlappingBoxes() {
        let boxes = [Box(x0: 0, y0: 0, x1: 10, y1: 10), Box(x0: 1, y0: 1, x1: 11, y1: 11), Box(x0: 20, y0: 20, x1: 30, y1: 30)]
        XCTAssertEqual(OpenVocabularyDetector.nms(boxes, iou: 0.5, limit: 10), [0, 2])
        XCTAssertEqual(OpenVocabularyDetector.nms(boxes, iou: 0.5, limit: 1), [0])
    }
}

final class SyntheticScenesTests: XCTestCase {
    func testSplitKeepsEveryColourAndShapeAmongBase() {
        let base = SyntheticScenes.categories.filter { !$0.isNovel }
        XCTAssertEqual(Set(base.map(\.colour)).count, SyntheticShapes.colours.count)
        XCTAssertEqual(Set(base.map(\.shape)).count, SyntheticShapes.shapes.count)
        XCTAssertEqual(SyntheticScenes.categories.filter(\.isNovel).count, SyntheticScenes.novelPairs.count)
    }

    func testScenesAreDeterministicWithBoxesInsideAndNamedInCaptions() throws {
        let scenes = try SyntheticScenes(seed: 4, count: 20, imageSize: 96)
        var objects = 0
        for i in 0..<20 {
            let s = scenes.scene(i)
            XCTAssertEqual(s.image, scenes.scene(i).image)
            for o in s.objects {
                XCTAssertGreaterThanOrEqual(o.box.x, 0); XCTAssertGreaterThanOrEqual(o.box.y, 0)
                XCTAssertLessThanOrEqual(o.box.x + o.box.width, 96); XCTAssertLessThanOrEqual(o.box.y + o.box.height, 96)
                XCTAssertTrue(s.caption.contains(o.category.name), "\(s.caption) names \(o.category.name)")
            }
            objects += s.objects.count
        }
        XCTAssertGreaterThan(objects, 20, "several objects per scene on average")
    }
}
