import CLIPData
import CLIPEngine
import CLIPSearch
import Foundation

/// `/v1/search` and the result images over an index made by `swiftclip index` (`--db`). The index
/// must hold vectors of the served model (same config, weights, seed, precision): otherwise the
/// server refuses to start, naming the models the index has. Queries are embedded through the
/// server's batching queues; the index is opened read-only and searched exactly.
final class SearchService: @unchecked Sendable {
    let index: SearchIndex
    let slot: ModelSlot
    private let thumbnails = Preprocessor(imageSize: 256)
    private let cacheLock = NSLock()
    private var cache: [Int64: Data] = [:]
    private var cacheOrder: [Int64] = []

    init(database: String, configuration c: ServerConfiguration) throws {
        index = try c.openIndex(database)
        // Many searches: keep the slot's vectors in memory, reloaded when `swiftclip index` commits.
        index.keepsVectorsInMemory = true
        let identity = try IndexModel.identity(model: c.model, weights: c.weights?.path, seed: c.seed, precision: c.precision)
        slot = try index.slot(for: identity)
    }

    func search(vector: [Float], top: Int, minScore: Float?) throws -> [SearchResult] {
        do { return try index.search(vector: vector, slot: slot, options: SearchOptions(top: top, minScore: minScore)) } catch let e as SearchError {
            throw APIError.badRequest(e.description)
        }
    }

    /// The indexed file's bytes, and its media type from its magic bytes.
    func image(id: Int64) throws -> (data: Data, type: String) {
        guard let path = try index.imagePath(id: id) else { throw APIError(.notFound, "not_found", "no live image with id \(id) in the index") }
        let data: Data
        do { data = try InputFile.read(path, maximumBytes: ImageDecoder.maximumFileBytes) } catch {
            throw APIError(.notFound, "not_found", "image \(id) is in the index but cannot be read now: \(error)")
        }
        let type = data.starts(with: [0x89, 0x50, 0x4E, 0x47]) ? "image/png" : data.starts(with: [0xFF, 0xD8, 0xFF]) ? "image/jpeg" : "application/octet-stream"
        return (data, type)
    }

    /// A 256 × 256 centre crop as PNG (the page shows square tiles), turned upright by the JPEG's
    /// EXIF orientation as the browser turns the full image; the last 512 are kept.
    func thumbnail(id: Int64) throws -> Data {
        if let hit = cacheLock.withLock({ cache[id] }) { return hit }
        let file = try image(id: id)
        let orientation = EXIFOrientation.read(jpeg: file.data)
        let png = try Parallel.withThreads(1) {
            // The centre square of the stored pixels is the centre square of the upright photo, turned.
            PNGEncoder.encode(EXIFOrientation.apply(orientation, to: thumbnails.resizeAndCrop(try ImageDecoder.decode(file.data, name: "image \(id)"))))
        }
        cacheLock.withLock {
            if cache[id] == nil { cacheOrder.append(id) }
            cache[id] = png
            if cacheOrder.count > 512 { cache[cacheOrder.removeFirst()] = nil }
        }
        return png
    }
}
