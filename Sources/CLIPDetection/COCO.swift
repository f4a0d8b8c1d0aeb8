import CLIPEngine
import CLIPNN
import Foundation

/// A COCO-format detection file (`instances.json`): images, box annotations and categories, read
/// and checked (every key present with its type, ids unique and resolvable, boxes finite, of
/// positive size and inside their image). `split` ("base"/"novel") is ours: COCO's open-vocabulary
/// splits live outside the file; a category without it counts as base.
public struct COCODataset: Codable, Sendable {
    public struct Image: Codable, Sendable {
        public var id: Int
        public var file_name: String
        public var width: Int
        public var height: Int
        public init(id: Int, file_name: String, width: Int, height: Int) {
            self.id = id; self.file_name = file_name; self.width = width; self.height = height
        }
    }

    public struct Annotation: Codable, Sendable {
        public var id: Int
        public var image_id: Int
        public var category_id: Int
        /// [x, y, width, height] in pixels.
        public var bbox: [Double]
        public var area: Double?
        public var iscrowd: Int?
        public init(id: Int, image_id: Int, category_id: Int, bbox: [Double], area: Double? = nil, iscrowd: Int? = 0) {
            self.id = id; self.image_id = image_id; self.category_id = category_id; self.bbox = bbox
            self.area = area ?? (bbox.count == 4 ? bbox[2] * bbox[3] : nil); self.iscrowd = iscrowd
        }
    }

    public struct Category: Codable, Sendable {
        public var id: Int
        public var name: String
        public var split: String?
        public init(id: Int, name: String, split: String? = nil) { self.id = id; self.name = name; self.split = split }
        public var isNovel: Bool { split == "novel" }
    }

    public var images: [Image]
    public var annotations: [Annotation]
    public var categories: [Category]

    public init(images: [Image], annotations: [Annotation], categories: [Category]) {
        self.images = images; self.annotations = annotations; self.categories = categories
    }

    /// Reads and checks `url`; errors name the file and the offending entry.
    public static func load(_ url: URL) throws -> COCODataset {
        let data = try InputFile.read(url.path)
        let dataset: COCODataset
        do { dataset = try JSONDecoder().decode(COCODataset.self, from: data) } catch let error as DecodingError {
            throw DetectionError.badFile(url.path, describe(error))
        } catch {
            throw DetectionError.badFile(url.path, "not JSON (\(error.localizedDescription))")
        }
        try dataset.validate(source: url.path)
        return dataset
    }

    /// The checks `load` makes, for data built in memory.
    public func validate(source: String) throws {
        func fail(_ what: String) -> DetectionError { .badFile(source, what) }
        var imageByID: [Int: Image] = [:]
        for (i, image) in images.enumerated() {
            guard imageByID[image.id] == nil else { throw fail("images[\(i)]: duplicate image id \(image.id)") }
            guard image.width > 0, image.height > 0 else { throw fail("images[\(i)] (id \(image.id)): size \(image.width)×\(image.height) is not positive") }
            guard !image.file_name.isEmpty else { throw fail("images[\(i)] (id \(image.id)): empty file_name") }
            imageByID[image.id] = image
        }
        var categoryIDs = Set<Int>()
        var idOfName: [String: Int] = [:]
        for (i, c) in categories.enumerated() {
            guard categoryIDs.insert(c.id).inserted else { throw fail("categories[\(i)]: duplicate category id \(c.id)") }
            guard !c.name.isEmpty else { throw fail("categories[\(i)] (id \(c.id)): empty name") }
            // Detections are asked for by name, so two categories may not share one.
            if let other = idOfName.updateValue(c.id, forKey: c.name) { throw fail("categories[\(i)] (id \(c.id)): name '\(c.name)' is also category \(other)'s") }
            if let split = c.split, split != "base", split != "novel" { throw fail("categories[\(i)] (id \(c.id)): split '\(split)' is neither 'base' nor 'novel'") }
        }
        var annotationIDs = Set<Int>()
        for (i, a) in annotations.enumerated() {
            let at = "annotations[\(i)] (id \(a.id))"
            // pycocotools takes a matched ground truth's id 0 for "unmatched": ids must be positive.
            guard a.id > 0 else { throw fail("\(at): annotation ids must be positive") }
            guard annotationIDs.insert(a.id).inserted else { throw fail("\(at): duplicate annotation id") }
            guard let image = imageByID[a.image_id] else { throw fail("\(at): image_id \(a.image_id) is not among the images") }
            guard categoryIDs.contains(a.category_id) else { throw fail("\(at): category_id \(a.category_id) is not among the categories") }
            guard a.bbox.count == 4, a.bbox.allSatisfy(\.isFinite) else { throw fail("\(at): bbox must be 4 finite numbers [x, y, w, h], got \(a.bbox)") }
            let (x, y, w, h) = (a.bbox[0], a.bbox[1], a.bbox[2], a.bbox[3])
            guard w > 0, h > 0 else { throw fail("\(at): bbox \(a.bbox) has no area") }
            guard x >= 0, y >= 0, x + w <= Double(image.width) + 1e-6, y + h <= Double(image.height) + 1e-6 else {
                throw fail("\(at): bbox \(a.bbox) lies outside its image \(image.file_name) (\(image.width)×\(image.height))")
            }
        }
    }

