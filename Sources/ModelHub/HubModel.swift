/// A model Diorama can fetch by name: which files of which hub repositories it needs, and how they make the model
/// folder the loaders read.
public struct HubModel: Sendable, Equatable {
    /// One repository's part of a model: the files, as exact paths or folder prefixes ending in "/".
    public struct Part: Sendable, Equatable {
        public var repository: String
        public var revision: String
        public var include: [String]
        /// Files that must be present for the part to be complete (the rest of `include` is whatever the hub lists);
        /// `folder/*.safetensors` asks for at least one weight file in the folder (sharded or not).
        public var required: [String]

        public init(repository: String, revision: String = "main", include: [String], required: [String]) {
            self.repository = repository
            self.revision = revision
            self.include = include
            self.required = required
        }

        public func wants(_ file: String) -> Bool {
            include.contains { $0.hasSuffix("/") ? file.hasPrefix($0) : file == $0 }
        }
    }

    public var name: String
    public var summary: String
    /// The first part is the model folder (the diffusers layout); a checkpoint part adds its file to it.
    public var parts: [Part]
    /// The file of the last part that `--checkpoint` takes (FlashWorld's `model.ckpt`), if any.
    public var checkpoint: String?

    public init(name: String, summary: String, parts: [Part], checkpoint: String? = nil) {
        self.name = name
        self.summary = summary
        self.parts = parts
        self.checkpoint = checkpoint
    }

    static let wanRepository = "Wan-AI/Wan2.2-TI2V-5B-Diffusers"
    static let wanRequired = [
        "model_index.json", "tokenizer/tokenizer.json", "text_encoder/config.json", "text_encoder/*.safetensors", "transformer/config.json",
        "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
    ]

    public static let flashWorld = HubModel(
        name: "flashworld",
        summary: "FlashWorld: text or image plus cameras to a 3D Gaussian scene (Wan2.2-TI2V-5B's tokenizer, text encoder and VAE, FlashWorld's model.ckpt)",
        parts: [
            Part(
                repository: wanRepository, revision: "main",
                // FlashWorld's model.ckpt replaces the transformer's weights: only its config is needed.
                include: ["model_index.json", "scheduler/", "tokenizer/", "text_encoder/", "transformer/config.json", "vae/"],
                required: wanRequired),
            Part(repository: "imlixinyang/FlashWorld", revision: "main", include: ["model.ckpt"], required: ["model.ckpt"]),
        ],
        checkpoint: "model.ckpt")

    public static let wanVideo = HubModel(
        name: "wan2.2-ti2v-5b",
        summary: "Wan2.2-TI2V-5B: text or image to video (the whole diffusers folder)",
        parts: [
            Part(
                repository: wanRepository, revision: "main",
                include: ["model_index.json", "scheduler/", "tokenizer/", "text_encoder/", "transformer/", "vae/"],
                // FlashWorld's pull shares this repository without the transformer's weights: they decide.
                required: wanRequired + ["transformer/*.safetensors"])
        ],
        checkpoint: nil)

    public static let all = [flashWorld, wanVideo]

    public static func named(_ name: String) -> HubModel? {
        let key = name.lowercased()
        return all.first { $0.name == key || (key == "wan2.2" && $0 == wanVideo) }
    }
}

/// A fetched model, as the loaders take it: the folder and, for FlashWorld, the checkpoint beside it.
public struct ResolvedModel: Sendable, Equatable {
    public var folder: String
    public var checkpoint: String?
}

extension HubCache {
    /// A required file is present, or for `folder/*.suffix` at least one readable file with that suffix is.
    func hasRequired(_ repository: String, commit: String, _ required: String) -> Bool {
        guard let star = required.range(of: "/*") else { return cachedFile(repository, commit: commit, file: required) != nil }
        let folder = String(required[..<star.lowerBound]), suffix = String(required[star.upperBound...])
        return HubFiles.entries("\(snapshot(repository, commit: commit))/\(folder)").contains { name in
            name.hasSuffix(suffix) && cachedFile(repository, commit: commit, file: "\(folder)/\(name)") != nil
        }
    }

    /// Where `model` is in this cache, when every required file of every part is there; else a message naming what
    /// is missing and the command that fetches it.
    public func resolve(_ model: HubModel) throws(HubError) -> ResolvedModel {
        var folder: String?
        var checkpoint: String?
        for (index, part) in model.parts.enumerated() {
            guard let commit = commit(part.repository, revision: part.revision) else {
                throw HubError(.notDownloaded, "\(model.name) is not downloaded (\(part.repository) is not in \(root)); run `diorama model pull \(model.name)`")
            }
            let missing = part.required.filter { !hasRequired(part.repository, commit: commit, $0) }
            guard missing.isEmpty else {
                throw HubError(
                    .notDownloaded,
                    "\(model.name) is incomplete in \(root): \(part.repository) lacks \(missing.joined(separator: ", ")); run `diorama model pull \(model.name)` to finish it")
            }
            if index == 0 { folder = snapshot(part.repository, commit: commit) }
            if index == model.parts.count - 1, let file = model.checkpoint {
                checkpoint = "\(snapshot(part.repository, commit: commit))/\(file)"
            }
        }
        return ResolvedModel(folder: folder!, checkpoint: checkpoint)
    }
}
