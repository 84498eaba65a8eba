import EngineCore
import ModelLoading
import Models

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
        let z = 4, feat = 8
        let text = UMT5Configuration(vocabSize: vocabularySize, dModel: 32, dKv: 8, dFf: 64, numLayers: 2, numHeads: 4)
        let transformer = WanTransformerConfiguration(
            patchSize: [1, 2, 2], numAttentionHeads: 2, attentionHeadDim: 24, inChannels: 3 * z + 6 + feat, outChannels: z + feat,
            textDim: 32, freqDim: 16, ffnDim: 96, numLayers: 2)
        let vae = WanVAEConfiguration(
            baseDim: 4, decoderBaseDim: 4, zDim: z, dimMult: [1, 2, 4, 4], numResBlocks: 1, temperalDownsample: [false, true, true],
            latentsMean: [0.1, -0.2, 0.05, 0], latentsStd: [0.9, 1.1, 1, 0.8], isResidual: true, inChannels: 12, outChannels: 12,
            patchSize: 2, clipOutput: false)
        var random = SeededNoise(seed: seed)
        func weights(_ specs: [ParameterSpec], source: String) throws -> ModelWeights {
            var tensors: [String: Tensor] = [:]
            for spec in specs {
                let n = spec.shape.reduce(1, *)
                let fanIn = spec.shape.count > 1 ? spec.shape.dropFirst().reduce(1, *) : 1
                let values: Tensor
                switch spec.name {
                case let name where name.hasSuffix("lrs_mul"): values = try backend.constant(GaussianHead.learningRateMultipliers, shape: [n])
                case let name where name.hasSuffix("gamma") || name.hasSuffix("norm_q.weight") || name.hasSuffix("norm_k.weight")
                    || name.contains("layer_norm") || name.hasSuffix("norm2.weight"):
                    values = try backend.add(try backend.full([1], value: 1), try backend.scaled(try random.normal([n], on: backend), by: 0.1))
                case let name where name.hasSuffix("gs_proj.bias"): values = try backend.constant(GaussianHead.initialBias, shape: [n])
                default:
                    values = try backend.scaled(try random.normal([n], on: backend), by: 1 / Float(fanIn).squareRoot())
                }
                tensors[spec.name] = try values.reshaped(spec.shape)
            }
            return ModelWeights(tensors, source: source)
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
    public func prepared(for backend: any Backend, precision: ModelPrecision) throws -> FlashWorldModel {
        var copy = self
        copy.textEncoder.weights = try precision.converted(textEncoder.weights, to: precision.textEncoder, on: backend)
        copy.textEncoder.activationType = precision.textEncoder
        copy.transformer.weights = try precision.transformerWeights(transformer.weights, on: backend)
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