    public var novelCategoryIDs: Set<Int> { Set(categories.filter(\.isNovel).map(\.id)) }
    public var baseCategoryIDs: Set<Int> { Set(categories.filter { !$0.isNovel }.map(\.id)) }

    /// Writes pretty JSON atomically.
    public func write(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try writeAtomically(try encoder.encode(self), to: url)
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [CodingKey]) -> String {
            keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().trimmingCharacters(in: CharacterSet(charactersIn: "."))
        }
        switch error {
        case .keyNotFound(let key, let context):
            let at = path(context.codingPath)
            return "missing key '\(key.stringValue)'\(at.isEmpty ? "" : " in \(at)")"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "\(path(context.codingPath)): \(context.debugDescription)"
        case .dataCorrupted(let context):
            let at = path(context.codingPath)
            return "\(at.isEmpty ? "" : at + ": ")\(context.debugDescription) \(context.underlyingError.map { "(\($0.localizedDescription))" } ?? "")"
        @unknown default:
            return "\(error)"
        }
    }
}

/// One detection in COCO's results format (`[{image_id, category_id, bbox, score}]`).
public struct COCODetection: Codable, Sendable {
    public var image_id: Int
    public var category_id: Int
    public var bbox: [Double]
    public var score: Double
    public init(image_id: Int, category_id: Int, bbox: [Double], score: Double) {
        self.image_id = image_id; self.category_id = category_id; self.bbox = bbox; self.score = score
    }

    public static func load(_ url: URL) throws -> [COCODetection] {
        let data = try InputFile.read(url.path)
        let list: [COCODetection]
        do { list = try JSONDecoder().decode([COCODetection].self, from: data) } catch let error as DecodingError {
            throw DetectionError.badFile(url.path, COCODataset.describe(error))
        } catch {
            throw DetectionError.badFile(url.path, "not JSON (\(error.localizedDescription))")
        }
        for (i, d) in list.enumerated() {
            guard d.bbox.count == 4, d.bbox.allSatisfy(\.isFinite), d.score.isFinite else {
                throw DetectionError.badFile(url.path, "[\(i)]: bbox must be 4 finite numbers and score finite")
            }
        }
        return list
    }
}

public enum DetectionError: Error, CustomStringConvertible, Equatable {
    case badFile(String, String)
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .badFile(let file, let what): return "\(file): \(what)"
        case .invalidArgument(let what): return what
        }
    }
}

/// `data` to `url` atomically (`AtomicFileWriter`: temporary file, fsync, rename).
public func writeAtomically(_ data: Data, to url: URL) throws {
    try AtomicFileWriter.write(to: url) { try $0.write([UInt8](data)) }
}
