import EngineCore
import ModelLoading
import Models
import FoundationEssentials

/// Everything a FlashWorld generation needs: the text encoder and its tokenizer, the widened Wan transformer, the VAE
/// encoder with its latent statistics, and the reconstruction decoder (`flashworld-model.md` §2).
public struct FlashWorldModel: Sendable {
    public let tokenizer: any PromptTokenizer
    public var textEncoder: UMT5Encoder
    public var transformer: WanTransformer
    public var vaeEncoder: WanVAEEncoder
    public var reconstruction: ReconstructionDecoder
    /// Latent channels (48 for Wan2.2) and transformer feature channels (1024).
    public let latentChannels: Int
    public let featureChannels: Int
    /// Text slots the prompt is padded to (512).
    public let textLength: Int
    public let name: String

    public init(
        name: String, tokenizer: any PromptTokenizer, textEncoder: UMT5Encoder, transformer: WanTransformer, vaeEncoder: WanVAEEncoder,
        reconstruction: ReconstructionDecoder, textLength: Int
    ) throws(ModelError) {
        let z = vaeEncoder.configuration.zDim
        let feat = reconstruction.featureChannels
        let t = transformer.configuration
        // The channel map of §4: [noisy z | raymap 6 | condition z | previous features | previous 3D latents z].
        guard t.inChannels == 3 * z + 6 + feat, t.outChannels == z + feat, t.textDim == textEncoder.configuration.dModel else {
            throw ModelError(
                "the transformer takes \(t.inChannels) channels and gives \(t.outChannels), but latent \(z) and features \(feat) need \(3 * z + 6 + feat) and \(z + feat), with text width \(textEncoder.configuration.dModel)")
        }
        self.name = name
        self.tokenizer = tokenizer
        self.textEncoder = textEncoder
        self.transformer = transformer
        self.vaeEncoder = vaeEncoder
        self.reconstruction = reconstruction
        self.latentChannels = z
        self.featureChannels = feat
        self.textLength = textLength
    }

    /// The built-in `tiny` model: FlashWorld's architecture at toy widths with seeded random weights, made on
    /// `backend`, so every path (text, image, feedback loop, export) runs on any machine. Its output is noise shaped
    /// like a scene.
    public static func tiny(seed: UInt64 = 7, vocabularySize: Int = 260, on backend: any Backend) throws -> FlashWorldModel {
        let z = WanVAEConfiguration.toy.zDim, feat = 8
        let text = UMT5Configuration.toy(vocabularySize: vocabularySize)
        let transformer = WanTransformerConfiguration(
            patchSize: [1, 2, 2], numAttentionHeads: 2, attentionHeadDim: 24, inChannels: 3 * z + 6 + feat, outChannels: z + feat,
            textDim: 32, freqDim: 16, ffnDim: 96, numLayers: 2)
        let vae = WanVAEConfiguration.toy
        var random = SeededNoise(seed: seed)
        func weights(_ specs: [ParameterSpec], source: String) throws -> ModelWeights {
            try ModelWeights.seeded(specs, noise: &random, source: source, on: backend) { spec, n in
                if spec.name.hasSuffix("lrs_mul") { return try backend.constant(GaussianHead.learningRateMultipliers, shape: [n]) }
                if spec.name.hasSuffix("gs_proj.bias") { return try backend.constant(GaussianHead.initialBias, shape: [n]) }
                return nil
            }
        }
        return try FlashWorldModel(
            name: "tiny", tokenizer: ByteTokenizer(vocabularySize: text.vocabSize),
            textEncoder: UMT5Encoder(configuration: text, weights: try weights(UMT5Encoder.parameterSpecs(text), source: "tiny text encoder")),
            transformer: WanTransformer(
                configuration: transformer, weights: try weights(WanTransformer.parameterSpecs(transformer), source: "tiny transformer")),
            vaeEncoder: WanVAEEncoder(configuration: vae, weights: try weights(WanVAEEncoder.parameterSpecs(vae), source: "tiny VAE")),
            reconstruction: ReconstructionDecoder(
                vae: vae, featureChannels: feat,
                weights: try weights(ReconstructionDecoder.parameterSpecs(vae: vae, featureChannels: feat), source: "tiny reconstruction decoder")),
            textLength: 64)
    }

