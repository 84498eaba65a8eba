/// The UMT5 encoder's configuration as transformers writes it in `text_encoder/config.json`.
public struct UMT5Configuration: Codable, Sendable, Equatable {
    public var vocabSize: Int
    public var dModel: Int
    public var dKv: Int
    public var dFf: Int
    public var numLayers: Int
    public var numHeads: Int
    public var relativeAttentionNumBuckets: Int
    public var relativeAttentionMaxDistance: Int
    public var layerNormEpsilon: Double
    public var feedForwardProj: String

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size"
        case dModel = "d_model"
        case dKv = "d_kv"
        case dFf = "d_ff"
        case numLayers = "num_layers"
        case numHeads = "num_heads"
        case relativeAttentionNumBuckets = "relative_attention_num_buckets"
        case relativeAttentionMaxDistance = "relative_attention_max_distance"
        case layerNormEpsilon = "layer_norm_epsilon"
        case feedForwardProj = "feed_forward_proj"
    }

    public init(
        vocabSize: Int, dModel: Int, dKv: Int, dFf: Int, numLayers: Int, numHeads: Int, relativeAttentionNumBuckets: Int = 32,
        relativeAttentionMaxDistance: Int = 128, layerNormEpsilon: Double = 1e-6, feedForwardProj: String = "gated-gelu"
    ) {
        self.vocabSize = vocabSize
        self.dModel = dModel
        self.dKv = dKv
        self.dFf = dFf
        self.numLayers = numLayers
        self.numHeads = numHeads
        self.relativeAttentionNumBuckets = relativeAttentionNumBuckets
        self.relativeAttentionMaxDistance = relativeAttentionMaxDistance
        self.layerNormEpsilon = layerNormEpsilon
        self.feedForwardProj = feedForwardProj
    }

    /// umt5-xxl, Wan2.2's text encoder (`flashworld-model.md` §2).
    /// The toy width the built-in `tiny` models use.
    public static func toy(vocabularySize: Int) -> UMT5Configuration {
        UMT5Configuration(vocabSize: vocabularySize, dModel: 32, dKv: 8, dFf: 64, numLayers: 2, numHeads: 4)
    }

    public static let umt5XXL = UMT5Configuration(vocabSize: 256384, dModel: 4096, dKv: 64, dFf: 10240, numLayers: 24, numHeads: 64)

    public func validate() throws(ModelError) {
        guard feedForwardProj == "gated-gelu" else {
            throw ModelError("feed_forward_proj '\(feedForwardProj)' is not supported (UMT5 uses gated-gelu)")
        }
        guard [vocabSize, dModel, dKv, dFf, numLayers, numHeads, relativeAttentionNumBuckets, relativeAttentionMaxDistance].allSatisfy({ $0 > 0 })
        else { throw ModelError("every UMT5 size must be positive") }
    }
}
