import ArgumentParser
import CLIPEngine
import CLIPSearch
import CLIPSearchPostgres
import Foundation

/// `--model`/`--weights`/`--seed`/`--precision` for index and search: optional, since the index
/// records the model that made it.
struct IndexModelOptions: ParsableArguments {
    @Option(name: .long, help: "Built-in model name or open_clip JSON config (default: the model the index records).")
    var model: String?
    @Option(name: .long, help: "open_clip weights (.safetensors); without them weights are random from --seed.")
    var weights: String?
    @Option(name: .long, help: "Seed for random initialisation when no --weights are given.")
    var seed: UInt64 = 0
    @Option(name: .long, help: "fp32, bf16 or int8 (part of the model's identity in the index).")
    var precision: Precision = .fp32
    @Option(name: .long, help: "Threads for the kernels (default: all cores).")
    var threads: Int?
    @Option(name: .long, help: "CLIP BPE vocabulary (default: $SWIFTCLIP_VOCAB, then assets/).")
    var vocab: String?

    mutating func validate() throws {
        try requireNonEmptyPaths([(model, "--model"), (weights, "--weights"), (vocab, "--vocab")])
        if weights != nil && model == nil { throw ValidationError("--weights needs --model") }
        if let threads {
            guard (1...4096).contains(threads) else { throw ValidationError("--threads must be in 1...4096, got \(threads)") }
            Parallel.threadCount = threads
        }
    }

    var vocabularyURL: URL? { vocab.map { URL(fileURLWithPath: $0) } }

    /// The model named by the options, or one the index records: for `search` its default slot's
    /// (the newest complete), for `index` the newest slot's, so a killed run resumes with its model.
    func load(for index: SearchIndex, newestSlot: Bool = false) throws -> IndexModel {
        if let model { return try IndexModel(model: model, weights: weights, seed: seed, precision: precision, vocabulary: vocabularyURL) }
        guard let newest = try index.slots().last else {
            throw InputError(description: "\(index.location): the index records no model yet; give --model (and --weights)")
        }
        if newestSlot { return try IndexModel(identity: newest.model, vocabulary: vocabularyURL) }
        return try index.loadModel(vocabulary: vocabularyURL)
    }
}

struct DatabaseOption: ParsableArguments {
    @Option(name: .long, help: "The index: an SQLite file (created if absent) or postgresql://user@host:port/db.")
    var db: String
    func validate() throws { try requireNonEmptyPaths([(db, "--db")]) }
}

