import EngineCore
import ModelLoading

/// The Wan2.x diffusion transformer (diffusers `WanTransformer3DModel`), formula for formula
/// (`flashworld-model.md` §5): a 3D patch embedding, a sinusoidal timestep embedding with a six-way modulation per block,
/// self-attention with RMS-normalised q/k and 3-axis RoPE, cross-attention to the projected text, a GELU-tanh feed-forward,
/// and an adaptive output norm before un-patchifying.
public struct WanTransformer: Sendable {
    public let configuration: WanTransformerConfiguration
    public var weights: ModelWeights
    /// The element type activations flow in (weights may be stored narrower); float32 on the CPU oracle.
    public var activationType: DType = .float32
    /// Sequential offload: the blocks' weights wait in host memory and each block's are copied to the device just
    /// before it runs and released after (`weights` then holds the rest on the device, see `streamedWeights`).
    public var streamsBlocks = false
    static let blockPrefix = "blocks."

    /// What the device holds between passes when blocks are streamed: everything but the blocks.
    public func streamedWeights(on backend: any Backend) throws(EngineError) -> ModelWeights {
        try weights.uploaded(to: backend, where: { !streamsBlocks || !$0.hasPrefix(Self.blockPrefix) })
    }

    public init(configuration: WanTransformerConfiguration, weights: ModelWeights) throws(ModelError) {
        try configuration.validate()
        self.configuration = configuration
        self.weights = weights
    }

    /// Every parameter with its diffusers name and shape.
    public static func parameterSpecs(_ c: WanTransformerConfiguration) -> [ParameterSpec] {
        let d = c.innerDim
        let patch = c.patchSize.reduce(1, *)
        var specs: [ParameterSpec] = [
            ParameterSpec("patch_embedding.weight", shape: [d, c.inChannels] + c.patchSize),
            ParameterSpec("patch_embedding.bias", shape: [d]),
            ParameterSpec("condition_embedder.time_embedder.linear_1.weight", shape: [d, c.freqDim]),
            ParameterSpec("condition_embedder.time_embedder.linear_1.bias", shape: [d]),
            ParameterSpec("condition_embedder.time_embedder.linear_2.weight", shape: [d, d]),
            ParameterSpec("condition_embedder.time_embedder.linear_2.bias", shape: [d]),
            ParameterSpec("condition_embedder.time_proj.weight", shape: [6 * d, d]),
            ParameterSpec("condition_embedder.time_proj.bias", shape: [6 * d]),
            ParameterSpec("condition_embedder.text_embedder.linear_1.weight", shape: [d, c.textDim]),
            ParameterSpec("condition_embedder.text_embedder.linear_1.bias", shape: [d]),
            ParameterSpec("condition_embedder.text_embedder.linear_2.weight", shape: [d, d]),
            ParameterSpec("condition_embedder.text_embedder.linear_2.bias", shape: [d]),
            ParameterSpec("scale_shift_table", shape: [1, 2, d]),
            ParameterSpec("proj_out.weight", shape: [c.outChannels * patch, d]),
            ParameterSpec("proj_out.bias", shape: [c.outChannels * patch]),
        ]
        for i in 0..<c.numLayers {
            let b = "blocks.\(i)."
            for attention in ["attn1", "attn2"] {
                for projection in ["to_q", "to_k", "to_v", "to_out.0"] {
                    specs.append(ParameterSpec("\(b)\(attention).\(projection).weight", shape: [d, d]))
                    specs.append(ParameterSpec("\(b)\(attention).\(projection).bias", shape: [d]))
                }
                if c.qkNorm != nil {
                    specs.append(ParameterSpec("\(b)\(attention).norm_q.weight", shape: [d]))
                    specs.append(ParameterSpec("\(b)\(attention).norm_k.weight", shape: [d]))
                }
            }
            if c.crossAttnNorm {
                specs.append(ParameterSpec("\(b)norm2.weight", shape: [d]))
                specs.append(ParameterSpec("\(b)norm2.bias", shape: [d]))
            }
            specs += [
                ParameterSpec("\(b)ffn.net.0.proj.weight", shape: [c.ffnDim, d]),
                ParameterSpec("\(b)ffn.net.0.proj.bias", shape: [c.ffnDim]),
                ParameterSpec("\(b)ffn.net.2.weight", shape: [d, c.ffnDim]),
                ParameterSpec("\(b)ffn.net.2.bias", shape: [d]),
                ParameterSpec("\(b)scale_shift_table", shape: [1, 6, d]),
            ]
        }
        return specs
    }

    /// What one forward pass computes besides its output, for checking the stages.
    public struct Trace {
        public var timestepEmbedding: Tensor?
        public var timestepProjection: Tensor?
        public var tokens: Tensor?
        public var afterBlocks: [Tensor] = []
    }

    /// What runs between the patch embedding and the head: the blocks, the blocks keeping their residual (output
    /// minus input, for TeaCache), or a residual kept earlier added instead of running them.
    public enum Blocks {
        case run
        case runKeepingResidual(UnsafeMutablePointer<Tensor?>)
        case reuse(residual: Tensor)
    }

