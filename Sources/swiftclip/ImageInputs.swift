import ArgumentParser
import CLIPData
import CLIPEngine
import CLIPEvaluation
import CLIPModels
import CLIPNN
import Foundation

/// Where `embed-image`, `classify` and `preprocess` take images from: arguments (files or folders)
/// and `--input-list` files.
struct ImageSourceOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("A file listing inputs, one path per line ('-' reads standard input); blank lines and lines starting with '#' are skipped.", valueName: "file"))
    var inputList: [String] = []
    @Argument(help: "Image files (JPEG, PNG), folders (searched recursively for .jpg/.jpeg/.png, in sorted order), or .npy float32 arrays (N, 3, H, W) already preprocessed.")
    var inputs: [String] = []

    func validate() throws {
        guard !inputs.isEmpty || !inputList.isEmpty else { throw ValidationError("give at least one input (a file, a folder or --input-list)") }
        try requireNonEmptyPaths(inputs.map { ($0, "input argument") } + inputList.map { ($0, "--input-list") })
    }

    /// The inputs in order: arguments first (folders expanded), then each list's lines; with what
    /// inside the folders could not be read (reported as failed inputs, never skipped in silence).
    func paths() throws -> ImageSourceList {
        var paths: [String] = [], unreadable: [String] = []
        func expand(_ path: String) {
            let listing = ImageFiles.expand(path)
            paths += listing.paths
            unreadable += listing.unreadable
        }
        for input in inputs { expand(input) }
        for list in inputList {
            let text: String
            if list == "-" {
                text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
            } else {
                text = String(decoding: try InputFile.read(list), as: UTF8.self)
            }
            for line in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
                let path = line.trimmingCharacters(in: .whitespaces)
                if path.isEmpty || path.hasPrefix("#") { continue }
                expand(path)
            }
        }
        guard !paths.isEmpty else {
            for entry in unreadable { FileHandle.standardError.write(Data("error: \(entry)\n".utf8)) }
            let given = (inputs + inputList.map { "--input-list \($0)" }).prefix(3).joined(separator: ", ")
            throw InputError(description: "no input images: \(given)\(inputs.count + inputList.count > 3 ? ", ..." : "") hold none")
        }
        return ImageSourceList(paths: paths, unreadable: unreadable)
    }
}

/// Image inputs as listed: the paths, and entries of the given folders that could not be read
/// ("path: reason").
struct ImageSourceList {
    var paths: [String]
    var unreadable: [String]
}

/// Images streamed in batches: `.npy` arrays (N, 3, H, W) already preprocessed, or image files
/// (JPEG, PNG) preprocessed as open_clip's eval transform does. `forEachEmbedding` (embed-image,
/// classify) embeds each file whole on one thread (`CLIPModel.embedImageFiles`), as `index` does;
/// `forEachBatch` (preprocess) makes pixel batches on a background thread (`Prefetcher`). Either
/// way memory stays at a few batches for any number of inputs. A file that cannot be read is
/// reported and skipped; `rowNames` say which input each output row is.
struct ImageInputs {

    /// One unit of work: consecutive image files (at most a batch), or one .npy array.
    private enum Chunk { case files([String]), array(String) }

    /// A part of the input, in order: its pixels [N, 3, S, S] (`forEachBatch`) or its embeddings
    /// [N, D] (`forEachEmbedding`), nil when none of its inputs could be read.
    struct Batch {
        var rows: Tensor?
        /// One name per row of `rows` (the file, with the row index for .npy arrays).
        var rowNames: [String] = []
        var failures: [(path: String, error: Error)] = []
        /// How many of the inputs this batch covers (files, or 1 for an array).
        var inputs = 0
        /// An error of the model itself (not of an input): stops the command.
        var modelError: Error?
    }

    let imageSize: Int
    let preprocessor: Preprocessor
    let total: Int
    /// Files per batch (an .npy array is a batch of its own, of any size).
    let batchSize: Int
    private let hasArrays: Bool
    private let chunks: [Chunk]
    /// Entries of the input folders that could not be read: reported and counted as failed.
    private let unreadable: [String]

