/// The Wan2.x diffusion transformer's configuration, as diffusers writes it in `transformer/config.json`.
/// FlashWorld uses the Wan2.2-TI2V-5B values with in/out channels widened to 1174/1072 (`flashworld-model.md` §2, §3).
public struct WanTransformerConfiguration: Codable, Sendable, Equatable {
    public var patchSize: [Int]
    public var numAttentionHeads: Int
    public var attentionHeadDim: Int
    public var inChannels: Int
    public var outChannels: Int
    public var textDim: Int
    public var freqDim: Int
    public var ffnDim: Int
    public var numLayers: Int
    public var crossAttnNorm: Bool
    public var qkNorm: String?
    public var eps: Double
    public var imageDim: Int?
    public var ropeMaxSeqLen: Int

    enum CodingKeys: String, CodingKey {
        case patchSize = "patch_size"
        case numAttentionHeads = "num_attention_heads"
        case attentionHeadDim = "attention_head_dim"
        case inChannels = "in_channels"
        case outChannels = "out_channels"
        case textDim = "text_dim"
        case freqDim = "freq_dim"
        case ffnDim = "ffn_dim"
        case numLayers = "num_layers"
        case crossAttnNorm = "cross_attn_norm"
        case qkNorm = "qk_norm"
        case eps
        case imageDim = "image_dim"
        case ropeMaxSeqLen = "rope_max_seq_len"
    }

    public init(
        patchSize: [Int], numAttentionHeads: Int, attentionHeadDim: Int, inChannels: Int, outChannels: Int, textDim: Int,
        freqDim: Int, ffnDim: Int, numLayers: Int, crossAttnNorm: Bool = true, qkNorm: String? = "rms_norm_across_heads",
        eps: Double = 1e-6, imageDim: Int? = nil, ropeMaxSeqLen: Int = 1024
    ) {
        self.patchSize = patchSize
        self.numAttentionHeads = numAttentionHeads
        self.attentionHeadDim = attentionHeadDim
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.textDim = textDim
        self.freqDim = freqDim
        self.ffnDim = ffnDim
        self.numLayers = numLayers
        self.crossAttnNorm = crossAttnNorm
        self.qkNorm = qkNorm
        self.eps = eps
        self.imageDim = imageDim
        self.ropeMaxSeqLen = ropeMaxSeqLen
    }

    public var innerDim: Int { numAttentionHeads * attentionHeadDim }

    /// Wan2.2-TI2V-5B as published (`transformer/config.json`): 48 latent channels in and out.
    public static let wan22TI2V = WanTransformerConfiguration(
        patchSize: [1, 2, 2], numAttentionHeads: 24, attentionHeadDim: 128, inChannels: 48, outChannels: 48,
        textDim: 4096, freqDim: 256, ffnDim: 14336, numLayers: 30)

    /// Wan2.2-TI2V-5B as FlashWorld widens it: 1174 input channels (noisy latent, raymap, condition latent, previous
    /// features, previous 3D latent) and 1072 outputs (velocity and features).
    public static let flashWorld = WanTransformerConfiguration(
        patchSize: [1, 2, 2], numAttentionHeads: 24, attentionHeadDim: 128, inChannels: 1174, outChannels: 1072,
        textDim: 4096, freqDim: 256, ffnDim: 14336, numLayers: 30)

    /// Checks what the implementation relies on, before any weight is read.
    public func validate() throws(ModelError) {
        guard patchSize.count == 3, patchSize.allSatisfy({ $0 > 0 }) else { throw ModelError("patch_size \(patchSize) must hold three positive sizes") }
        guard numAttentionHeads > 0, attentionHeadDim > 0, attentionHeadDim % 2 == 0 else {
            throw ModelError("attention heads \(numAttentionHeads) × \(attentionHeadDim) must be positive with an even head size")
        }
        guard qkNorm == nil || qkNorm == "rms_norm_across_heads" else {
            throw ModelError("qk_norm '\(qkNorm!)' is not supported (Wan2.2 uses rms_norm_across_heads)")
        }
        guard imageDim == nil else { throw ModelError("image embeddings (image_dim) are not supported; Wan2.2-TI2V has none") }
        guard [inChannels, outChannels, textDim, freqDim, ffnDim, numLayers].allSatisfy({ $0 > 0 }), freqDim % 2 == 0 else {
            throw ModelError("channel counts, layers and an even freq_dim must be positive")
        }
    }
}
