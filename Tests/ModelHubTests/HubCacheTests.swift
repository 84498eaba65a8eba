import Foundation
import ModelHub
import Testing

/// A fresh cache root under the temporary folder.
func temporaryCache() -> HubCache {
    HubCache(root: NSTemporaryDirectory() + "diorama-hub-\(UUID().uuidString)")
}

struct HubCacheTests {
    @Test func theRootFollowsHuggingFaceHubsVariables() {
        #expect(HubCache.defaultRoot(environment: ["HOME": "/home/a"]) == "/home/a/.cache/huggingface/hub")
        #expect(HubCache.defaultRoot(environment: ["HOME": "/home/a", "XDG_CACHE_HOME": "/x"]) == "/x/huggingface/hub")
        #expect(HubCache.defaultRoot(environment: ["HOME": "/home/a", "HF_HOME": "~/hf", "XDG_CACHE_HOME": "/x"]) == "/home/a/hf/hub")
        #expect(HubCache.defaultRoot(environment: ["HOME": "/home/a", "HF_HOME": "/hf", "HF_HUB_CACHE": "/cache"]) == "/cache")
        #expect(HubCache.defaultRoot(environment: ["HUGGINGFACE_HUB_CACHE": "/old"]) == "/old")
    }

    @Test func settingsReadTheTokenFileAndOfflineFlag() throws {
        let home = NSTemporaryDirectory() + "diorama-hf-home-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        try "hf_secret\n".write(toFile: home + "/token", atomically: true, encoding: .utf8)
        let fromFile = HubSettings(environment: ["HF_HOME": home, "HF_HUB_OFFLINE": "1"])
        #expect(fromFile.token == "hf_secret")
        #expect(fromFile.offline)
        #expect(fromFile.endpoint == "https://huggingface.co")
        #expect(fromFile.cache.root == home + "/hub")
        let fromVariable = HubSettings(environment: ["HF_HOME": home, "HF_TOKEN": "other", "HF_ENDPOINT": "http://mirror:8080/"])
        #expect(fromVariable.token == "other")
        #expect(!fromVariable.offline)
        #expect(fromVariable.endpoint == "http://mirror:8080")
    }

    @Test func modelsAreNamedAndTheirFilesChosen() throws {
        let flashWorld = try #require(HubModel.named("FlashWorld"))
        #expect(flashWorld.parts.map(\.repository) == ["Wan-AI/Wan2.2-TI2V-5B-Diffusers", "imlixinyang/FlashWorld"])
        let wan = flashWorld.parts[0]
        #expect(wan.wants("vae/diffusion_pytorch_model.safetensors"))
        #expect(wan.wants("transformer/config.json"))
        // FlashWorld brings its own transformer weights: the 10 GB of Wan's are not fetched.
        #expect(!wan.wants("transformer/diffusion_pytorch_model-00001-of-00003.safetensors"))
        #expect(!wan.wants("README.md"))
        #expect(HubModel.named("wan2.2-ti2v-5b")?.parts[0].wants("transformer/diffusion_pytorch_model-00001-of-00003.safetensors") == true)
        #expect(HubModel.named("stable-diffusion") == nil)
    }

    /// FlashWorld's pull fetches the diffusers repository without the transformer's weights: that must not make the
    /// video model look complete.
    @Test func theVideoModelNeedsTheTransformersWeights() throws {
        let cache = temporaryCache()
        let repository = "Wan-AI/Wan2.2-TI2V-5B-Diffusers", commit = String(repeating: "c", count: 40)
        let root = cache.snapshot(repository, commit: commit)
        for file in ["model_index.json", "tokenizer/tokenizer.json", "text_encoder/config.json", "text_encoder/model-00001-of-00002.safetensors",
                     "transformer/config.json", "vae/config.json", "vae/diffusion_pytorch_model.safetensors"] {
            try FileManager.default.createDirectory(atPath: (root + "/" + file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data("x".utf8).write(to: URL(fileURLWithPath: root + "/" + file))
        }
        try cache.record(repository, revision: "main", commit: commit)
        let error = #expect(throws: HubError.self) { try cache.resolve(HubModel.wanVideo) }
        #expect(error?.message.contains("transformer/*.safetensors") == true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: root + "/transformer/diffusion_pytorch_model-00001-of-00003.safetensors"))
        #expect(try cache.resolve(HubModel.wanVideo).folder == root)
    }

    @Test func namesThatWouldLeaveTheCacheAreRecognised() {
        #expect(HubCache.isSafeRelativePath("vae/config.json"))
        for bad in ["", "/etc/passwd", "vae/../../x", "..", "a//b", "./a", "a\\b"] { #expect(!HubCache.isSafeRelativePath(bad), "\(bad)") }
        #expect(HubCache.isHash(String(repeating: "a", count: 64)) && HubCache.isHash(String(repeating: "0", count: 40)))
        #expect(!HubCache.isHash("../../blobs") && !HubCache.isHash(String(repeating: "g", count: 40)))
    }

    @Test func anAbsentOrIncompleteModelNamesTheCommandThatFetchesIt() throws {
        let cache = temporaryCache()
        let model = HubModel(name: "toy", summary: "", parts: [.init(repository: "org/toy", include: ["a.json"], required: ["a.json"])])
        let absent = #expect(throws: HubError.self) { try cache.resolve(model) }
        #expect(absent?.kind == .notDownloaded)
        #expect(absent?.message.contains("diorama model pull toy") == true)
        // A ref pointing at a snapshot without the file is incomplete, not complete.
        try cache.record("org/toy", revision: "main", commit: String(repeating: "a", count: 40))
        let incomplete = #expect(throws: HubError.self) { try cache.resolve(model) }
        #expect(incomplete?.message.contains("lacks a.json") == true)
    }
}