struct IndexCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "index",
        abstract: "Add folders of JPEG/PNG photos to a search index, or bring it up to date (docs/search.md).",
        discussion: """
        Unchanged files (same size and mtime) are not read again; changed ones are embedded again; \
        moved, renamed or copied ones reuse their vector (content hash); files gone from under a ROOT \
        are tombstoned (revived if they come back). A ROOT that is missing, unreadable or holds no \
        images is an error and marks nothing removed, unless --prune. Each batch is one transaction: \
        a killed run continues where it stopped. Folders named @eaDir (Synology's thumbnails), \
        #recycle, .Trash-*, .Trashes, .git and node_modules are left out unless --no-default-excludes.
        """)

    @OptionGroup var database: DatabaseOption
    @OptionGroup var modelOptions: IndexModelOptions
    @Option(name: .long, help: "Images per transaction (each one read, decoded and embedded whole on one thread).") var batchSize = UpdateOptions().batchSize
    @Flag(name: .long, help: "Tombstone the files of a ROOT that is missing, unreadable or empty.") var prune = false
    @Option(name: .long, help: ArgumentHelp("Leave out folders with this name (a glob such as '.*' or 'Private*'; repeatable); what the index holds under them is tombstoned.", valueName: "name"))
    var exclude: [String] = []
    @Flag(name: .long, help: "Walk the folders left out by default too: \(UpdateOptions.defaultExcludedFolderNames.joined(separator: ", ")).")
    var noDefaultExcludes = false
    @Flag(name: .long, help: "Print what the index holds (files, model slots, failures) and exit.") var status = false
    @Option(name: .long, help: ArgumentHelp("Remove a model slot and its vectors (its id, or 6+ hex digits of its digest, from --status).", valueName: "slot"))
    var dropModel: String?
    @Flag(name: .long, help: "Print the summary (or --status) as JSON.") var json = false
    @Argument(help: "Folders to index.") var roots: [String] = []

    func validate() throws {
        try requireOption(batchSize, in: OptionLimits.batchSize, "--batch-size")
        if !status && dropModel == nil && roots.isEmpty { throw ValidationError("give at least one folder to index (or --status, --drop-model)") }
        if (status || dropModel != nil) && !roots.isEmpty { throw ValidationError("--status and --drop-model take no folders") }
        try requireNonEmptyPaths(roots.map { ($0, "folder argument") })
        // An empty or short digest prefix would match every slot (a `--drop-model "$SLOT"` with SLOT unset).
        if let dropModel {
            let slotID = !dropModel.isEmpty && dropModel.allSatisfy(\.isNumber)
            let digestPrefix = dropModel.count >= 6 && dropModel.allSatisfy(\.isHexDigit)
            if !slotID && !digestPrefix {
                throw ValidationError("--drop-model '\(dropModel)': give a slot id or at least 6 hex digits of its digest (from --status)")
            }
        }
        for name in exclude where name.isEmpty || name.contains("/") {
            throw ValidationError("--exclude '\(name)': give a folder name or a glob of one, without '/'")
        }
    }

    func run() throws {
        try runReportingErrors {
            let index = try IndexDatabase.open(database.db, readOnly: status)
            if status { return try printStatus(index) }
            if let dropModel {
                let slots = try index.slots()
                let matches = slots.filter { String($0.id) == dropModel || $0.model.digest.hasPrefix(dropModel.lowercased()) }
                guard matches.count == 1, let slot = matches.first else {
                    throw InputError(description: "--drop-model \(dropModel): \(matches.isEmpty ? "no such slot" : "names \(matches.count) slots") "
                                     + "(slots: \(slots.map { "\($0.id) \($0.model.digest.prefix(12))" }.joined(separator: ", ")))")
                }
                try index.dropModel(slot: slot)
                print("dropped slot \(slot.id) (\(slot.model.config), \(slot.vectors) vectors)")
                return
            }
            let model = try modelOptions.load(for: index, newestSlot: true)
            let bar = ProgressBar()
            let summary = try index.update(roots: roots, model: model, options: UpdateOptions(batchSize: batchSize, prune: prune,
                excludedFolderNames: (noDefaultExcludes ? [] : UpdateOptions.defaultExcludedFolderNames) + exclude)) { bar.show($0) }
            bar.finish()
            for folder in summary.unreadableFolders { FileHandle.standardError.write(Data("warning: \(folder) (skipped, its files kept)\n".utf8)) }
            for file in summary.unreadableFiles { FileHandle.standardError.write(Data("warning: \(file) (skipped, not marked removed)\n".utf8)) }
            if json {
                print(String(decoding: try JSONEncoder().encode(summary), as: UTF8.self))
            } else {
                print("new \(summary.new), changed \(summary.changed), unchanged \(summary.unchanged), moved \(summary.moved), "
                      + "revived \(summary.revived), removed \(summary.removed), failed \(summary.failed) (embedded \(summary.embedded))"
                      + (summary.excludedFolders > 0 ? "; \(summary.excludedFolders) excluded folders left out" : ""))
            }
            if summary.failed > 0 { FileHandle.standardError.write(Data("\(summary.failed) files could not be read: see --status\n".utf8)) }
        }
    }

    private func printStatus(_ index: SearchIndex) throws {
        let s = try index.status(failureLimit: json ? 1000 : 20)
        if json {
            let slots: [[String: Any]] = s.slots.map {
                ["id": $0.id, "config": $0.model.config, "weights": $0.model.weights as Any, "precision": $0.model.precision,
                 "dimension": $0.model.dimension, "digest": $0.model.digest, "vectors": $0.vectors, "complete": $0.completedAt != nil]
            }
            let object: [String: Any] = ["schema_version": s.schemaVersion, "files": s.live, "removed": s.removed, "failed": s.failed,
                                         "slots": slots, "failures": s.failures.map { ["path": $0.path, "reason": $0.reason] }]
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
            return
        }
        print("files \(s.live), removed (tombstones) \(s.removed), failed \(s.failed), schema \(s.schemaVersion)")
        for slot in s.slots {
            print("slot \(slot.id): \(slot.model.config)\(slot.model.weights.map { " + \($0)" } ?? " (seed \(slot.model.seed))") "
                  + "\(slot.model.precision), dim \(slot.model.dimension), \(slot.vectors) vectors, "
                  + "\(slot.completedAt == nil ? "incomplete" : "complete"), digest \(slot.model.digest.prefix(12))")
        }
        for f in s.failures { print("failed: \(f.path.asOneLine): \(f.reason.asOneLine)") }
        if s.failed > s.failures.count { print("... and \(s.failed - s.failures.count) more") }
    }
}

