import EngineCore
import ModelLoading
import Models

/// Everything a Wan2.2-TI2V video generation needs: the UMT5 text encoder and its tokenizer, the Wan transformer,
/// the VAE encoder (for an image's first frame) and the video VAE decoder, plus the scheduler's flow shift.
public struct WanVideoModel: Sendable {
    public let name: String
    public let tokenizer: any PromptTokenizer
    public var textEncoder: UMT5Encoder
    public var transformer: WanTransformer
    public var vaeEncoder: WanVAEEncoder
    public var vaeDecoder: WanVAEVideoDecoder
    /// Text slots a prompt is padded to (512 for the published model).
    public let textLength: Int
    /// The scheduler's `flow_shift` (5 for Wan2.2-TI2V-5B).
    public let flowShift: Double
    /// The defaults the model is meant to run at.
    public let defaults: VideoDefaults

    public var latentChannels: Int { vaeDecoder.configuration.zDim }

    public init(
        name: String, tokenizer: any PromptTokenizer, textEncoder: UMT5Encoder, transformer: WanTransformer, vaeEncoder: WanVAEEncoder,
        vaeDecoder: WanVAEVideoDecoder, textLength: Int, flowShift: Double, defaults: VideoDefaults
    ) throws(ModelError) {
        let z = vaeDecoder.configuration.zDim
        let t = transformer.configuration
        guard t.inChannels == z, t.outChannels == z, t.textDim == textEncoder.configuration.dModel, t.patchSize == [1, 2, 2] else {
            throw ModelError(
                "the transformer (in \(t.inChannels), out \(t.outChannels), text \(t.textDim), patch \(t.patchSize)) does not fit a text-image-to-video model with \(z) latent channels and text width \(textEncoder.configuration.dModel)")
        }
        self.name = name
        self.tokenizer = tokenizer
        self.textEncoder = textEncoder
        self.transformer = transformer
        self.vaeEncoder = vaeEncoder
        self.vaeDecoder = vaeDecoder
        self.textLength = textLength
        self.flowShift = flowShift
        self.defaults = defaults
    }

    /// The built-in `tiny-video` model: Wan2.2-TI2V's architecture at toy widths with seeded random weights, made on
    /// `backend`, so every video path runs on any machine in seconds. Its output is noise shaped like a video.
    public static func tiny(seed: UInt64 = 11, vocabularySize: Int = 260, on backend: any Backend) throws -> WanVideoModel {
        let z = WanVAEConfiguration.toy.zDim
        let text = UMT5Configuration.toy(vocabularySize: vocabularySize)
        let transformer = WanTransformerConfiguration(
            patchSize: [1, 2, 2], numAttentionHeads: 2, attentionHeadDim: 12, inChannels: z, outChannels: z, textDim: 32, freqDim: 16,
            ffnDim: 48, numLayers: 2)
        let vae = WanVAEConfiguration.toy
        var random = SeededNoise(seed: seed)
        func weights(_ specs: [ParameterSpec], source: String) throws -> ModelWeights {
            try ModelWeights.seeded(specs, noise: &random, source: source, on: backend)
        }
        return try WanVideoModel(
            name: "tiny-video", tokenizer: ByteTokenizer(vocabularySize: text.vocabSize),
            textEncoder: UMT5Encoder(configuration: text, weights: try weights(UMT5Encoder.parameterSpecs(text), source: "tiny-video text encoder")),
            transformer: WanTransformer(
                configuration: transformer, weights: try weights(WanTransformer.parameterSpecs(transformer), source: "tiny-video transformer")),
            vaeEncoder: WanVAEEncoder(configuration: vae, weights: try weights(WanVAEEncoder.parameterSpecs(vae), source: "tiny-video VAE")),
            vaeDecoder: WanVAEVideoDecoder(
                configuration: vae, weights: try weights(WanVAEVideoDecoder.parameterSpecs(vae), source: "tiny-video VAE decoder")),
            textLength: 64, flowShift: 5, defaults: .tiny)
    }

