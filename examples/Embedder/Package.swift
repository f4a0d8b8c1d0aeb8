// swift-tools-version:6.0
// A program that depends on SwiftCLIP as any package would: by its git URL and a version.
// scripts/check_downstream.sh builds it against a tagged local clone of this repository.
import PackageDescription

let package = Package(
    name: "Embedder",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(url: "https://github.com/swiftclip/swiftclip", from: "0.2.0"),
    ],
    targets: [
        .executableTarget(name: "Embedder", dependencies: [.product(name: "SwiftCLIP", package: "swiftclip")]),
    ]
)