    /// The timestep's embedding `[rows, d]` and its six modulation vectors `[rows, 6, d]`, one row per entry of
    /// `timestep` (sinusoid, MLP, projection).
    public func timestepModulation(_ timestep: Tensor, on backend: any Backend) throws(EngineError) -> (embedding: Tensor, projection: Tensor) {
        let c = configuration, w = weights
        let rows = timestep.count
        let sinusoid = try backend.run(
            .timestepEmbedding(dim: c.freqDim, flipSinToCos: true, downscaleFreqShift: 0), [try timestep.reshaped([rows])])[0]
        var temb = try backend.linear(sinusoid, w["condition_embedder.time_embedder.linear_1.weight"], w["condition_embedder.time_embedder.linear_1.bias"])
        temb = try backend.linear(try backend.silu(temb), w["condition_embedder.time_embedder.linear_2.weight"], w["condition_embedder.time_embedder.linear_2.bias"])
        let projection = try backend.linear(try backend.silu(temb), w["condition_embedder.time_proj.weight"], w["condition_embedder.time_proj.bias"])
        return (temb, try projection.reshaped([rows, 6, c.innerDim]))
    }

    /// Predicts `[b, out, f, h, w]` from `hiddenStates` `[b, in, f, h, w]`, the text `[b, l, textDim]` and a
    /// `timestep` per sample `[b]` or per latent frame `[b, f]` (Wan2.2-TI2V's `expand_timesteps`, which gives an
    /// image-conditioned first frame t = 0: every token of a frame shares its frame's modulation).
    public func callAsFunction(
        _ hiddenStates: Tensor, timestep: Tensor, text: Tensor, on backend: any Backend, blocks: Blocks = .run,
        trace: UnsafeMutablePointer<Trace>? = nil
    ) throws(EngineError) -> Tensor {
        let c = configuration
        let d = c.innerDim, heads = c.numAttentionHeads, headDim = c.attentionHeadDim
        let eps = Float(c.eps)
        guard hiddenStates.rank == 5, hiddenStates.shape[1] == c.inChannels,
            timestep.shape == [hiddenStates.shape[0]] || timestep.shape == [hiddenStates.shape[0], hiddenStates.shape[2] / c.patchSize[0]],
            text.rank == 3, text.shape[0] == hiddenStates.shape[0], text.shape[2] == c.textDim
        else {
            throw EngineError(
                .shapeMismatch,
                "WanTransformer: hidden states \(hiddenStates.shape), timestep \(timestep.shape) and text \(text.shape) do not fit in=\(c.inChannels), text=\(c.textDim)")
        }
        let batch = hiddenStates.shape[0]
        let (pt, ph, pw) = (c.patchSize[0], c.patchSize[1], c.patchSize[2])
        let (frames, height, width) = (hiddenStates.shape[2] / pt, hiddenStates.shape[3] / ph, hiddenStates.shape[4] / pw)
        let tokens = frames * height * width
        var w = weights
        // One modulation row per sample, or per (sample, frame) whose tokens it then covers.
        let modulationRows = timestep.rank == 2 ? batch * frames : batch
        let rowTokens = tokens * batch / modulationRows

        let rope = try backend.run(
            .ropeFrequencies3D(headDim: headDim, frames: frames, height: height, width: width, theta: 10000), [])
        let (cos, sin) = (rope[0], rope[1])

        // Patches become tokens in (frame, row, column) order.
        let input = try backend.cast(hiddenStates, to: activationType)
        var x = try backend.run(.patchEmbed3D(patch: c.patchSize), [input, w["patch_embedding.weight"], w["patch_embedding.bias"]])[0]
        x = try backend.permuted(try x.reshaped([batch, d, tokens]), [0, 2, 1])
        trace?.pointee.tokens = x

        let (temb, timestepProjection) = try timestepModulation(timestep, on: backend)
        trace?.pointee.timestepEmbedding = temb
        trace?.pointee.timestepProjection = timestepProjection

        var context = try backend.linear(try backend.cast(text, to: activationType), w["condition_embedder.text_embedder.linear_1.weight"], w["condition_embedder.text_embedder.linear_1.bias"])
        context = try backend.linear(try backend.geluTanh(context), w["condition_embedder.text_embedder.linear_2.weight"], w["condition_embedder.text_embedder.linear_2.bias"])

        /// `layerNorm(x) · (1 + scale) + shift`, fused; the tokens grouped by modulation row.
        func modulated(_ x: Tensor, shift: Tensor, scale: Tensor) throws(EngineError) -> Tensor {
            try backend.run(.modulatedLayerNorm(eps: eps), [try x.reshaped([modulationRows, rowTokens, d]), shift, scale])[0]
                .reshaped([batch, tokens, d])
        }
        /// `x + y · gate`, fused, with the same grouping.
        func gated(_ x: Tensor, _ y: Tensor, gate: Tensor) throws(EngineError) -> Tensor {
            let rows = [modulationRows, rowTokens, d]
            return try backend.run(.gatedResidual, [try x.reshaped(rows), try y.reshaped(rows), gate])[0].reshaped([batch, tokens, d])
        }
        /// A block linear: FP8 (with its weight's scale) when the weights were quantised at load.
        func project(_ x: Tensor, _ name: String) throws(EngineError) -> Tensor {
            let weight = w["\(name).weight"]
            if weight.dtype == .float8E4M3, let scale = w.optional("\(name).weight_scale") {
                return try backend.run(.linearFP8, [x, weight, scale, w["\(name).bias"]])[0]
            }
            if weight.dtype == .float8E4M3 {
                // Stored in e4m3 without a scale to save memory (VideoX-Fun's qfloat8): widened for this product only.
                return try backend.linear(x, try backend.cast(weight, to: activationType), w["\(name).bias"])
            }
            return try backend.linear(x, weight, w["\(name).bias"])
        }
        func attention(_ prefix: String, _ query: Tensor, _ keyValue: Tensor, rotary: Bool) throws(EngineError) -> Tensor {
            let keyLength = keyValue.shape[1]
            var q = try project(query, "\(prefix).to_q")
            var k = try project(keyValue, "\(prefix).to_k")
            let v = try project(keyValue, "\(prefix).to_v")
            if c.qkNorm != nil && rotary {
                // RMS norm across heads and the rotary embedding in one pass each.
                q = try backend.run(.rmsNormRope(eps: eps, heads: heads), [q, w["\(prefix).norm_q.weight"], cos, sin])[0]
                k = try backend.run(.rmsNormRope(eps: eps, heads: heads), [k, w["\(prefix).norm_k.weight"], cos, sin])[0]
            } else {
                if c.qkNorm != nil {
                    q = try backend.rmsNorm(q, weight: w["\(prefix).norm_q.weight"], eps: eps)
                    k = try backend.rmsNorm(k, weight: w["\(prefix).norm_k.weight"], eps: eps)
                }
                q = try q.reshaped([batch, tokens, heads, headDim])
                k = try k.reshaped([batch, keyLength, heads, headDim])
                if rotary {
                    q = try backend.run(.ropeInterleaved, [q, cos, sin])[0]
                    k = try backend.run(.ropeInterleaved, [k, cos, sin])[0]
                }
            }
            // Attention reads the heads as strided views of [b, l, heads, hd]: no copies.
            let out = try backend.attention(
                try q.permuted([0, 2, 1, 3]), try k.permuted([0, 2, 1, 3]), try v.reshaped([batch, keyLength, heads, headDim]).permuted([0, 2, 1, 3]))
            let merged = try backend.permuted(out, [0, 2, 1, 3]).reshaped([batch, tokens, d])
            return try project(merged, "\(prefix).to_out.0")
        }

        let entering = x
        if case .reuse(let residual) = blocks { x = try backend.add(x, residual) }
        for i in 0..<c.numLayers {
            if case .reuse = blocks { break }
            let b = "blocks.\(i)."
            if streamsBlocks { w = try weights.uploaded(to: backend, where: { $0.hasPrefix(b) }) }
            // The modulation stays float32, as diffusers adds the table to the float32 projection.
            let m = try backend.split(try backend.add(timestepProjection, w["\(b)scale_shift_table"]), sizes: [1, 1, 1, 1, 1, 1], axis: 1)
            let (shift, scale, gate, ffShift, ffScale, ffGate) = (m[0], m[1], m[2], m[3], m[4], m[5])
            let normed = try modulated(x, shift: shift, scale: scale)
            x = try gated(x, try attention("\(b)attn1", normed, normed, rotary: true), gate: gate)
            let crossInput = c.crossAttnNorm ? try backend.layerNorm(x, eps: eps, weight: w["\(b)norm2.weight"], bias: w["\(b)norm2.bias"]) : x
            x = try backend.add(x, try attention("\(b)attn2", crossInput, context, rotary: false))
            var ff = try modulated(x, shift: ffShift, scale: ffScale)
            ff = try backend.geluTanh(try project(ff, "\(b)ffn.net.0.proj"))
            ff = try project(ff, "\(b)ffn.net.2")
            x = try gated(x, ff, gate: ffGate)
            trace?.pointee.afterBlocks.append(x)
        }
        if case .runKeepingResidual(let residual) = blocks { residual.pointee = try backend.subtract(x, entering) }

        let head = try backend.split(try backend.add(try temb.reshaped([modulationRows, 1, d]), w["scale_shift_table"]), sizes: [1, 1], axis: 1)
        x = try modulated(x, shift: head[0], scale: head[1])
        x = try backend.linear(x, w["proj_out.weight"], w["proj_out.bias"])
        // [b, f, h, w, pt, ph, pw, c] → [b, c, f, pt, h, ph, w, pw] → [b, c, F, H, W]
        let patches = try x.reshaped([batch, frames, height, width, pt, ph, pw, c.outChannels])
        return try backend.permuted(patches, [0, 7, 1, 4, 2, 5, 3, 6]).reshaped(
            [batch, c.outChannels, frames * pt, height * ph, width * pw])
    }
}
