import EngineCore
import ModelLoading

/// The Wan2.2 VAE decoder for single frames (the first-chunk path), with the same 2D reduction of its causal
/// convolutions as the encoder. FlashWorld deletes it from the VAE but builds its reconstruction decoder from a copy
/// (`flashworld-model.md` §8.1), which `trunk` serves.
public struct WanVAEDecoder: Sendable {
    public let configuration: WanVAEConfiguration
    public var weights: ModelWeights
    /// The element type activations flow in (weights may be stored narrower); float32 on the CPU oracle.
    public var activationType: DType = .float32

    public init(configuration: WanVAEConfiguration, weights: ModelWeights) throws(ModelError) {
        try configuration.validate()
        self.configuration = configuration
        self.weights = weights
    }

    public static func parameterSpecs(_ c: WanVAEConfiguration, prefix: String = "decoder.", output: Bool = true) -> [ParameterSpec] {
        var specs = WanVAESpecs()
        func conv(_ name: String, _ o: Int, _ i: Int, _ k: [Int]) { specs.convolution(name, o, i, k) }
        func residual(_ name: String, _ i: Int, _ o: Int) { specs.residual(name, i, o) }
        let dims = c.decoderDims
        let upsampleTime = Array(c.temperalDownsample.reversed())
        conv("post_quant_conv", c.zDim, c.zDim, [1, 1, 1])
        conv("\(prefix)conv_in", dims[0], c.zDim, [3, 3, 3])
        residual("\(prefix)mid_block.resnets.0", dims[0], dims[0])
        specs.list.append(ParameterSpec("\(prefix)mid_block.attentions.0.norm.gamma", shape: [dims[0], 1, 1]))
        conv("\(prefix)mid_block.attentions.0.to_qkv", 3 * dims[0], dims[0], [1, 1])
        conv("\(prefix)mid_block.attentions.0.proj", dims[0], dims[0], [1, 1])
        residual("\(prefix)mid_block.resnets.1", dims[0], dims[0])
        for b in 0..<c.dimMult.count {
            var input = dims[b]
            for r in 0...c.numResBlocks {
                residual("\(prefix)up_blocks.\(b).resnets.\(r)", input, dims[b + 1])
                input = dims[b + 1]
            }
            if b < c.dimMult.count - 1 {
                conv("\(prefix)up_blocks.\(b).upsampler.resample.1", dims[b + 1], dims[b + 1], [3, 3])
                if upsampleTime[b] { conv("\(prefix)up_blocks.\(b).upsampler.time_conv", 2 * dims[b + 1], dims[b + 1], [3, 1, 1]) }
            }
        }
        specs.list.append(ParameterSpec("\(prefix)norm_out.gamma", shape: [dims.last!, 1, 1, 1]))
        if output { conv("\(prefix)conv_out", c.outChannels, dims.last!, [3, 3, 3]) }
        return specs.list
    }

    /// Images `[b, 3, 16h, 16w]` for latents `[b, zDim, h, w]`, clamped to [−1, 1] when the configuration says so.
    public func callAsFunction(_ latent: Tensor, on backend: any Backend) throws(EngineError) -> Tensor {
        let c = configuration
        let layers = WanVAELayers(weights: weights)
        var x = try layers.convolution("post_quant_conv", latent, padding: 0, on: backend)
        x = try layers.convolution("decoder.conv_in", x, padding: 1, on: backend)
        x = try trunk(x, prefix: "decoder.", on: backend)
        x = try backend.run(.channelRMSNormSiLU(eps: 1e-12), [x, weights["decoder.norm_out.gamma"]])[0]
        x = try layers.convolution("decoder.conv_out", x, padding: 1, on: backend)
        // Unpatchify: channel 4c + 2·(column offset) + (row offset) back to pixels.
        let (b, ch, h, w) = (x.shape[0], x.shape[1] / 4, x.shape[2], x.shape[3])
        let image = try backend.permuted(try x.reshaped([b, ch, 2, 2, h, w]), [0, 1, 4, 3, 5, 2]).reshaped([b, ch, 2 * h, 2 * w])
        guard c.clipOutput ?? true else { return image }
        return try backend.clamped(image, min: -1, max: 1)
    }

    /// The mid block and every up block, from the output of `conv_in`.
    func trunk(_ input: Tensor, prefix: String, on backend: any Backend) throws(EngineError) -> Tensor {
        let c = configuration
        let layers = WanVAELayers(weights: weights)
        let dims = c.decoderDims
        let upsampleTime = Array(c.temperalDownsample.reversed())
        var x = try layers.residualBlock("\(prefix)mid_block.resnets.0", input, on: backend)
        x = try layers.attentionBlock("\(prefix)mid_block.attentions.0", x, on: backend)
        x = try layers.residualBlock("\(prefix)mid_block.resnets.1", x, on: backend)
        for b in 0..<c.dimMult.count {
            let shortcut = x
            for r in 0...c.numResBlocks { x = try layers.residualBlock("\(prefix)up_blocks.\(b).resnets.\(r)", x, on: backend) }
            guard b < c.dimMult.count - 1 else { continue }
            // Nearest ×2, then a 3x3; the time convolution does nothing on a first chunk.
            x = try backend.run(.upsampleNearest2x, [x])[0]
            x = try backend.run(
                .conv2d(stride: [1], padding: [1]),
                [x, weights["\(prefix)up_blocks.\(b).upsampler.resample.1.weight"], weights["\(prefix)up_blocks.\(b).upsampler.resample.1.bias"]])[0]
            x = try WanVAELayers.addingDuplicatedUp(x, shortcut, to: dims[b + 1], temporal: upsampleTime[b], firstChunk: true, on: backend)
        }
        return x
    }
}
