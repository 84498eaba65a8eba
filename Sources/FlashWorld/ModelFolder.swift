import Checkpoints
import EngineCore
import FoundationEssentials
import ModelLoading
import Models

#if canImport(Glibc)
    import Glibc
#endif

/// A model folder as the public releases ship it: the `Wan-AI/Wan2.2-TI2V-5B-Diffusers` folder (`tokenizer/`,
/// `text_encoder/`, `transformer/`, `vae/`) with FlashWorld's `model.ckpt` (or its safetensors conversion,
/// `model.safetensors`) beside them (`flashworld-model.md` §2, §3). Everything is checked (configs, every weight's
/// presence and shape) before a tensor is used.
public enum ModelFolder {
    public static let textLength = 512

    /// Loads the folder onto `backend` in `precision`: every weight is read from the mapped file in its stored type,
    /// copied to the device and converted there, one tensor at a time; then the model is prepared (FP8 block
    /// linears, trimmed causal kernels, the head's rescaling). `checkpoint` overrides where FlashWorld's weights are.
    ///
    /// With a memory mode other than `full`, the parts it streams (the text encoder; in `low` the transformer too)
    /// are read and prepared on `host` (the CPU backend) and never occupy the device whole, so a card smaller than
    /// the model can load it.
    public static func load(
        _ folder: String, checkpoint: String? = nil, on backend: any Backend, precision: ModelPrecision,
        memory: FlashWorldMemoryMode = .full, host: (any Backend)? = nil
    ) throws -> FlashWorldModel {
        let textBackend = memory != .full ? host ?? backend : backend
        let transformerBackend = memory == .low ? host ?? backend : backend
        let root = folder.hasSuffix("/") ? String(folder.dropLast()) : folder
        func path(_ relative: String) -> String { "\(root)/\(relative)" }
        func exists(_ p: String) -> Bool { access(p, F_OK) == 0 }
        for required in ["tokenizer/tokenizer.json", "text_encoder/config.json", "transformer/config.json", "vae/config.json"] where !exists(path(required)) {
            throw ModelError("\(root) is not a model folder: \(required) is missing (expected the Wan2.2-TI2V-5B diffusers layout)")
        }
        let flashWorld = checkpoint ?? ["model.ckpt", "model.safetensors"].map(path).first(where: exists)
        guard let flashWorld, exists(flashWorld) else {
            throw ModelError("\(root): FlashWorld's model.ckpt (or model.safetensors) is missing; put it in the folder or pass its path")
        }

        let (tokenizer, textEncoder) = try UMT5Encoder.loadFromModelFolder(
            root, on: textBackend, as: precision.textEncoder, quantizingLinears: precision.textEncoderLinears == .float8E4M3)
        func weights(
            _ specs: [ParameterSpec], _ checkpoint: Checkpoint, prefix: String, strict: Bool, source: String, as dtype: DType, quantizing: Bool = false,
            on target: (any Backend)? = nil
        ) throws -> ModelWeights {
            try ModelWeights.load(
                specs, from: checkpoint, prefix: prefix, strict: strict, source: source, as: dtype,
                quantizing: quantizing ? ModelPrecision.isBlockLinearWeight : { _ in false },
                on: target ?? backend)
        }

        let vae = try readConfiguration(WanVAEConfiguration.self, at: path("vae/config.json"))
        let vaeCheckpoint = try CheckpointReader.open(path: path("vae"))
        // The decoder is FlashWorld's own (in model.ckpt); only the encoder is read here.
        let vaeEncoder = try WanVAEEncoder(
            configuration: vae,
            weights: try weights(WanVAEEncoder.parameterSpecs(vae), vaeCheckpoint, prefix: "", strict: false, source: path("vae"), as: precision.vaeEncoder))

        let combined = try CheckpointReader.open(path: flashWorld)
        // The feature width (1024 for FlashWorld) is what the reconstruction decoder's extra input takes.
        guard let extra = combined.tensor(named: "recon_decoder.extra_conv_in.weight"), extra.shape.count >= 2 else {
            throw ModelError("\(flashWorld) has no recon_decoder.extra_conv_in.weight: not a FlashWorld checkpoint")
        }
        let featureChannels = extra.shape[1]
        var transformerConfiguration = try readConfiguration(WanTransformerConfiguration.self, at: path("transformer/config.json"))
        // FlashWorld's surgery widens the input and output (§3.1).
        transformerConfiguration.inChannels = 3 * vae.zDim + 6 + featureChannels
        transformerConfiguration.outChannels = vae.zDim + featureChannels
        let transformer = try WanTransformer(
            configuration: transformerConfiguration,
            weights: try weights(
                WanTransformer.parameterSpecs(transformerConfiguration), combined, prefix: "transformer.", strict: true, source: flashWorld,
                as: precision.transformer, quantizing: precision.transformerBlockLinears == .float8E4M3, on: transformerBackend))
        let reconstruction = try ReconstructionDecoder(
            vae: vae, featureChannels: featureChannels,
            weights: try weights(
                ReconstructionDecoder.parameterSpecs(vae: vae, featureChannels: featureChannels), combined, prefix: "recon_decoder.", strict: true,
                source: flashWorld, as: precision.decoder))
        return try FlashWorldModel(
            name: root, tokenizer: tokenizer, textEncoder: textEncoder, transformer: transformer, vaeEncoder: vaeEncoder,
            reconstruction: reconstruction, textLength: textLength
        ).prepared(for: backend, precision: precision, textEncoderOn: textBackend, transformerOn: transformerBackend)
            .arranged(for: memory, on: backend)
    }
}
