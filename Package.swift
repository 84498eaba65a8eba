// swift-tools-version: 6.1
import PackageDescription

// Layers, one way: Parallelism (shared helpers) <- SplatCore (the domain) <- SplatIO (formats);
// Cameras (camera model and paths) <- SplatRender (the renderer, with SplatCore); MediaIO (PNG, video) stands alone;
// EngineCore (tensors, dtypes, allocator, the op table) <- EngineCPU (the oracle) <- EngineCUDA; Checkpoints (formats)
// stands alone; ModelLoading joins checkpoints to the engine; Models <- FlashWorld (the 3D pipeline) and Video (Wan2.2
// video) <- Service (HTTP, jobs);
// all of them <- DioramaCLI (commands) <- diorama.
let package = Package(
    name: "Diorama",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "diorama", targets: ["diorama"]),
        .library(name: "SplatCore", targets: ["SplatCore"]),
        .library(name: "SplatIO", targets: ["SplatIO"]),
        .library(name: "Cameras", targets: ["Cameras"]),
        .library(name: "SplatRender", targets: ["SplatRender"]),
        .library(name: "MediaIO", targets: ["MediaIO"]),
        .library(name: "EngineCore", targets: ["EngineCore"]),
        .library(name: "EngineCPU", targets: ["EngineCPU"]),
        .library(name: "EngineCUDA", targets: ["EngineCUDA"]),
        .library(name: "Checkpoints", targets: ["Checkpoints"]),
        .library(name: "Models", targets: ["Models"]),
        .library(name: "FlashWorld", targets: ["FlashWorld"]),
        .library(name: "Video", targets: ["Video"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(
            name: "CZstd", path: "Sources/CZstd", pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"])]),
        .target(name: "Parallelism"),
        .target(name: "SplatCore"),
        .target(name: "SplatIO", dependencies: ["SplatCore", "Parallelism", "CZlib", "CZstd"]),
        .target(name: "Cameras"),
        .target(name: "SplatRender", dependencies: ["SplatCore", "Cameras", "Parallelism"]),
        .target(name: "MediaIO", dependencies: ["CZlib"]),
        .target(name: "EngineCore"),
        .target(name: "EngineCPU", dependencies: ["EngineCore", "Parallelism"]),
        .target(name: "EngineCUDA", dependencies: ["EngineCore", "EngineCPU", "Parallelism"]),
        // The op-table fixtures and their comparison, shared by the tests and `diorama engine selftest`.
        .target(name: "EngineCheck", dependencies: ["EngineCore"]),
        .target(name: "Checkpoints"),
        .target(name: "ModelLoading", dependencies: ["EngineCore", "Checkpoints"]),
        // Models fetched by name into the Hugging Face hub's own cache layout.
        .target(
            name: "ModelHub",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"), .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .target(name: "Models", dependencies: ["EngineCore", "Checkpoints", "ModelLoading", "Cameras"]),
        .target(name: "FlashWorld", dependencies: ["Models", "EngineCore", "Cameras", "SplatCore", "SplatRender", "MediaIO", "Parallelism"]),
        // Wan2.2 text- and image-to-video, beside FlashWorld on the same models.
        .target(name: "Video", dependencies: ["Models", "EngineCore", "Checkpoints", "ModelLoading", "MediaIO"]),
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .target(
            name: "Service",
            dependencies: [
                "FlashWorld", "Video", "Models", "EngineCore", "MediaIO", "SplatIO", "SplatCore", "SplatRender", "Cameras", "CSQLite",
                .product(name: "Hummingbird", package: "hummingbird"), .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"), .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                // The job store many hosts share.
                .product(name: "PostgresNIO", package: "postgres-nio"), .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            // The studio's web files and the OpenAPI document are compiled in by scripts/embed-assets.sh.
            exclude: ["Studio", "Assets"]),
        .target(
            name: "DioramaCLI",
            dependencies: [
                "SplatCore", "SplatIO", "Cameras", "SplatRender", "MediaIO", "EngineCore", "EngineCPU", "EngineCUDA", "EngineCheck",
                "Checkpoints", "ModelLoading", "ModelHub", "Models", "FlashWorld", "Video", "Service",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .executableTarget(name: "diorama", dependencies: ["DioramaCLI"]),
        .testTarget(name: "SplatCoreTests", dependencies: ["SplatCore"]),
        // Fixtures are found next to the test sources (#filePath), so no resource bundle is needed.
        .testTarget(name: "SplatIOTests", dependencies: ["SplatCore", "SplatIO"], exclude: ["Fixtures"]),
        .testTarget(name: "CamerasTests", dependencies: ["Cameras"], exclude: ["Fixtures"]),
        .testTarget(
            name: "SplatRenderTests", dependencies: ["SplatRender", "Cameras", "SplatCore", "SplatIO"],
            exclude: ["Fixtures"]),
        .testTarget(name: "MediaIOTests", dependencies: ["MediaIO", "CZlib"], exclude: ["Fixtures"]),
        .testTarget(name: "EngineTests", dependencies: ["EngineCore", "EngineCPU", "EngineCUDA", "EngineCheck"], exclude: ["Fixtures"]),
        .testTarget(
            name: "ModelTests",
            dependencies: [
                "Models", "FlashWorld", "Video", "EngineCore", "EngineCPU", "EngineCheck", "Checkpoints", "ModelLoading", "Cameras", "SplatCore", "SplatRender", "MediaIO",
            ],
            exclude: ["Fixtures"]),
        .testTarget(
            name: "ServiceTests",
            dependencies: [
                "Service", "FlashWorld", "Video", "EngineCore", "EngineCPU", "SplatCore", "SplatIO", "Cameras", "MediaIO",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]),
        .testTarget(
            name: "ModelHubTests",
            dependencies: [
                "ModelHub", .product(name: "Hummingbird", package: "hummingbird"), .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .testTarget(name: "CheckpointTests", dependencies: ["Checkpoints", "ModelLoading", "EngineCore"], exclude: ["Fixtures"]),
        .testTarget(
            name: "DioramaCLITests",
            dependencies: [
                "DioramaCLI", "SplatIO", "SplatCore", "Cameras", "MediaIO", "Checkpoints", "FlashWorld", "EngineCUDA", "Service",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
    ],
    swiftLanguageModes: [.v6]
)
