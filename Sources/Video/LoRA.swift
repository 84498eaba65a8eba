import Checkpoints
import EngineCore
import ModelLoading
import Models

/// A LoRA merged into a Wan transformer's weights before they are prepared: `W += m · (alpha/rank) · up·down`, or
/// `W += m · up·down` when the file stores no alpha (VideoX-Fun's `merge_lora`; diffusers' own default scale is the
/// same). Keys are read in the layouts people publish: kohya/VideoX-Fun (`lora_unet__blocks_0_self_attn_q.lora_down.weight`,
/// `.alpha`), diffusers/PEFT (`transformer.blocks.0.attn1.to_q.lora_A.weight`) and original-Wan names
/// (`diffusion_model.blocks.0.self_attn.q.lora_A.weight`), with diffusers' or Wan's module names.
public struct LoRA: Sendable {
    public struct Update: Sendable {
        /// The transformer parameter it changes (`blocks.0.attn1.to_q.weight`).
        public var weight: String
        public var up: Tensor
        public var down: Tensor
        public var alpha: Float?
    }

    public let path: String
    public let updates: [Update]

    /// What a module is called in original Wan checkpoints, for each diffusers module name part.
    static let wanNames: [(diffusers: String, wan: String)] = [
        ("attn1.to_q", "self_attn.q"), ("attn1.to_k", "self_attn.k"), ("attn1.to_v", "self_attn.v"), ("attn1.to_out.0", "self_attn.o"),
        ("attn2.to_q", "cross_attn.q"), ("attn2.to_k", "cross_attn.k"), ("attn2.to_v", "cross_attn.v"), ("attn2.to_out.0", "cross_attn.o"),
        ("ffn.net.0.proj", "ffn.0"), ("ffn.net.2", "ffn.2"),
        ("condition_embedder.text_embedder.linear_1", "text_embedding.0"), ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
        ("condition_embedder.time_embedder.linear_1", "time_embedding.0"), ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
        ("condition_embedder.time_proj", "time_projection.1"), ("proj_out", "head.head"),
    ]

    static let prefixes = ["diffusion_model.", "transformer.", "base_model.model.", "lora_unet__", "lora_unet_", "model."]
    static let roles: [(suffix: String, role: String)] = [
        (".lora_down.weight", "down"), (".lora_up.weight", "up"), (".lora_A.default.weight", "down"), (".lora_B.default.weight", "up"),
        (".lora_A.weight", "down"), (".lora_B.weight", "up"), (".lora.down.weight", "down"), (".lora.up.weight", "up"), (".alpha", "alpha"),
    ]

    /// Every module name a layout may use for each of `weights`' matrices, flattened with underscores (kohya's
    /// form), pointing at the parameter.
    static func aliases(for weightNames: some Sequence<String>) -> [String: String] {
        var table: [String: String] = [:]
        for name in weightNames where name.hasSuffix(".weight") {
            let module = String(name.dropLast(".weight".count))
            table[module.replacingDots()] = name
            for (diffusers, wan) in wanNames where module.hasSuffix(diffusers) {
                table[(module.dropLast(diffusers.count) + wan).replacingDots()] = name
            }
        }
        return table
    }

    /// Reads a LoRA file and matches each of its modules to one of `weightNames`. A key no layout explains, or a
    /// module the model does not have, is an error naming it (a LoRA for another model should not half-apply).
    public init(path: String, matching weightNames: some Sequence<String>) throws {
        self.path = path
        let checkpoint = try CheckpointReader.open(path: path)
        let table = Self.aliases(for: weightNames)
        var parts: [String: (up: Tensor?, down: Tensor?, alpha: Float?)] = [:]
        for stored in checkpoint.tensors {
            var key = stored.name
            for prefix in Self.prefixes where key.hasPrefix(prefix) { key.removeFirst(prefix.count) }
            guard let (suffix, role) = Self.roles.first(where: { key.hasSuffix($0.suffix) }) else {
                throw ModelError("\(path): \(stored.name) is not a LoRA key (expected lora_up/lora_down, lora_A/lora_B or alpha)")
            }
            let module = String(key.dropLast(suffix.count)).replacingDots()
            let tensor = try WeightLoader.tensor(from: stored, as: .float32)
            switch role {
            case "up": parts[module, default: (nil, nil, nil)].up = tensor
            case "down": parts[module, default: (nil, nil, nil)].down = tensor
            default: parts[module, default: (nil, nil, nil)].alpha = tensor.floats().first
            }
        }
        var updates: [Update] = []
        for (module, part) in parts.sorted(by: { $0.key < $1.key }) {
            guard let weight = table[module] else { throw ModelError("\(path): the model has no module \(module) for this LoRA to change") }
            guard let up = part.up, let down = part.down else { throw ModelError("\(path): \(module) lacks its up or down matrix") }
            updates.append(Update(weight: weight, up: up, down: down, alpha: part.alpha))
        }
        guard !updates.isEmpty else { throw ModelError("\(path) holds no LoRA weights") }
        self.updates = updates
    }

    /// `weights` with this LoRA merged at `strength`, on `backend`; each changed weight keeps its type.
    public func merged(into weights: ModelWeights, strength: Float, on backend: any Backend) throws -> ModelWeights {
        var tensors = weights.tensors
        for update in updates {
            let weight = weights[update.weight]
            var up = update.up, down = update.down
            if up.rank == 4 { up = try up.reshaped([up.shape[0], up.shape[1]]) }
            if down.rank == 4 { down = try down.reshaped([down.shape[0], down.shape[1]]) }
            let rank = up.shape[1]
            guard down.shape[0] == rank, up.shape[0] * down.shape[1] == weight.count else {
                throw ModelError("\(path): \(update.weight) is \(weight.shape), but the LoRA's up \(update.up.shape) · down \(update.down.shape) is not")
            }
            let scale = strength * (update.alpha.map { $0 / Float(rank) } ?? 1)
            let delta = try backend.run(.matmul, [try backend.upload(up), try backend.upload(down)])[0]
            let sum = try backend.add(try backend.cast(weight, to: .float32), try backend.scaled(delta, by: scale).reshaped(weight.shape))
            tensors[update.weight] = try backend.cast(sum, to: weight.dtype)
        }
        return ModelWeights(tensors, source: weights.source)
    }
}

extension StringProtocol {
    func replacingDots() -> String { String(map { $0 == "." ? "_" : $0 }) }
}