    /// `preprocessor`: the model's eval transform (`Preprocessor(model:)`).
    init(_ source: ImageSourceList, preprocessor: Preprocessor, batchSize: Int) throws {
        let paths = source.paths
        unreadable = source.unreadable
        let imageSize = preprocessor.imageSize
        self.imageSize = imageSize
        self.batchSize = batchSize
        self.preprocessor = preprocessor
        self.total = paths.count
        var chunks: [Chunk] = [], files: [String] = []
        for path in paths {
            if path.lowercased().hasSuffix(".npy") {
                if !files.isEmpty { chunks.append(.files(files)); files = [] }
                chunks.append(.array(path))
            } else {
                files.append(path)
                if files.count == batchSize { chunks.append(.files(files)); files = [] }
            }
        }
        if !files.isEmpty { chunks.append(.files(files)) }
        self.chunks = chunks
        hasArrays = chunks.contains { if case .array = $0 { return true } else { return false } }
    }

    /// An .npy chunk as a batch: its rows, or the reason it cannot be read.
    private static func arrayBatch(_ path: String, imageSize: Int) -> Batch {
        do {
            let pixels = try readArray(path, imageSize: imageSize)
            return Batch(rows: pixels, rowNames: (0..<pixels.shape[0]).map { "\(path)[\($0)]" }, inputs: 1)
        } catch {
            return Batch(failures: [(path, error)], inputs: 1)
        }
    }

    /// Pixel batches in input order, made ahead on a background thread.
    private func pixelBatches() throws -> Prefetcher<Batch> {
        // The batch being used and two prefetched.
        try requireImageBatchMemory(count: min(total, 3 * batchSize), imageSize: imageSize)
        let preprocessor = self.preprocessor
        let chunks = self.chunks, imageSize = self.imageSize
        return Prefetcher(count: chunks.count) { i in
            switch chunks[i] {
            case .files(let paths):
                let loaded = ImageFiles.load(paths, preprocessor: preprocessor)
                return Batch(rows: loaded.pixels, rowNames: loaded.loaded, failures: loaded.failures, inputs: paths.count)
            case .array(let path):
                return Self.arrayBatch(path, imageSize: imageSize)
            }
        }
    }

    /// Embedded batches in input order: files each decoded and
    /// embedded whole on one thread, arrays one forward pass per image per thread.
    private func embeddedBatches(_ model: CLIPModel, normalize: Bool) throws -> AnyIterator<Batch> {
        try model.requireFileEmbeddingMemory()
        if hasArrays { try model.config.requireImageEmbeddingMemory(batch: batchSize) }
        let chunks = self.chunks, imageSize = self.imageSize, preprocessor = self.preprocessor, batchSize = self.batchSize
        var next = 0
        return AnyIterator {
            guard next < chunks.count else { return nil }
            defer { next += 1 }
            switch chunks[next] {
            case .files(let paths):
                do {
                    let embedded = try model.embedImageFiles(paths, preprocessor: preprocessor, normalize: normalize)
                    return Batch(rows: try embedded.rows(), rowNames: embedded.loaded, failures: embedded.failures, inputs: paths.count)
                } catch {
                    return Batch(modelError: error)
                }
            case .array(let path):
                var batch = Self.arrayBatch(path, imageSize: imageSize)
                do {
                    batch.rows = try batch.rows.map { try Self.embed(model, $0, batchSize: batchSize, normalize: normalize) }
                } catch {
                    return Batch(modelError: error)
                }
                return batch
            }
        }
    }

    /// encode_image of an array's `pixels`, `batchSize` images at a time, one forward pass per image per thread.
    private static func embed(_ model: CLIPModel, _ pixels: Tensor, batchSize: Int, normalize: Bool) throws -> Tensor {
        let n = pixels.shape[0]
        var parts: [Tensor] = []
        for start in stride(from: 0, to: n, by: batchSize) {
            parts.append(try model.encodeImagePerThread(pixels.slice(rows: start..<min(n, start + batchSize)), normalize: normalize))
        }
        return parts.count == 1 ? parts[0] : try Tensor.concatenate(rows: parts)
    }

