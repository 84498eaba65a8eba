import Foundation
import ModelHub
import Testing

/// `ModelPull` against a local server speaking the hub's protocol (`FakeHub`).
struct ModelPullTests {
    static let wanCommit = String(repeating: "1", count: 40)
    static let checkpointCommit = String(repeating: "2", count: 40)
    static let weights = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 7) }
    static let checkpoint = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 40_503 >> 3) }

    static let model = HubModel(
        name: "toy", summary: "",
        parts: [
            .init(repository: "org/base", include: ["model_index.json", "vae/"], required: ["model_index.json", "vae/weights.safetensors"]),
            .init(repository: "lab/extra", include: ["model.ckpt"], required: ["model.ckpt"]),
        ],
        checkpoint: "model.ckpt")

    static func repositories(corrupted: Set<String> = []) -> [FakeRepository] {
        [
            FakeRepository(
                name: "org/base", commit: wanCommit,
                files: [
                    "model_index.json": Array(#"{"_class_name": "WanPipeline"}"#.utf8), "vae/config.json": Array("{}".utf8),
                    "vae/weights.safetensors": weights, "README.md": Array("not wanted".utf8),
                ],
                largeFiles: ["vae/weights.safetensors"], corrupted: corrupted),
            FakeRepository(name: "lab/extra", commit: checkpointCommit, files: ["model.ckpt": checkpoint], largeFiles: ["model.ckpt"], token: "hf_gate"),
        ]
    }

    @Test func aPullLaysOutTheHubsCacheAndAResolvableModel() async throws {
        let cache = temporaryCache()
        try await FakeHub(repositories: Self.repositories()).run { endpoint, log in
            let pull = ModelPull(settings: HubSettings(endpoint: endpoint, token: "hf_gate", cache: cache))
            let summary = try await pull.pull(Self.model)
            #expect(summary.files == 4)
            #expect(summary.downloadedFiles == 4)
            #expect(summary.downloadedBytes == Int64(Self.weights.count + Self.checkpoint.count + 2 + 30))
            #expect(summary.model.folder == cache.snapshot("org/base", commit: Self.wanCommit))
            #expect(summary.model.checkpoint == cache.snapshot("lab/extra", commit: Self.checkpointCommit) + "/model.ckpt")
            // The hub's layout: refs, relative links into blobs named by ETag, the bytes intact; unwanted files absent.
            let base = cache.repositoryFolder("org/base")
            #expect(try String(contentsOfFile: base + "/refs/main", encoding: .utf8) == Self.wanCommit)
            let link = try FileManager.default.destinationOfSymbolicLink(atPath: base + "/snapshots/\(Self.wanCommit)/vae/weights.safetensors")
            #expect(link == "../../../blobs/\(FakeRepository.sha256(Self.weights))")
            #expect(try Array(Data(contentsOf: URL(fileURLWithPath: summary.model.folder + "/vae/weights.safetensors"))) == Self.weights)
            #expect(FileManager.default.fileExists(atPath: base + "/blobs/\(FakeRepository.gitBlob(Array("{}".utf8)))"))
            #expect(!FileManager.default.fileExists(atPath: summary.model.folder + "/README.md"))
            // The token goes to the hub, never to the CDN host.
            let entries = await log.entries
            #expect(entries.contains { $0.path.hasPrefix("/cdn/") })
            #expect(entries.filter { $0.path.hasPrefix("/cdn/") }.allSatisfy { $0.authorization == nil })
            #expect(entries.filter { $0.path.hasPrefix("/api/") }.allSatisfy { $0.authorization == "Bearer hf_gate" })

            // A second pull finds every blob and fetches nothing but the listings.
            let before = entries.count
            let again = try await pull.pull(Self.model)
            #expect(again.downloadedFiles == 0)
            #expect(again.model == summary.model)
            let after = await log.entries.dropFirst(before)
            #expect(after.count == 2)
            #expect(after.allSatisfy { $0.path.hasPrefix("/api/") })
        }
        #expect(try cache.resolve(Self.model).folder == cache.snapshot("org/base", commit: Self.wanCommit))
    }

    @Test func aBrokenTransferResumesWithARange() async throws {
        let cache = temporaryCache()
        try await FakeHub(repositories: Self.repositories()).run(breakOnce: ["vae/weights.safetensors"]) { endpoint, log in
            var progressed: [Int64] = []
            let recorder = ProgressRecorder()
            let summary = try await ModelPull(settings: HubSettings(endpoint: endpoint, token: "hf_gate", cache: cache)).pull(Self.model) { p in
                recorder.add(p)
            }
            progressed = recorder.bytes
            #expect(summary.downloadedFiles == 4)
            let ranges = await log.entries.filter { $0.path.hasPrefix("/cdn/") }.compactMap(\.range)
            #expect(ranges.count == 1)
            let resumedAt = try #require(ranges.first.flatMap { Int($0.dropFirst(6).dropLast()) })
            #expect(resumedAt > 0 && resumedAt < Self.weights.count)
            #expect(try Array(Data(contentsOf: URL(fileURLWithPath: summary.model.folder + "/vae/weights.safetensors"))) == Self.weights)
            #expect(progressed.last == recorder.total)
        }
    }

    @Test func aGatedRepositoryWithoutATokenIsRefusedWithTheFix() async throws {
        let cache = temporaryCache()
        try await FakeHub(repositories: Self.repositories()).run { endpoint, _ in
            let error = await #expect(throws: HubError.self) {
                _ = try await ModelPull(settings: HubSettings(endpoint: endpoint, cache: cache)).pull(Self.model)
            }
            #expect(error?.kind == .hub(status: 401))
            #expect(error?.message.contains("HF_TOKEN") == true)
            #expect(error?.message.contains("lab/extra") == true)
        }
    }

    @Test func corruptBytesNeverBecomeABlob() async throws {
        let cache = temporaryCache()
        try await FakeHub(repositories: Self.repositories(corrupted: ["vae/weights.safetensors"])).run { endpoint, _ in
            let error = await #expect(throws: HubError.self) {
                _ = try await ModelPull(settings: HubSettings(endpoint: endpoint, token: "hf_gate", cache: cache)).pull(Self.model)
            }
            #expect(error?.kind == .verification)
            #expect(error?.message.contains("vae/weights.safetensors is corrupt") == true)
        }
        let blobs = (try? FileManager.default.contentsOfDirectory(atPath: cache.repositoryFolder("org/base") + "/blobs")) ?? []
        #expect(!blobs.contains(FakeRepository.sha256(Self.weights)))
        #expect(!blobs.contains { $0.hasSuffix(".incomplete") })
        #expect(throws: HubError.self) { try cache.resolve(Self.model) }
    }

    /// A listing naming a file outside the snapshot (a hostile mirror) is refused before anything is written.
    @Test func aListingThatWouldEscapeTheCacheIsRefused() async throws {
        let cache = temporaryCache()
        var repositories = Self.repositories()
        repositories[0].files["vae/../../../escape.json"] = Array("{}".utf8)
        try await FakeHub(repositories: repositories).run { endpoint, _ in
            let error = await #expect(throws: HubError.self) {
                _ = try await ModelPull(settings: HubSettings(endpoint: endpoint, token: "hf_gate", cache: cache)).pull(Self.model)
            }
            #expect(error?.kind == .verification && error?.message.contains("cannot hold safely") == true)
        }
        #expect(!FileManager.default.fileExists(atPath: cache.root))
    }

    @Test func offlineUsesTheCacheAndNeverTheNetwork() async throws {
        let cache = temporaryCache()
        let offline = ModelPull(settings: HubSettings(endpoint: "http://127.0.0.1:9", offline: true, cache: cache))
        let error = await #expect(throws: HubError.self) { _ = try await offline.pull(Self.model) }
        #expect(error?.kind == .notDownloaded)
        #expect(error?.message.contains("HF_HUB_OFFLINE") == true)
        try await FakeHub(repositories: Self.repositories()).run { endpoint, _ in
            _ = try await ModelPull(settings: HubSettings(endpoint: endpoint, token: "hf_gate", cache: cache)).pull(Self.model)
        }
        let found = try await offline.pull(Self.model)
        #expect(found.downloadedFiles == 0)
        #expect(found.model.checkpoint?.hasSuffix("/model.ckpt") == true)
    }
}

final class ProgressRecorder: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Int64] = []
    private var last: Int64 = 0
    func add(_ p: PullProgress) {
        lock.withLock {
            values.append(p.bytes)
            last = p.total
        }
    }
    var bytes: [Int64] { lock.withLock { values } }
    var total: Int64 { lock.withLock { last } }
}