    /// The model ready to run on `backend`: every weight on that device in the type `precision` gives it (FP8 block
    /// linears with their per-tensor scales), causal convolution kernels cut to their last tap and the Gaussian
    /// head's rescaling done, once, here rather than in every call.
    /// `textEncoderOn` and `transformerOn` prepare those parts on another backend (the host, for memory modes that
    /// stream them).
    public func prepared(
        for backend: any Backend, precision: ModelPrecision, textEncoderOn: (any Backend)? = nil, transformerOn: (any Backend)? = nil
    ) throws -> FlashWorldModel {
        var copy = self
        copy.textEncoder.weights = try precision.textEncoderWeights(textEncoder.weights, on: textEncoderOn ?? backend)
        copy.textEncoder.activationType = precision.textEncoder
        copy.transformer.weights = try precision.transformerWeights(transformer.weights, on: transformerOn ?? backend)
        copy.transformer.activationType = precision.transformer
        copy.vaeEncoder.weights = try ModelWeights.lastTapConvolutions(
            try precision.converted(vaeEncoder.weights, to: precision.vaeEncoder, on: backend), on: backend)
        copy.vaeEncoder.activationType = precision.vaeEncoder
        let decoderWeights = try ModelWeights.lastTapConvolutions(
            try precision.converted(reconstruction.weights, to: precision.decoder, on: backend), on: backend)
        copy.reconstruction.weights = try GaussianHead.prepared(decoderWeights, on: backend)
        copy.reconstruction.activationType = precision.decoder
        return copy
    }
}

/// Where FlashWorld's weights wait between uses (`--memory`): all on the device, or the largest parts in host memory
/// and put on the device a layer at a time as they run, trading time for device memory.
public enum FlashWorldMemoryMode: String, Sendable, CaseIterable, Codable {
    /// Every weight resident.
    case full
    /// The text encoder (UMT5-XXL, 11 GB in bf16) waits in host memory and runs layer by layer; the rest resident.
    case balanced
    /// As balanced, and the transformer's blocks stream too: the device holds about one block of its weights.
    case low
}

extension FlashWorldMemoryMode {
    /// Frames the reconstruction decoder (and the VAE encoder, re-encoding the renders) take at a time: all of them in
    /// `full` (the measured speed), six in `balanced` and two in `low`, where the decoder's 24-frame activations
    /// (about 9.4 GiB in bf16) were the largest part of the peak. `DIORAMA_DECODER_FRAMES` overrides it, for measuring.
    public var decoderFramesPerChunk: Int? {
        if let text = ProcessInfo.processInfo.environment["DIORAMA_DECODER_FRAMES"], let frames = Int(text), frames > 0 { return frames }
        switch self {
        case .full: return nil
        case .balanced: return 6
        case .low: return 2
        }
    }

    /// The mode for a device with `bytes` available to the model, from the full model's measured peak (23.4 GiB
    /// on an H100 in fp8, its UMT5-XXL resident in bf16: 10.6 GiB of it) and what each mode leaves on the device,
    /// with 2 GiB to spare: full from 26 GiB, balanced (about 15 GiB, estimated) from 17 GiB, else low. A text encoder
    /// whose linears are FP8 (`fp8-lean`) needs 5.3 GiB less in full mode.
    public static func fitting(deviceBytes bytes: Int, leanTextEncoder: Bool = false) -> FlashWorldMemoryMode {
        let gib = Double(bytes) / Double(1 << 30)
        return gib >= (leanTextEncoder ? 20.7 : 26) ? .full : gib >= 17 ? .balanced : .low
    }
}

extension FlashWorldModel {
    /// The memory mode the model is arranged in.
    public var memoryMode: FlashWorldMemoryMode { transformer.streamsBlocks ? .low : textEncoder.streamsLayers ? .balanced : .full }

    /// The prepared model arranged for `mode` on `backend` (the weights a mode streams copied to host memory).
    public func arranged(for mode: FlashWorldMemoryMode, on backend: any Backend) throws -> FlashWorldModel {
        var copy = self
        if mode != .full {
            copy.textEncoder.weights = try textEncoder.weights.downloaded(from: backend)
            copy.textEncoder.streamsLayers = true
        }
        if mode == .low {
            copy.transformer.weights = try transformer.weights.downloaded(from: backend)
            copy.transformer.streamsBlocks = true
        }
        copy.reconstruction.framesPerChunk = mode.decoderFramesPerChunk
        copy.vaeEncoder.imagesPerChunk = mode.decoderFramesPerChunk
        if mode != .full { backend.trimMemory() }
        return copy
    }
}
