// swift-tools-version:6.0
// SwiftCLIP: CLIP-style image–text models (ConvNeXt-V2 + text Transformer) in Swift.
// One target per layer (docs/ARCHITECTURE.md), each depending only on the layers below it.
import PackageDescription

let package = Package(
    name: "SwiftCLIP",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "swiftclip", targets: ["swiftclip"]),
        // `import SwiftCLIP`: every layer re-exported, plus the high-level `CLIP` API.
        .library(name: "SwiftCLIP", targets: ["SwiftCLIP"]),
        // `swiftclip serve` as a library (HTTP routes, batching, limits); SwiftCLIP does not depend on it.
        .library(name: "SwiftCLIPServer", targets: ["CLIPServer"]),
        // `import CLIPSearch`: the photo index and search in SQLite. Separate, so an app that only
        // wants embeddings compiles no database code.
        .library(name: "SwiftCLIPSearch", targets: ["CLIPSearch"]),
        // `import CLIPSearchPostgres`: the same index in PostgreSQL + pgvector (postgres-nio, which
        // brings swift-nio-ssl's BoringSSL: kept out of SwiftCLIPSearch for apps that only want SQLite).
        .library(name: "SwiftCLIPSearchPostgres", targets: ["CLIPSearchPostgres"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        // System shims: Debian's C libraries, found with pkg-config.
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CTurboJPEG", path: "Sources/CTurboJPEG", pkgConfig: "libturbojpeg",
                       providers: [.apt(["libturbojpeg0-dev"])]),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG", pkgConfig: "libpng",
                       providers: [.apt(["libpng-dev"])]),
        // Open MPI (optional): with libopenmpi-dev, pkg-config `ompi-c` supplies mpi.h and -lmpi; without
        // it the shim's functions report "built without MPI" and everything but multi-rank training works.
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),

        // Kernels: the SIMD inner loops in C, one variant per instruction-set level (AVX-512, AVX2+FMA,
        // portable SSE2/NEON) chosen at run time. No build flags: each variant carries its target
        // attribute, so the package stays usable as a versioned dependency and the binary runs on any CPU.
        .target(name: "CLIPKernels"),
        // Engine: tensors, ops (shape checks, threading) over the kernels, GEMM.
        .target(name: "CLIPEngine", dependencies: ["CBLAS", "CLIPKernels"]),
        // nn: parameter tree with open_clip key names, layers, init, safetensors / npy I/O.
        .target(name: "CLIPNN", dependencies: ["CLIPEngine"]),
        // models: ConvNeXt(-V2), ViT, text Transformer, CLIP, open_clip JSON configs.
        .target(name: "CLIPModels", dependencies: ["CLIPNN"]),
        // tokenizer and data: CLIP BPE; image decoding and preprocessing.
        .target(name: "CLIPTokenizer", dependencies: ["CLIPEngine"]),
        .target(name: "CLIPData", dependencies: ["CLIPEngine", "CTurboJPEG", "CPNG"]),
        // evaluation: zero-shot classification (and, later, retrieval metrics).
        .target(name: "CLIPEvaluation", dependencies: ["CLIPModels", "CLIPTokenizer", "CLIPData"]),
        // distributed: the MPI communicator (rank, size, broadcast, all-gather, allreduce) over CMPI.
        .target(name: "CLIPDistributed", dependencies: ["CMPI"]),
        // training: open_clip's ClipLoss, AdamW with open_clip_train's parameter groups, lr schedules, the train step.
        .target(name: "CLIPTraining", dependencies: ["CLIPModels", "CLIPData", "CLIPTokenizer", "CLIPEvaluation", "CLIPDistributed"]),
        // detection: dense and region CLIP features of ConvNeXt towers, the box head and its training, COCO files and mAP.
        .target(name: "CLIPDetection", dependencies: ["CLIPModels", "CLIPData", "CLIPTokenizer", "CLIPTraining"]),
        // export: ONNX writer (protobuf types generated once from onnx.proto, see tools/onnx/regenerate.sh).
        .target(name: "CLIPExport", dependencies: [
            "CLIPModels", .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ]),
        // search: the incremental photo index (schema, change detection, model slots), its stores, exact search.
        .target(name: "CLIPSearch", dependencies: [
            "CLIPModels", "CLIPTokenizer", "CLIPData", "CLIPEvaluation", .product(name: "GRDB", package: "GRDB.swift"),
        ]),
        // search in PostgreSQL + pgvector: the store behind the same `SearchIndex`, and indexing by several processes at once.
        .target(name: "CLIPSearchPostgres", dependencies: [
            "CLIPSearch", "CLIPData", .product(name: "PostgresNIO", package: "postgres-nio"),
        ]),
        // Umbrella module for other Swift packages: re-exports the layers; a small high-level API.
        .target(name: "SwiftCLIP", dependencies: ["CLIPModels", "CLIPTokenizer", "CLIPData", "CLIPEvaluation", "CLIPExport", "CLIPTraining", "CLIPDetection"]),
        // serving: the HTTP service (`swiftclip serve`): routes, cross-request batching, limits, auth, metrics, the page.
        .target(name: "CLIPServer", dependencies: [
            "CLIPModels", "CLIPTokenizer", "CLIPData", "CLIPEvaluation", "CLIPSearch", "CLIPDetection",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),
        // CLI: thin.
        // Fuzzing: the parsers of untrusted input as functions of bytes, and the libFuzzer entry point
        // (built with sanitizers by scripts/fuzz.sh; a plain build is a replay tool).
        .target(name: "CLIPFuzzTargets", dependencies: ["CLIPModels", "CLIPTokenizer", "CLIPData", "CLIPSearch", "CLIPDetection"]),
        .executableTarget(name: "swiftclip-fuzz", dependencies: ["CLIPFuzzTargets"]),
        .executableTarget(name: "swiftclip", dependencies: [
            "CLIPModels", "CLIPTokenizer", "CLIPData", "CLIPEvaluation", "CLIPExport", "CLIPTraining", "CLIPDistributed", "CLIPDetection",
            "CLIPSearch", "CLIPSearchPostgres", "CLIPServer", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .testTarget(name: "CLIPEngineTests", dependencies: ["CLIPEngine", "CLIPKernels"]),
        .testTarget(name: "CLIPNNTests", dependencies: ["CLIPNN"], exclude: ["Fixtures"]),
        .testTarget(name: "CLIPModelsTests", dependencies: ["CLIPModels"], exclude: ["Fixtures"]),
        .testTarget(name: "CLIPTokenizerTests", dependencies: ["CLIPTokenizer", "CLIPEngine"], exclude: ["Fixtures"]),
        .testTarget(name: "CLIPEvaluationTests", dependencies: ["CLIPEvaluation"], exclude: ["Fixtures"]),
        .testTarget(name: "CLIPTrainingTests", dependencies: ["CLIPTraining", "CLIPModels", "CLIPNN", "CLIPEngine"], exclude: ["Fixtures"]),
        .testTarget(name: "CLIPExportTests", dependencies: ["CLIPExport"]),
        .testTarget(name: "CLIPDetectionTests", dependencies: ["CLIPDetection", "CLIPModels", "CLIPNN", "CLIPEngine", "CLIPData", "CLIPTraining"], exclude: ["Fixtures"]),
        .testTarget(name: "SwiftCLIPTests", dependencies: ["SwiftCLIP"]),
        .testTarget(name: "CLIPDataTests", dependencies: ["CLIPData"], exclude: ["Fixtures"]),
        .testTarget(name: "CLIPServerTests", dependencies: ["CLIPServer", "CLIPSearch", "CLIPDetection", "CLIPModels", "CLIPTokenizer", "CLIPData", "CLIPEngine"]),
        .testTarget(name: "CLIPSearchTests", dependencies: ["CLIPSearch", "CLIPSearchPostgres", .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "CLIPFuzzTests", dependencies: ["CLIPFuzzTargets"], exclude: ["Seeds", "Regressions"]),
    ],
    swiftLanguageModes: [.v5]
)
