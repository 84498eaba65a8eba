import Checkpoints
import EngineCore
import ModelLoading

/// The UMT5 encoder (transformers `UMT5EncoderModel`): token embeddings, then per layer an RMS-normed self-attention with
/// its own relative-position bias (scores unscaled, as T5 trains them) and a gated GELU-tanh feed-forward, then a final
/// RMS norm.
public struct UMT5Encoder: Sendable {
    public let configuration: UMT5Configuration
    public var weights: ModelWeights
    /// The element type activations flow in (weights may be stored narrower); float32 on the CPU oracle.
    public var activationType: DType = .float32
    /// Sequential offload: each layer's weights copied to the device just before it runs (see `WanTransformer`).
    public var streamsLayers = false
    static let layerPrefix = "encoder.block."

    /// What the device holds between passes when layers are streamed: everything but the layers.
    public func streamedWeights(on backend: any Backend) throws(EngineError) -> ModelWeights {
        try weights.uploaded(to: backend, where: { !streamsLayers || !$0.hasPrefix(Self.layerPrefix) })
    }

    public init(configuration: UMT5Configuration, weights: ModelWeights) throws(ModelError) {
        try configuration.validate()
        self.configuration = configuration
        self.weights = weights
    }

    public static func parameterSpecs(_ c: UMT5Configuration) -> [ParameterSpec] {
        let inner = c.numHeads * c.dKv
        var specs = [ParameterSpec("shared.weight", shape: [c.vocabSize, c.dModel]), ParameterSpec("encoder.final_layer_norm.weight", shape: [c.dModel])]
        for i in 0..<c.numLayers {
            let a = "encoder.block.\(i).layer.0.", f = "encoder.block.\(i).layer.1."
            specs += [
                ParameterSpec("\(a)layer_norm.weight", shape: [c.dModel]),
                ParameterSpec("\(a)SelfAttention.q.weight", shape: [inner, c.dModel]),
                ParameterSpec("\(a)SelfAttention.k.weight", shape: [inner, c.dModel]),
                ParameterSpec("\(a)SelfAttention.v.weight", shape: [inner, c.dModel]),
                ParameterSpec("\(a)SelfAttention.o.weight", shape: [c.dModel, inner]),
                ParameterSpec("\(a)SelfAttention.relative_attention_bias.weight", shape: [c.relativeAttentionNumBuckets, c.numHeads]),
                ParameterSpec("\(f)layer_norm.weight", shape: [c.dModel]),
                ParameterSpec("\(f)DenseReluDense.wi_0.weight", shape: [c.dFf, c.dModel]),
                ParameterSpec("\(f)DenseReluDense.wi_1.weight", shape: [c.dFf, c.dModel]),
                ParameterSpec("\(f)DenseReluDense.wo.weight", shape: [c.dModel, c.dFf]),
            ]
        }
        return specs
    }

