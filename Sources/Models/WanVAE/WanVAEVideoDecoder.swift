import EngineCore
import ModelLoading

/// The Wan2.2 VAE decoder for videos: latent frames decoded one chunk at a time, as diffusers'
/// `AutoencoderKLWan._decode` does, with every causal 3D convolution carrying its last two input frames to the next
/// chunk, so memory stays bounded by one chunk whatever the length. The first latent frame gives one video frame,
/// every later one four: `1 + 4·(F − 1)` frames.
///
/// Activations hold frames as the batch axis, `[t, c, h, w]`, so a causal convolution is three 2D convolutions (one
/// per temporal tap) over shifted frame ranges, and per-frame layers (norms, attention, up-sampling) run unchanged.
public struct WanVAEVideoDecoder: Sendable {
    public let configuration: WanVAEConfiguration
    /// The decoder's weights, causal kernels split into their temporal taps (`name.weight@k`) by `prepared`.
    public var weights: ModelWeights
    public var activationType: DType = .float32

    public init(configuration: WanVAEConfiguration, weights: ModelWeights) throws(ModelError) {
        try configuration.validate()
        self.configuration = configuration
        self.weights = weights
    }

    public static func parameterSpecs(_ c: WanVAEConfiguration) -> [ParameterSpec] { WanVAEDecoder.parameterSpecs(c) }

    /// The weights with each 3D kernel split once into its 2D taps, so no chunk copies a kernel.
    public static func prepared(_ weights: ModelWeights, on backend: any Backend) throws(EngineError) -> ModelWeights {
        var tensors = weights.tensors
        for (name, weight) in weights.tensors where weight.rank == 5 && name.hasSuffix(".weight") {
            let (o, i, taps, kh, kw) = (weight.shape[0], weight.shape[1], weight.shape[2], weight.shape[3], weight.shape[4])
            // A 1x1x1 kernel keeps its name as a 2D one; longer ones are split.
            tensors[name] = taps == 1 ? try weight.reshaped([o, i, kh, kw]) : nil
            for k in 0..<taps where taps > 1 {
                tensors["\(name)@\(k)"] = try backend.contiguous(try weight.narrowed(2, start: k, length: 1)).reshaped([o, i, kh, kw])
            }
        }
        return ModelWeights(tensors, source: weights.source)
    }

    /// What a decode carries from one chunk to the next: the last two input frames of each causal convolution, and
    /// which time up-samplers have seen their first chunk (diffusers' "Rep" marker).
    struct ChunkCache {
        var frames: [String: Tensor] = [:]
        var startedTimeConvolutions: Set<String> = []
    }

    /// The video `[frames, 3, 16h, 16w]` in [−1, 1] for latents `[1, zDim, F, h, w]` (already de-normalised).
    /// `progress(done, total)` follows the chunks.
    public func decode(
        _ latents: Tensor, on backend: any Backend, progress: (Int, Int) -> Void = { _, _ in }
    ) throws(EngineError) -> Tensor {
        let c = configuration
        guard latents.rank == 5, latents.shape[0] == 1, latents.shape[1] == c.zDim else {
            throw EngineError(.shapeMismatch, "WanVAE video decoder: latents \(latents.shape) must be [1, \(c.zDim), frames, h, w]")
        }
        let (frames, h, w) = (latents.shape[2], latents.shape[3], latents.shape[4])
        // [1, z, F, h, w] → [F, z, h, w]: frames become the batch.
        let perFrame = try backend.contiguous(try latents.reshaped([c.zDim, frames, h, w]).permuted([1, 0, 2, 3]))
        let x = try convolution("post_quant_conv", try backend.cast(perFrame, to: activationType), cache: nil, on: backend)
        var cache = ChunkCache()
        var chunks: [Tensor] = []
        for i in 0..<frames {
            chunks.append(try chunk(try x.narrowed(0, start: i, length: 1), first: i == 0, cache: &cache, on: backend))
            progress(i + 1, frames)
        }
        let video = chunks.count == 1 ? chunks[0] : try backend.concat(chunks, axis: 0)
        return try backend.clamped(try unpatchified(video, on: backend), min: -1, max: 1)
    }

