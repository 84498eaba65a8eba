import Checkpoints
import EngineCore
import FoundationEssentials
import ModelLoading
import Models

#if canImport(Glibc)
    import Glibc
#endif

/// A video model folder as `Wan-AI/Wan2.2-TI2V-5B-Diffusers` publishes it: `model_index.json`, `scheduler/`,
/// `tokenizer/`, `text_encoder/`, `transformer/` and `vae/` (weights in one file or shards with an index), loaded
/// unchanged. Configurations and every weight's presence and shape are checked before a tensor is used.
public enum VideoModelFolder {
    public static let textLength = 512

    /// What `model_index.json` and `scheduler/scheduler_config.json` say that matters here.
    struct Index: Decodable {
        var className: String?
        var expandTimesteps: Bool?
        var boundaryRatio: Double?
        enum CodingKeys: String, CodingKey {
            case className = "_class_name"
            case expandTimesteps = "expand_timesteps"
            case boundaryRatio = "boundary_ratio"
        }
    }

    struct SchedulerConfiguration: Decodable {
        var flowShift: Double?
        var predictionType: String?
        enum CodingKeys: String, CodingKey {
            case flowShift = "flow_shift"
            case predictionType = "prediction_type"
        }
    }

    /// What the folder's model generates by default, from its transformer's configuration alone (no weights read):
    /// what an API node that only queues video jobs checks them against.
    public static func defaults(_ folder: String) throws -> VideoDefaults {
        let root = folder.hasSuffix("/") ? String(folder.dropLast()) : folder
        guard access("\(root)/transformer/config.json", F_OK) == 0 else {
            throw ModelError("\(root) is not a video model folder: transformer/config.json is missing (expected the Wan2.2-TI2V-5B-Diffusers layout)")
        }
        return defaults(for: try readConfiguration(WanTransformerConfiguration.self, at: "\(root)/transformer/config.json"))
    }

    static func defaults(for transformer: WanTransformerConfiguration) -> VideoDefaults {
        transformer.numLayers >= 30 ? VideoDefaults.wan22 : .tiny
    }

    /// Loads the folder onto `backend` in `precision`, merges `loras` (path and strength) into the transformer, and
    /// prepares the model.
    public static func load(
        _ folder: String, on backend: any Backend, precision: ModelPrecision, loras: [(path: String, strength: Float)] = []
    ) throws -> WanVideoModel {
        let root = folder.hasSuffix("/") ? String(folder.dropLast()) : folder
        func path(_ relative: String) -> String { "\(root)/\(relative)" }
        let required = ["model_index.json", "tokenizer/tokenizer.json", "text_encoder/config.json", "transformer/config.json", "vae/config.json"]
        for file in required where access(path(file), F_OK) != 0 {
            throw ModelError("\(root) is not a video model folder: \(file) is missing (expected the Wan2.2-TI2V-5B-Diffusers layout)")
        }
        let index = try readConfiguration(Index.self, at: path("model_index.json"))
        guard ["WanPipeline", "WanImageToVideoPipeline"].contains(index.className ?? "") else {
            throw ModelError("\(root)/model_index.json describes \(index.className ?? "no pipeline"), not a Wan video pipeline")
        }
        guard index.expandTimesteps == true, index.boundaryRatio == nil else {
            throw ModelError(
                "\(root) is not Wan2.2-TI2V (expand_timesteps \(index.expandTimesteps.map(String.init) ?? "absent"), boundary_ratio \(index.boundaryRatio.map { "\($0)" } ?? "none")); only the TI2V-5B layout is supported")
        }
        var shift = 5.0
        if access(path("scheduler/scheduler_config.json"), F_OK) == 0 {
            let scheduler = try readConfiguration(SchedulerConfiguration.self, at: path("scheduler/scheduler_config.json"))
            if let type = scheduler.predictionType, type != "flow_prediction" {
                throw ModelError("\(root)/scheduler: prediction_type \(type) is not flow_prediction")
            }
            shift = scheduler.flowShift ?? shift
        }

        let (tokenizer, textEncoder) = try UMT5Encoder.loadFromModelFolder(root, on: backend, as: precision.textEncoder)

        let transformerConfiguration = try readConfiguration(WanTransformerConfiguration.self, at: path("transformer/config.json"))
        let transformer = try WanTransformer(
            configuration: transformerConfiguration,
            weights: try ModelWeights.load(
                WanTransformer.parameterSpecs(transformerConfiguration), from: CheckpointReader.open(path: path("transformer")), strict: true,
                source: path("transformer"), as: precision.transformer, on: backend))

        let vae = try readConfiguration(WanVAEConfiguration.self, at: path("vae/config.json"))
        let vaeCheckpoint = try CheckpointReader.open(path: path("vae"))
        let encoderSpecs = WanVAEEncoder.parameterSpecs(vae), decoderSpecs = WanVAEVideoDecoder.parameterSpecs(vae)
        // Each half is checked for completeness as it loads; nothing else may be in the file.
        let known = Set((encoderSpecs + decoderSpecs).map(\.name))
        let unexpected = vaeCheckpoint.tensors.map(\.name).filter { !known.contains($0) }
        guard unexpected.isEmpty else {
            throw ModelError("\(path("vae")) holds weights no Wan2.2 VAE has: \(unexpected.prefix(5).joined(separator: ", "))")
        }
        let vaeEncoder = try WanVAEEncoder(
            configuration: vae,
            weights: try ModelWeights.load(encoderSpecs, from: vaeCheckpoint, strict: false, source: path("vae"), as: precision.vaeEncoder, on: backend))
        let vaeDecoder = try WanVAEVideoDecoder(
            configuration: vae,
            weights: try ModelWeights.load(decoderSpecs, from: vaeCheckpoint, strict: false, source: path("vae"), as: precision.decoder, on: backend))

        let defaults = defaults(for: transformerConfiguration)
        return try WanVideoModel(
            name: root, tokenizer: tokenizer, textEncoder: textEncoder, transformer: transformer, vaeEncoder: vaeEncoder, vaeDecoder: vaeDecoder,
            textLength: textLength, flowShift: shift, defaults: defaults
        ).mergingLoRAs(loras, on: backend).prepared(for: backend, precision: precision)
    }
}