    /// The model with LoRAs merged into its transformer, in order (before `prepared`, so FP8 storage would quantise
    /// the merged weights).
    public func mergingLoRAs(_ loras: [(path: String, strength: Float)], on backend: any Backend) throws -> WanVideoModel {
        var copy = self
        for (path, strength) in loras {
            let lora = try LoRA(path: path, matching: copy.transformer.weights.tensors.keys)
            copy.transformer.weights = try lora.merged(into: copy.transformer.weights, strength: strength, on: backend)
        }
        return copy
    }

    /// The model ready to run on `backend` in `precision`: weights on the device in their run-time types, the encoder's
    /// causal kernels cut to their last tap (it only ever sees one frame) and the decoder's split into taps.
    public func prepared(for backend: any Backend, precision: ModelPrecision) throws -> WanVideoModel {
        var copy = self
        copy.textEncoder.weights = try precision.converted(textEncoder.weights, to: precision.textEncoder, on: backend)
        copy.textEncoder.activationType = precision.textEncoder
        copy.transformer.weights = try precision.transformerWeights(transformer.weights, on: backend)
        copy.transformer.activationType = precision.transformer
        copy.vaeEncoder.weights = try ModelWeights.lastTapConvolutions(
            try precision.converted(vaeEncoder.weights, to: precision.vaeEncoder, on: backend), on: backend)
        copy.vaeEncoder.activationType = precision.vaeEncoder
        copy.vaeDecoder.weights = try WanVAEVideoDecoder.prepared(
            try precision.converted(vaeDecoder.weights, to: precision.decoder, on: backend), on: backend)
        copy.vaeDecoder.activationType = precision.decoder
        return copy
    }
}

/// How a video model uses device memory (VideoX-Fun's modes, `service-and-ui.md` §3.1).
public enum VideoMemoryMode: String, Sendable, CaseIterable, Codable {
    /// Every weight resident in its run-time type.
    case full
    /// The transformer's block linears stored in e4m3 (a plain cast, no scale, as VideoX-Fun's qfloat8) and widened
    /// per product: about half the transformer's memory, products in the activations' type.
    case fp8
    /// Weights in host memory; each sub-model (text encoder, transformer, VAE encoder, decoder) is copied to the
    /// device for its stage and released after it.
    case modelOffload = "model-offload"
    /// Weights in host memory; the text encoder's and the transformer's layers are copied to the device one at a time
    /// as they run (the rest of each sub-model for its stage), so the device holds about one layer of weights.
    case sequentialOffload = "sequential-offload"
}

extension WanVideoModel {
    /// The prepared model arranged for `mode` on `backend`.
    public func arranged(for mode: VideoMemoryMode, on backend: any Backend) throws -> WanVideoModel {
        var copy = self
        switch mode {
        case .full: break
        case .fp8:
            var tensors = transformer.weights.tensors
            for (name, tensor) in tensors where ModelPrecision.isBlockLinearWeight(name) && tensor.dtype != .float8E4M3 {
                tensors[name] = try backend.cast(tensor, to: .float8E4M3)
            }
            copy.transformer.weights = ModelWeights(tensors, source: transformer.weights.source)
        case .modelOffload, .sequentialOffload:
            copy.textEncoder.streamsLayers = mode == .sequentialOffload
            copy.transformer.streamsBlocks = mode == .sequentialOffload
            copy.textEncoder.weights = try textEncoder.weights.downloaded(from: backend)
            copy.transformer.weights = try transformer.weights.downloaded(from: backend)
            copy.vaeEncoder.weights = try vaeEncoder.weights.downloaded(from: backend)
            copy.vaeDecoder.weights = try vaeDecoder.weights.downloaded(from: backend)
            backend.trimMemory()
        }
        return copy
    }
}

/// A model's default size, length, steps and guidance: the same in the CLI, the API and the studio.
public struct VideoDefaults: Sendable, Equatable, Codable {
    public var frames: Int
    public var width: Int
    public var height: Int
    public var steps: Int
    public var guidance: Double
    public var fps: Int

    /// Wan2.2-TI2V-5B: 121 frames (5 s at 24 fps) of 1280x704, 50 steps, guidance 5.
    public static let wan22 = VideoDefaults(frames: 121, width: 1280, height: 704, steps: 50, guidance: 5, fps: 24)
    /// The built-in toy model: a second on a CPU.
    public static let tiny = VideoDefaults(frames: 9, width: 64, height: 32, steps: 4, guidance: 5, fps: 8)
}