    /// One latent frame through the decoder, continuing from `cache`.
    func chunk(_ input: Tensor, first: Bool, cache: inout ChunkCache, on backend: any Backend) throws(EngineError) -> Tensor {
        let c = configuration
        let dims = c.decoderDims
        let upsampleTime = Array(c.temperalDownsample.reversed())
        let layers = WanVAELayers(weights: weights)
        var x = try convolution("decoder.conv_in", input, cache: &cache, on: backend)
        x = try residualBlock("decoder.mid_block.resnets.0", x, cache: &cache, on: backend)
        x = try layers.attentionBlock("decoder.mid_block.attentions.0", x, on: backend)
        x = try residualBlock("decoder.mid_block.resnets.1", x, cache: &cache, on: backend)
        for b in 0..<c.dimMult.count {
            let shortcut = x
            for r in 0...c.numResBlocks { x = try residualBlock("decoder.up_blocks.\(b).resnets.\(r)", x, cache: &cache, on: backend) }
            guard b < c.dimMult.count - 1 else { continue }
            let name = "decoder.up_blocks.\(b).upsampler"
            if upsampleTime[b] {
                if cache.startedTimeConvolutions.insert(name).inserted == false {
                    // Twice the channels, read as two frames per frame (the first half is the earlier one).
                    let doubled = try convolution("\(name).time_conv", x, cache: &cache, on: backend)
                    let (t, ch, hh, ww) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
                    x = try doubled.reshaped([2 * t, ch, hh, ww])
                }
            }
            x = try backend.run(.upsampleNearest2x, [x])[0]
            x = try backend.conv2d(x, weights["\(name).resample.1.weight"], weights["\(name).resample.1.bias"], padding: 1)
            x = try WanVAELayers.addingDuplicatedUp(x, shortcut, to: dims[b + 1], temporal: upsampleTime[b], firstChunk: first, on: backend)
        }
        x = try backend.run(.channelRMSNormSiLU(eps: 1e-12), [x, weights["decoder.norm_out.gamma"]])[0]
        return try convolution("decoder.conv_out", x, cache: &cache, on: backend)
    }

    func residualBlock(_ name: String, _ x: Tensor, cache: inout ChunkCache, on backend: any Backend) throws(EngineError) -> Tensor {
        let shortcut = weights.optional("\(name).conv_shortcut.weight") == nil ? x : try convolution("\(name).conv_shortcut", x, cache: nil, on: backend)
        var h = try backend.run(.channelRMSNormSiLU(eps: 1e-12), [x, weights["\(name).norm1.gamma"]])[0]
        h = try convolution("\(name).conv1", h, cache: &cache, on: backend)
        h = try backend.run(.channelRMSNormSiLU(eps: 1e-12), [h, weights["\(name).norm2.gamma"]])[0]
        h = try convolution("\(name).conv2", h, cache: &cache, on: backend)
        return try backend.add(h, shortcut)
    }

    /// A causal convolution over frames `[t, c, h, w]`: the previous chunk's last two frames (zeros before the first)
    /// in front, each temporal tap a 2D convolution over its shifted frame range, summed. 1-tap kernels need no cache.
    func convolution(_ name: String, _ x: Tensor, cache: UnsafeMutablePointer<ChunkCache>?, on backend: any Backend) throws(EngineError) -> Tensor {
        let bias = weights["\(name).bias"]
        guard let tap0 = weights.optional("\(name).weight@0") else {
            var weight = weights["\(name).weight"]
            if weight.rank == 5 { weight = try weight.reshaped([weight.shape[0], weight.shape[1], weight.shape[3], weight.shape[4]]) }
            return try backend.conv2d(x, weight, bias, padding: weight.shape[2] / 2)
        }
        var taps = [tap0]
        while let next = weights.optional("\(name).weight@\(taps.count)") { taps.append(next) }
        let history = taps.count - 1
        let frames = x.shape[0]
        let previous: Tensor
        if let kept = cache?.pointee.frames[name] { previous = kept } else { previous = try backend.zeros([history] + x.shape.dropFirst(), dtype: x.dtype) }
        let padded = try backend.concat([previous, x], axis: 0)
        cache?.pointee.frames[name] = try backend.contiguous(try padded.narrowed(0, start: frames, length: history))
        let padding = tap0.shape[2] / 2
        var out = try backend.conv2d(try padded.narrowed(0, start: 0, length: frames), taps[0], bias, padding: padding)
        for k in 1..<taps.count {
            out = try backend.add(out, try backend.conv2d(try padded.narrowed(0, start: k, length: frames), taps[k], nil, padding: padding))
        }
        return out
    }

    func convolution(_ name: String, _ x: Tensor, cache: inout ChunkCache, on backend: any Backend) throws(EngineError) -> Tensor {
        try withUnsafeMutablePointer(to: &cache) { pointer throws(EngineError) in try convolution(name, x, cache: pointer, on: backend) }
    }

    /// `[t, 12, h, w]` → `[t, 3, 2h, 2w]`: channel `4c + 2·(column offset) + (row offset)` back to pixels.
    func unpatchified(_ x: Tensor, on backend: any Backend) throws(EngineError) -> Tensor {
        let (t, ch, h, w) = (x.shape[0], x.shape[1] / 4, x.shape[2], x.shape[3])
        return try backend.permuted(try x.reshaped([t, ch, 2, 2, h, w]), [0, 1, 4, 3, 5, 2]).reshaped([t, ch, 2 * h, 2 * w])
    }
}