    /// `last_hidden_state` `[b, l, dModel]` for token ids `[b, l]`; `mask` `[b, l]` (1 for tokens, 0 for padding)
    /// keeps padded keys out of attention.
    public func callAsFunction(_ ids: Tensor, mask: Tensor?, on backend: any Backend, afterLayers: UnsafeMutablePointer<[Tensor]>? = nil) throws(EngineError) -> Tensor {
        let c = configuration
        guard ids.rank == 2, !ids.dtype.isFloatingPoint else {
            throw EngineError(.shapeMismatch, "UMT5: ids \(ids.shape) (\(ids.dtype)) must be integer [batch, length]")
        }
        let (batch, length) = (ids.shape[0], ids.shape[1])
        let eps = Float(c.layerNormEpsilon)
        var w = weights
        var h = try backend.cast(try backend.embedding(w["shared.weight"], ids: ids), to: activationType)
        let buckets = try backend.run(
            .t5RelativeBuckets(
                queryLength: length, keyLength: length, bidirectional: true, buckets: c.relativeAttentionNumBuckets,
                maxDistance: c.relativeAttentionMaxDistance), [])[0]
        var additiveMask: Tensor?
        if let mask {
            guard mask.shape == [batch, length] else { throw EngineError(.shapeMismatch, "UMT5: mask \(mask.shape) must match ids \(ids.shape)") }
            // (1 − mask) · float32.min, as transformers extends it.
            let keep = try backend.cast(try mask.reshaped([batch, 1, 1, length]), to: .float32)
            additiveMask = try backend.scaled(try backend.subtract(try backend.full([1], value: 1), keep), by: -Float.greatestFiniteMagnitude)
        }
        func heads(_ t: Tensor) throws(EngineError) -> Tensor {
            try backend.permuted(try t.reshaped([batch, length, c.numHeads, c.dKv]), [0, 2, 1, 3])
        }
        /// `x · Wᵀ`; a weight stored in e4m3 (`ModelPrecision.fp8Lean`) is widened for this product and its scale
        /// applied to the (smaller) output.
        func project(_ x: Tensor, _ name: String) throws(EngineError) -> Tensor {
            let weight = w[name]
            guard weight.dtype == .float8E4M3, let scale = w.optional(ModelPrecision.scaleName(name)) else { return try backend.linear(x, weight) }
            let product = try backend.linear(x, try backend.cast(weight, to: activationType))
            return try backend.cast(try backend.multiply(product, scale), to: activationType)
        }
        for i in 0..<c.numLayers {
            let a = "encoder.block.\(i).layer.0.", f = "encoder.block.\(i).layer.1."
            if streamsLayers { w = try weights.uploaded(to: backend, where: { $0.hasPrefix("encoder.block.\(i).") }) }
            let normed = try backend.rmsNorm(h, weight: w["\(a)layer_norm.weight"], eps: eps)
            let q = try heads(try project(normed, "\(a)SelfAttention.q.weight"))
            let k = try heads(try project(normed, "\(a)SelfAttention.k.weight"))
            let v = try heads(try project(normed, "\(a)SelfAttention.v.weight"))
            let table = try backend.embedding(w["\(a)SelfAttention.relative_attention_bias.weight"], ids: buckets)
            var bias = try backend.permuted(table, [2, 0, 1]).reshaped([1, c.numHeads, length, length])
            if let additiveMask { bias = try backend.add(bias, additiveMask) }
            let attended = try backend.attention(q, k, v, bias: bias, scale: 1)
            let merged = try backend.permuted(attended, [0, 2, 1, 3]).reshaped([batch, length, c.numHeads * c.dKv])
            h = try backend.add(h, try project(merged, "\(a)SelfAttention.o.weight"))
            let ffInput = try backend.rmsNorm(h, weight: w["\(f)layer_norm.weight"], eps: eps)
            let gate = try backend.geluTanh(try project(ffInput, "\(f)DenseReluDense.wi_0.weight"))
            let up = try project(ffInput, "\(f)DenseReluDense.wi_1.weight")
            h = try backend.add(h, try project(try backend.multiply(gate, up), "\(f)DenseReluDense.wo.weight"))
            afterLayers?.pointee.append(h)
        }
        return try backend.rmsNorm(h, weight: w["encoder.final_layer_norm.weight"], eps: eps)
    }
}

extension UMT5Encoder {
    /// A prompt's context `[1, length, dModel]` in float32: tokenized and padded to `length`, encoded with its attention
    /// mask, and the rows past the prompt zeroed, as FlashWorld and diffusers' Wan pipelines both do.
    public func context(for prompt: String, tokenizer: any PromptTokenizer, length: Int, on backend: any Backend) throws(EngineError) -> Tensor {
        let (ids, mask) = tokenizer.encode(prompt, maxLength: length)
        let encoded = try callAsFunction(
            try backend.upload(try Tensor(int64s: ids, shape: [1, ids.count])), mask: try backend.upload(try Tensor(int64s: mask, shape: [1, mask.count])),
            on: backend)
        return try backend.multiply(try backend.cast(encoded, to: .float32), try backend.constant(mask.map { Float($0) }, shape: [1, mask.count, 1]))
    }
}

extension UMT5Encoder {
    /// The tokenizer (`tokenizer/tokenizer.json`) and text encoder (`text_encoder/`, one file or shards) of a diffusers
    /// model folder, every weight checked and copied to `backend` as `dtype`.
    /// `quantizingLinears` (`fp8-lean`): the linears go to FP8 with their scales one at a time as they load, so the
    /// full-width encoder never sits on the device.
    public static func loadFromModelFolder(
        _ root: String, on backend: any Backend, as dtype: DType, quantizingLinears: Bool = false
    ) throws -> (any PromptTokenizer, UMT5Encoder) {
        let tokenizerPath = "\(root)/tokenizer/tokenizer.json"
        let tokenizerFile = try MappedFile(path: tokenizerPath)
        let tokenizer = try UnigramTokenizer(json: Array(UnsafeRawBufferPointer(start: tokenizerFile.bytes, count: tokenizerFile.size)), name: tokenizerPath)
        let configuration = try readConfiguration(UMT5Configuration.self, at: "\(root)/text_encoder/config.json")
        let checkpoint = try CheckpointReader.open(path: "\(root)/text_encoder")
        var specs = parameterSpecs(configuration)
        // Some exports keep the tied embedding under the encoder's name too.
        if checkpoint.tensor(named: "encoder.embed_tokens.weight") != nil {
            specs.append(ParameterSpec("encoder.embed_tokens.weight", shape: [configuration.vocabSize, configuration.dModel]))
        }
        let weights = try ModelWeights.load(
            specs, from: checkpoint, strict: true, source: "\(root)/text_encoder", as: dtype,
            quantizing: quantizingLinears ? ModelPrecision.isTextEncoderLinearWeight : { _ in false }, on: backend)
        return (tokenizer, try UMT5Encoder(configuration: configuration, weights: weights))
    }
}
