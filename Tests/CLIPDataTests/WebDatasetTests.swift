import CLIPEngine
import Foundation
import XCTest
import CLIPData

/// Webdataset shards: the tar reader against archives GNU tar and Python's tarfile write, the
/// shard list syntax, make-shards' layout, the loader's split across ranks and workers, its
/// determinism and resume, and damaged shards skipped with warnings naming shard and key.
final class WebDatasetTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("swiftclip-wds-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// A CSV of `count` synthetic PNGs (captions "caption i" … from the set) and its pairs.
    func csv(_ count: Int, size: Int = 32) throws -> CSVPairs {
        let set = try SyntheticShapes(seed: 4, count: count, imageSize: size)
        var text = "filepath\ttitle\n"
        for i in 0..<count {
            try PNGEncoder.encode(set.sample(i).image).write(to: dir.appendingPathComponent("\(i).png"))
            text += "\(i).png\tsample \(i): \(set.sample(i).caption)\n"
        }
        try Data(text.utf8).write(to: dir.appendingPathComponent("train.csv"))
        return try CSVPairs(file: dir.appendingPathComponent("train.csv"))
    }

    func run(_ arguments: [String], in folder: URL) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = arguments
        p.currentDirectoryURL = folder
        try p.run()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, arguments.joined(separator: " "))
    }

    func members(_ path: String) throws -> [TarMember] {
        let r = try TarReader(path: path)
        var out: [TarMember] = []
        while let m = try r.next() { out.append(m) }
        return out
    }

    func testReadsWhatGNUTarAndPythonsTarfileWriteIncludingLongNames() throws {
        let long = String(repeating: "d", count: 120)
        let src = dir.appendingPathComponent("src")
        try FileManager.default.createDirectory(at: src.appendingPathComponent("sub"), withIntermediateDirectories: true)
        try Data("hello".utf8).write(to: src.appendingPathComponent("a.txt"))
        try Data(repeating: 7, count: 1000).write(to: src.appendingPathComponent("sub/\(long).bin"))
        try Data().write(to: src.appendingPathComponent("empty.txt"))
        for format in ["gnu", "pax", "ustar"] where format != "ustar" {
            try run(["tar", "--format=\(format)", "-cf", "../\(format).tar", "a.txt", "sub", "empty.txt"], in: src)
            let got = try members(dir.appendingPathComponent("\(format).tar").path)
            XCTAssertEqual(got.map(\.name), ["a.txt", "sub/\(long).bin", "empty.txt"], format)
            XCTAssertEqual(got.map(\.data), [Data("hello".utf8), Data(repeating: 7, count: 1000), Data()], format)
        }
        // Ours, read back by Python's tarfile.
        let ours = dir.appendingPathComponent("ours.tar").path
        let w = try TarWriter(path: ours)
        try w.add(name: "000000001.jpg", data: Data(repeating: 1, count: 513))
        try w.add(name: "000000001.txt", data: Data("a cat".utf8))
        try w.finish()
        XCTAssertEqual(try members(ours).map(\.data.count), [513, 5])
        let py = Process()
        py.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        py.arguments = ["python3", "-c", "import sys, tarfile; t = tarfile.open(sys.argv[1]); print(' '.join(f'{m.name}:{m.size}' for m in t))", ours]
        let pipe = Pipe()
        py.standardOutput = pipe
        try py.run()
        py.waitUntilExit()
        XCTAssertEqual(String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self), "000000001.jpg:513 000000001.txt:5\n")
    }

    func testShardListsExpandBracesAndJoinSourcesAsOpenCLIPDoes() throws {
        XCTAssertEqual(try ShardList.expand("s/{00000..00002}.tar"), ["s/00000.tar", "s/00001.tar", "s/00002.tar"])
        XCTAssertEqual(try ShardList.expand("a/{0..2}.tar::b/{x,y}-{8..10..2}.tar"),
                       ["a/0.tar", "a/1.tar", "a/2.tar", "b/x-8.tar", "b/x-10.tar", "b/y-8.tar", "b/y-10.tar"])
        XCTAssertEqual(try ShardList.expand("{a,b{1,2}}.tar"), ["a.tar", "b1.tar", "b2.tar"])
        XCTAssertEqual(try ShardList.expand("{3..1}{x}.tar"), ["3{x}.tar", "2{x}.tar", "1{x}.tar"])
        XCTAssertEqual(try ShardList.expand("{a..c}.tar"), ["a.tar", "b.tar", "c.tar"])
        for bad in ["s/{0..3.tar", "s/}.tar", "{0..99999999}.tar", "::"] {
            XCTAssertThrowsError(try ShardList.expand(bad), bad)
        }
        XCTAssertThrowsError(try ShardList.existingShards(dir.path + "/{0..1}.tar")) { error in
            XCTAssertTrue("\(error)".contains("0.tar") && "\(error)".contains("shard"), "\(error)")
        }
    }

    /// What reading the code for the fuzz targets found: ranges at Int's limits and a character
    /// range of step 0 trapped, products of groups and long names had no bound on memory or time,
    /// sizes.json counts could overflow the total. Each is now a DatasetError naming the spec or file.
    func testShardListsRefuseRunawayRangesAndOverflowsWithClearErrors() throws {
        func message(_ spec: String) -> String {
            do { _ = try ShardList.expand(spec); return "no error" } catch { return "\(error)" }
        }
        XCTAssertTrue(message("{-9223372036854775808..9223372036854775807}.tar").contains("more than 1000000 shards"))
        XCTAssertTrue(message("{0..9223372036854775807}").contains("more than 1000000 shards"))
        XCTAssertEqual(try ShardList.expand("{0..9223372036854775807..9223372036854775807}"), ["0", "9223372036854775807"])
        XCTAssertEqual(try ShardList.expand("{5..-9223372036854775808..-9223372036854775808}"), ["5", "-9223372036854775803"])
        XCTAssertEqual(try ShardList.expand("{-9223372036854775808..-9223372036854775807}"), ["-9223372036854775808", "-9223372036854775807"])
        XCTAssertTrue(message("{a..z..0}.tar").contains("range step 0"), message("{a..z..0}.tar"))
        XCTAssertEqual(try ShardList.expand("{a..z..-9223372036854775808}"), ["a"])
        XCTAssertEqual(try ShardList.expand("{z..a..12}"), ["z", "n", "b"])
        XCTAssertEqual(try ShardList.expand("{-02..02..2}.tar"), ["-02.tar", "000.tar", "002.tar"])
        let start = Date()
        for (spec, expected) in [("s/{0..999}/{0..999}/{0..999}.tar", "shards"),                       // 10⁹ names
                                 (String(repeating: "{a,b}", count: 4000), "brace groups"),            // 2⁴⁰⁰⁰, and 4000 levels
                                 (String(repeating: "{{a},{b}}", count: 30), "steps"),                // 2³⁰ rescans
                                 (String(repeating: "p", count: 60_000) + "{000000..099999}", "MB of shard names"),
                                 ("{" + String(repeating: "0", count: 30_000) + "..99999}", "MB of shard names"),
                                 (Array(repeating: "s/{0..999999}.tar", count: 8).joined(separator: "::"), "more than 1000000 shards")] {
            let m = message(spec)
            XCTAssertTrue(m.contains(spec.prefix(40)) && m.contains(expected) && m != "no error", "\(spec.prefix(60)): \(m.prefix(300))")
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 30, "refused without building the expansion")
        // The limits leave room for a million shards under a long prefix.
        let million = try ShardList.expand("s3://" + String(repeating: "d", count: 150) + "/{000000..999999}.tar")
        XCTAssertEqual(million.count, 1_000_000)
        XCTAssertEqual(million.last, "s3://" + String(repeating: "d", count: 150) + "/999999.tar")
        let sizes = dir.appendingPathComponent("sizes.json")
        try Data(#"{"a.tar": 9223372036854775807, "b.tar": 1}"#.utf8).write(to: sizes)
        XCTAssertThrowsError(try ShardList.sampleCount(["a.tar", "b.tar"].map { dir.appendingPathComponent($0).path })) { error in
            XCTAssertTrue("\(error)".contains("sizes.json") && "\(error)".contains("add up"), "\(error)")
        }
    }

    /// A pax header whose second record claims a length near Int.max trapped (i + length overflowed).
    func testAPaxRecordLengthNearIntMaxIsIgnoredNotATrap() throws {
        var archive = [UInt8]()
        func header(_ name: String, size: Int, type: Character) -> [UInt8] {
            var h = [UInt8](repeating: 0, count: 512)
            for (i, b) in name.utf8.enumerated() { h[i] = b }
            for (i, b) in String(format: "%011o", size).utf8.enumerated() { h[124 + i] = b }
            h[156] = type.asciiValue!
            for (i, b) in "ustar\u{0}00".utf8.enumerated() { h[257 + i] = b }
            for i in 148..<156 { h[i] = 32 }
            for (i, b) in String(format: "%06o", h.reduce(0) { $0 + Int($1) }).utf8.enumerated() { h[148 + i] = b }
            h[154] = 0
            return h
        }
        let pax = Array("8 a=bcd\n9223372036854775807 path=x\n".utf8)
        archive += header("pax", size: pax.count, type: "x") + pax + [UInt8](repeating: 0, count: 512 - pax.count)
        archive += header("000.txt", size: 3, type: "0") + Array("cat".utf8) + [UInt8](repeating: 0, count: 509 + 1024)
        let url = dir.appendingPathComponent("pax.tar")
        try Data(archive).write(to: url)
        let reader = try TarReader(path: url.path)
        let member = try XCTUnwrap(try reader.next())
        XCTAssertEqual(member.name, "000.txt", "the header's own name, the pax path being unreadable")
        XCTAssertEqual(member.data, Data("cat".utf8))
        XCTAssertNil(try reader.next())
    }

    func testMakeShardsWritesImg2datasetsLayoutAndSizes() throws {
        let pairs = try csv(7)
        let out = dir.appendingPathComponent("shards")
        let summary = try ShardWriter.write(pairs, to: out, samplesPerShard: 3)
        XCTAssertEqual(summary.shards.map(\.lastPathComponent), ["00000.tar", "00001.tar", "00002.tar"])
        XCTAssertEqual(try members(summary.shards[0].path).map(\.name),
                       ["000000000.png", "000000000.txt", "000000000.json", "000000001.png", "000000001.txt", "000000001.json",
                        "000000002.png", "000000002.txt", "000000002.json"])
        XCTAssertEqual(try ShardList.sampleCount(ShardList.existingShards(out.path + "/{00000..00002}.tar")), 7)
        XCTAssertEqual(try ShardList.sampleCount(ShardList.existingShards(out.path + "/{00000..00001}.tar")), 6)
        var reader = WebDatasetSampleReader()
        var list = summary.shards.map(\.path).makeIterator()
        var samples: [WebDatasetSample] = []
        while let s = reader.next(nextShard: { list.next() }) { samples.append(s) }
        XCTAssertEqual(samples.map(\.caption), pairs.captions)
        XCTAssertEqual(samples.map(\.cropID), (0..<7).map(UInt64.init))
        XCTAssertEqual(samples[4].image, try Data(contentsOf: pairs.images[4]), "the image file's bytes, unchanged")
        XCTAssertTrue(reader.messages.isEmpty, "\(reader.messages)")
    }

    /// Every sample of an epoch from the shards, by key, over `worldSize` ranks.
    func epoch(_ shards: [String], batch: Int, batches: Int, workers: Int, worldSize: Int = 1, epoch: Int = 0,
               start: Int = 0, resampled: Bool = false) throws -> [[TrainingBatch]] {
        try (0..<worldSize).map { rank in
            let loader = try WebDatasetLoader(shards: shards, transform: TrainTransform(imageSize: 24), batchSize: batch, seed: 3, epoch: epoch,
                                              batchCount: batches, workers: workers, rank: rank, worldSize: worldSize, resampled: resampled,
                                              buffer: (8, 3), startBatch: start)
            var out: [TrainingBatch] = []
            while let b = try loader.next() { out.append(b) }
            return out
        }
    }

    func testAnEpochSeesEverySampleOnceAcrossRanksAndWorkersAndResumesExactly() throws {
        let pairs = try csv(12)
        let shards = try ShardWriter.write(pairs, to: dir.appendingPathComponent("s"), samplesPerShard: 3).shards.map(\.path)
        let key = { (k: String) in Int(k.split(separator: "#").last!)! }
        // One rank, two workers: 12 samples in 3 batches of 4 (open_clip's count, rounded up to the workers: 4).
        XCTAssertEqual(WebDatasetLoader.batchesPerEpoch(samples: 12, batchSize: 4, worldSize: 1, workers: 2), 4)
        let one = try epoch(shards, batch: 4, batches: 3, workers: 1)[0]
        XCTAssertEqual(one.flatMap(\.keys).map(key).sorted(), Array(0..<12), "each sample once")
        XCTAssertEqual(one.flatMap(\.captions).sorted(), pairs.captions.sorted())
        // The crops are those of the CSV loader (seeded by the key = CSV row).
        let csvLoader = try BatchLoader(source: pairs, transform: TrainTransform(imageSize: 24), batchSize: 12, seed: 3, epoch: 0, workers: 1)
        let all = try XCTUnwrap(csvLoader.next())
        let rows = 3 * 24 * 24
        for b in one {
            for (r, k) in b.keys.map(key).enumerated() {
                let row = all.indices.firstIndex(of: k)!
                XCTAssertEqual(Array(b.images.scalars[(r * rows)..<((r + 1) * rows)]), Array(all.images.scalars[(row * rows)..<((row + 1) * rows)]), "sample \(k)")
            }
        }
        // Two ranks × two workers: disjoint shards, all samples between them.
        let split = try epoch(shards, batch: 3, batches: 2, workers: 2, worldSize: 2)
        let keys = split.map { Set($0.flatMap(\.keys).map(key)) }
        XCTAssertTrue(keys[0].isDisjoint(with: keys[1]))
        XCTAssertEqual(keys[0].union(keys[1]), Set(0..<12))
        // Deterministic, resumable, reshuffled each epoch.
        let again = try epoch(shards, batch: 3, batches: 2, workers: 2, worldSize: 2)
        XCTAssertEqual(again.map { $0.map(\.keys) }, split.map { $0.map(\.keys) })
        let resumed = try epoch(shards, batch: 3, batches: 2, workers: 2, worldSize: 2, start: 1)
        XCTAssertEqual(resumed.map { $0.map(\.keys) }, split.map { Array($0[1...]).map(\.keys) })
        XCTAssertEqual(resumed[1][0].images.scalars, split[1][1].images.scalars)
        let next = try epoch(shards, batch: 4, batches: 3, workers: 1, epoch: 1)[0]
        XCTAssertNotEqual(next.map(\.keys), one.map(\.keys), "a fresh shuffle each epoch")
        XCTAssertEqual(next.flatMap(\.keys).map(key).sorted(), Array(0..<12))
        // More batches than samples: the worker goes round its shards again.
        XCTAssertEqual(try epoch(shards, batch: 4, batches: 5, workers: 1)[0].count, 5)
        // Resampled: shards drawn with replacement, any number of workers and ranks.
        let drawn = try epoch(Array(shards.prefix(1)), batch: 2, batches: 3, workers: 2, worldSize: 2, resampled: true)
        XCTAssertEqual(drawn.map(\.count), [3, 3])
        XCTAssertTrue(drawn.joined().flatMap(\.keys).allSatisfy { (0..<3).contains(key($0)) })
        XCTAssertThrowsError(try epoch(Array(shards.prefix(3)), batch: 2, batches: 1, workers: 2, worldSize: 2)) { error in
            XCTAssertTrue("\(error)".contains("3 shard(s) for 2 worker(s) × 2 rank(s)"), "\(error)")
        }
    }

    func testDamagedShardsAreSkippedWithWarningsNamingShardAndKey() throws {
        let pairs = try csv(6)
        let shards = try ShardWriter.write(pairs, to: dir.appendingPathComponent("s"), samplesPerShard: 3).shards.map(\.path)
        // Shard 0: cut inside sample 2's image. Shard 1: sample 4's image bytes replaced by garbage.
        let cut = try members(shards[0]).first { $0.name == "000000002.png" }!
        let bytes = try Data(contentsOf: URL(fileURLWithPath: shards[0]))
        try bytes.prefix(cut.offset + 512 + 100).write(to: URL(fileURLWithPath: shards[0]))
        var second = [UInt8](try Data(contentsOf: URL(fileURLWithPath: shards[1])))
        let image = try members(shards[1]).first { $0.name == "000000004.png" }!
        for i in (image.offset + 512 + 16)..<(image.offset + 512 + 200) { second[i] = 0x55 }
        try Data(second).write(to: URL(fileURLWithPath: shards[1]))
        // A third shard whose header checksum is wrong after its first sample.
        let third = dir.appendingPathComponent("s/00002.tar").path
        let w = try TarWriter(path: third)
        try w.add(name: "000000009.png", data: try Data(contentsOf: pairs.images[0]))
        try w.add(name: "000000009.txt", data: Data("nine".utf8))
        try w.add(name: "000000010.png", data: try Data(contentsOf: pairs.images[1]))
        try w.finish()
        var t = [UInt8](try Data(contentsOf: URL(fileURLWithPath: third)))
        let h = try members(third)[2].offset
        t[h + 3] ^= 0x20
        try Data(t).write(to: URL(fileURLWithPath: third))

        // Six whole samples are left (0, 1, 3, 4, 5, 9); sample 4's image does not decode.
        let loader = try WebDatasetLoader(shards: shards + [third], transform: TrainTransform(imageSize: 24), batchSize: 6, seed: 0, epoch: 0,
                                          batchCount: 1, workers: 1, buffer: (100, 100))
        let batch = try XCTUnwrap(loader.next())
        let keys = Set(batch.keys.map { String($0.split(separator: "#").last!) })
        XCTAssertEqual(keys, ["000000000", "000000001", "000000003", "000000005", "000000009"])
        XCTAssertEqual(batch.images.shape[0], 5)
        let messages = batch.skipped.map(\.message)
        XCTAssertEqual(messages.count, 3, "\(messages)")
        XCTAssertTrue(messages.contains { $0.contains(shards[0]) && $0.contains("truncated") && $0.contains("000000002.png") }, "\(messages)")
        XCTAssertTrue(messages.contains { $0.contains("00002.tar") && $0.contains("checksum") && $0.contains("000000009") }, "\(messages)")
        XCTAssertTrue(messages.contains { $0.contains(shards[1]) && $0.contains("sample 000000004") && $0.contains("PNG") }, "\(messages)")
        // The garbled image decodes to an error only when the batch that holds it is built.
        let later = try WebDatasetLoader(shards: [shards[1]], transform: TrainTransform(imageSize: 24), batchSize: 3, seed: 0, epoch: 0,
                                         batchCount: 1, workers: 1)
        let b = try XCTUnwrap(later.next())
        XCTAssertEqual(b.images.shape[0], 2)
        XCTAssertTrue(b.skipped.count == 1 && b.skipped[0].message.contains(shards[1]) && b.skipped[0].message.contains("sample 000000004"),
                      "\(b.skipped)")
        // Shards with nothing readable: an error naming them, not a hang.
        let empty = dir.appendingPathComponent("empty.tar").path
        try Data(count: 1024).write(to: URL(fileURLWithPath: empty))
        let none = try WebDatasetLoader(shards: [empty], transform: TrainTransform(imageSize: 24), batchSize: 2, seed: 0, epoch: 0,
                                        batchCount: 1, workers: 1)
        XCTAssertThrowsError(try none.next()) { XCTAssertTrue("\($0)".contains("empty.tar") && "\($0)".contains("no readable"), "\($0)") }
    }
}