    private static func readArray(_ path: String, imageSize: Int) throws -> Tensor {
        let t = try NPY.read(URL(fileURLWithPath: path)).floatTensor()
        guard t.rank == 4, t.shape[1] == 3 else {
            throw InputError(description: "\(path): expected a float array (N, 3, H, W), got shape \(t.shape)")
        }
        guard t.shape[0] > 0 else { throw InputError(description: "\(path): the array holds 0 images (shape \(t.shape))") }
        guard t.shape[2] == imageSize, t.shape[3] == imageSize else {
            throw InputError(description: "\(path): images of \(t.shape[2])×\(t.shape[3]), the model takes "
                             + "\(imageSize)×\(imageSize) (preprocess them for this model)")
        }
        return t
    }

    /// Runs `body` on every batch's pixels and names, in order, with progress on a terminal, and
    /// prints each unreadable input on stderr as it comes. Returns how many inputs failed; throws if
    /// none could be read.
    func forEachBatch(label: String, _ body: (Tensor, [String]) throws -> Void) throws -> Int {
        let stream = try pixelBatches()
        return try forEach(label: label, next: { try stream.next() }, body)
    }

    /// `forEachBatch` over the inputs' embeddings (`model.encodeImage`, L2-normalised if asked):
    /// `body` gets each batch's [rows, embed_dim] and names.
    func forEachEmbedding(_ model: CLIPModel, normalize: Bool, label: String, _ body: (Tensor, [String]) throws -> Void) throws -> Int {
        let stream = try embeddedBatches(model, normalize: normalize)
        return try forEach(label: label, next: { stream.next() }, body)
    }

    private func forEach(label: String, next: () throws -> Batch?, _ body: (Tensor, [String]) throws -> Void) throws -> Int {
        let progress = Progress(label: label, total: total)
        var done = 0, failed = unreadable.count, rows = 0
        for entry in unreadable { FileHandle.standardError.write(Data("error: \(entry)\n".utf8)) }
        while let batch = try next() {
            if let error = batch.modelError { throw error }
            for f in batch.failures { Self.report(f) }
            failed += batch.failures.count
            if let batchRows = batch.rows {
                try body(batchRows, batch.rowNames)
                rows += batchRows.shape[0]
            }
            done += batch.inputs
            progress.update(done)
        }
        if rows == 0 { throw InputError(description: "no input could be read") }
        return failed
    }

    static func report(_ f: (path: String, error: Error)) {
        FileHandle.standardError.write(Data("error: \(ImageFiles.message(f))\n".utf8))
    }
}

/// The file beside an output .npy that names its rows: `OUT.rows.txt` for `OUT.npy`, one input per
/// line (a newline inside a name written as `\n`), line i naming row i. Written atomically with
/// the array; none for a FIFO or device output unless a path is given.
struct RowNamesFile {
    private let writer: AtomicFileWriter?

    init(output: String, explicit: String? = nil) throws {
        var info = stat()
        let isDevice = stat(output, &info) == 0 && info.st_mode & S_IFMT != S_IFREG
        let path = explicit ?? (isDevice ? nil : (output.lowercased().hasSuffix(".npy") ? String(output.dropLast(4)) : output) + ".rows.txt")
        writer = try path.map { try AtomicFileWriter(destination: URL(fileURLWithPath: $0)) }
    }

    func append(_ names: [String]) throws {
        try writer?.write(Array(names.map { $0.asOneLine + "\n" }.joined().utf8))
    }

    func commit() throws { try writer?.commit() }
}

extension String {
    /// The name on one line, a newline inside it written as `\n`: how the line-per-path outputs
    /// (rows files, `search`, `--status`) print paths, so a line is always one path.
    var asOneLine: String { replacingOccurrences(of: "\n", with: "\\n") }
}