struct SearchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search",
        abstract: "Search an index by text, image or weighted terms (rclip's syntax: +2:snow -dog).",
        discussion: """
        Terms: `text` (weight 1), `-text` (-1), `+2:text`, `-0.5:text`, `image:PATH`, and as rclip \
        takes them `./q.jpg`, `/abs/q.png`, `file:///q.jpg` (paths from /, ./ or ../ naming an image). The query is the \
        normalised weighted sum of the terms' unit embeddings; results are ranked by cosine similarity \
        over every stored vector (exact search). The model is the one the index records.
        """)

    @OptionGroup var database: DatabaseOption
    @OptionGroup var modelOptions: IndexModelOptions
    @Option(name: .long, help: "Search by this image (may be repeated; adds a term of weight 1).") var image: [String] = []
    @Option(name: .long, help: "Results to show.") var top = 10
    @Option(name: .long, help: "Leave out results scoring below this cosine similarity.") var minScore: Float?
    @Option(name: .long, help: "Only files under this folder.") var under: String?
    @Option(name: .long, help: "PostgreSQL: hnsw.ef_search for this query (higher: better recall, slower).") var efSearch: Int?
    @Flag(name: .long, help: "Print results as JSON (path, score, rank, id).") var json = false
    @Flag(name: .long, help: "List groups of near-duplicate images instead of searching.") var duplicates = false
    @Option(name: .long, help: "Cosine similarity at which --duplicates joins two images.") var threshold: Float = 0.94
    @Argument(parsing: .allUnrecognized, help: "Query terms.") var terms: [String] = []

    func validate() throws {
        guard (1...1_000_000).contains(top) else { throw ValidationError("--top must be in 1...1000000, got \(top)") }
        if let unknown = terms.first(where: { $0.hasPrefix("--") }) { throw ValidationError("unknown option '\(unknown)'") }
        if duplicates { guard terms.isEmpty && image.isEmpty else { throw ValidationError("--duplicates takes no query") } }
        else if terms.isEmpty && image.isEmpty { throw ValidationError("give a query (text terms or --image)") }
        try requireNonEmptyPaths(image.map { ($0, "--image") } + [(under, "--under")])
    }

    func run() throws {
        try runReportingErrors {
            let index = try IndexDatabase.open(database.db, readOnly: true)
            if duplicates {
                let slot = try modelOptions.model == nil ? index.defaultSlot()
                    : index.slot(for: IndexModel.identity(model: modelOptions.model ?? "", weights: modelOptions.weights,
                                                          seed: modelOptions.seed, precision: modelOptions.precision))
                let groups = try index.duplicates(slot: slot, threshold: threshold, under: under)
                if json {
                    print(String(decoding: try JSONEncoder().encode(groups), as: UTF8.self))
                } else {
                    for (g, group) in groups.enumerated() {
                        print("group \(g + 1):")
                        for r in group { print(String(format: "  %.4f  ", r.score) + r.path.asOneLine) }
                    }
                }
                return
            }
            let model = try modelOptions.load(for: index)
            let parsed = try terms.map(QueryTerm.parse) + image.map { QueryTerm(.image(path: $0)) }
            let results = try index.search(parsed, model: model, options: SearchOptions(top: top, minScore: minScore, under: under, efSearch: efSearch))
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                print(String(decoding: try encoder.encode(results), as: UTF8.self))
            } else {
                for r in results { print(String(format: "%3d  %.4f  ", r.rank, r.score) + r.path.asOneLine) }
            }
        }
    }
}

/// A one-line progress bar on stderr when it is a terminal: files done, files/s, ETA.
final class ProgressBar {
    private let enabled = isatty(STDERR_FILENO) == 1
    private var last = Date.distantPast
    private var shown = false

    func show(_ p: IndexProgress) {
        guard enabled, Date().timeIntervalSince(last) > 0.2 || p.done == p.total else { return }
        last = Date()
        let rate = p.elapsed > 0 ? Double(p.done) / p.elapsed : 0
        var line = "\r\(p.phase.rawValue) \(p.done)"
        if let total = p.total, total > 0 {
            let width = 30, filled = min(width, width * p.done / total)
            let eta = rate > 0 ? Double(total - p.done) / rate : 0
            line += "/\(total) [" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "]"
                + String(format: " %.1f files/s, ETA %@", rate, Self.clock(eta))
        } else {
            line += String(format: " files (%.0f/s)", rate)
        }
        FileHandle.standardError.write(Data((line + "   ").utf8))
        shown = true
    }

    func finish() { if shown { FileHandle.standardError.write(Data("\n".utf8)) } }

    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
