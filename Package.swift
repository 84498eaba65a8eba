// swift-tools-version: 6.1
import PackageDescription

// Layers, one way: SplatCore (the domain) <- SplatIO (formats) <- DioramaCLI (commands) <- diorama (executable).
let package = Package(
    name: "Diorama",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "diorama", targets: ["diorama"]),
        .library(name: "SplatCore", targets: ["SplatCore"]),
        .library(name: "SplatIO", targets: ["SplatIO"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(
            name: "CZstd", path: "Sources/CZstd", pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"])]),
        .target(name: "SplatCore"),
        .target(name: "SplatIO", dependencies: ["SplatCore", "CZlib", "CZstd"]),
        .target(
            name: "DioramaCLI",
            dependencies: [
                "SplatCore", "SplatIO",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .executableTarget(name: "diorama", dependencies: ["DioramaCLI"]),
        .testTarget(name: "SplatCoreTests", dependencies: ["SplatCore"]),
        // Fixtures are found next to the test sources (#filePath), so no resource bundle is needed.
        .testTarget(name: "SplatIOTests", dependencies: ["SplatCore", "SplatIO"], exclude: ["Fixtures"]),
        .testTarget(name: "DioramaCLITests", dependencies: ["DioramaCLI", "SplatIO", "SplatCore"]),
    ],
    swiftLanguageModes: [.v6]
)
