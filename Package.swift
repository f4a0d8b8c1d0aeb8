// swift-tools-version:6.0
// SwiftCLIP: CLIP-style image–text models (ConvNeXt-V2 + text Transformer) in Swift.
// One target per layer of DESIGN.md, each depending only on the layers below it.
import PackageDescription

// Hot loops need the CPU's vector units: without a target-CPU flag Swift emits
// neither AVX-512 nor FMA and `SIMD.addProduct` becomes a libm call per lane.
let fastMath: [SwiftSetting] = [
    .unsafeFlags(["-target-cpu", "native"]),
]

let package = Package(
    name: "SwiftCLIP",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "swiftclip", targets: ["swiftclip"]),
        .library(name: "SwiftCLIP", targets: ["CLIPEngine", "CLIPNN", "CLIPModels", "CLIPTokenizer", "CLIPData", "CLIPEvaluation", "CLIPExport"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        // System shims: Debian's C libraries, found with pkg-config.
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CTurboJPEG", path: "Sources/CTurboJPEG", pkgConfig: "libturbojpeg",
                       providers: [.apt(["libturbojpeg0-dev"])]),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG", pkgConfig: "libpng",
                       providers: [.apt(["libpng-dev"])]),

        // Engine: tensors, CPU kernels, threading.
        .target(name: "CLIPEngine", dependencies: ["CBLAS"], swiftSettings: fastMath),
        // nn: parameter tree with open_clip key names, layers, init, safetensors / npy I/O.
        .target(name: "CLIPNN", dependencies: ["CLIPEngine"], swiftSettings: fastMath),
        // models: ConvNeXt(-V2), ViT, text Transformer, CLIP, open_clip JSON configs.
        .target(name: "CLIPModels", dependencies: ["CLIPNN"], swiftSettings: fastMath),
        // tokenizer and data: CLIP BPE; image decoding and preprocessing.
        .target(name: "CLIPTokenizer", dependencies: ["CLIPEngine"], swiftSettings: fastMath),
        .target(name: "CLIPData", dependencies: ["CLIPEngine", "CTurboJPEG", "CPNG"], swiftSettings: fastMath),
        // evaluation: zero-shot classification (and, later, retrieval metrics).
        .target(name: "CLIPEvaluation", dependencies: ["CLIPModels", "CLIPTokenizer", "CLIPData"], swiftSettings: fastMath),
        // export: ONNX writer (protobuf types generated once from onnx.proto, see tools/onnx/regenerate.sh).
        .target(name: "CLIPExport", dependencies: [
            "CLIPModels", .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ], swiftSettings: fastMath),
        // CLI: thin.
        // Fuzzing: the parsers of untrusted input as functions of bytes, and the libFuzzer entry point
        // (built with sanitizers by scripts/fuzz.sh; a plain build is a replay tool).
        .target(name: "CLIPFuzzTargets", dependencies: ["CLIPModels", "CLIPTokenizer", "CLIPData"], swiftSettings: fastMath),
        .executableTarget(name: "swiftclip-fuzz", dependencies: ["CLIPFuzzTargets"], swiftSettings: fastMath),
        .executableTarget(name: "swiftclip", dependencies: [
            "CLIPModels", "CLIPTokenizer", "CLIPData", "CLIPEvaluation", "CLIPExport",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: fastMath),

        .testTarget(name: "CLIPEngineTests", dependencies: ["CLIPEngine"], swiftSettings: fastMath),
        .testTarget(name: "CLIPNNTests", dependencies: ["CLIPNN"], exclude: ["Fixtures"], swiftSettings: fastMath),
        .testTarget(name: "CLIPModelsTests", dependencies: ["CLIPModels"], exclude: ["Fixtures"], swiftSettings: fastMath),
        .testTarget(name: "CLIPTokenizerTests", dependencies: ["CLIPTokenizer"], exclude: ["Fixtures"], swiftSettings: fastMath),
        .testTarget(name: "CLIPEvaluationTests", dependencies: ["CLIPEvaluation"], exclude: ["Fixtures"], swiftSettings: fastMath),
        .testTarget(name: "CLIPExportTests", dependencies: ["CLIPExport"], swiftSettings: fastMath),
        .testTarget(name: "CLIPDataTests", dependencies: ["CLIPData"], exclude: ["Fixtures"], swiftSettings: fastMath),
        .testTarget(name: "CLIPFuzzTests", dependencies: ["CLIPFuzzTargets"], exclude: ["Seeds", "Regressions"], swiftSettings: fastMath),
    ],
    swiftLanguageModes: [.v5]
)
