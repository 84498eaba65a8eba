import EngineCore
import ModelLoading

/// The Wan2.2 VAE encoder for single frames, as FlashWorld runs it (`flashworld-model.md` §3.1, §7): every causal 3D
/// convolution keeps only its last temporal tap (exact for one frame with no history), so the whole network is 2D.
/// Produces the posterior mean and log-variance (clamped to [−30, 20]).
public struct WanVAEEncoder: Sendable {
    public let configuration: WanVAEConfiguration
    public var weights: ModelWeights
    /// The element type activations flow in (weights may be stored narrower); float32 on the CPU oracle.
    public var activationType: DType = .float32
    /// Images encoded at a time; nil encodes the batch at once. Each image is encoded on its own (single frames), so
    /// chunks give the same latents with a fraction of the activations (24 frames at 480x704 hold gigabytes of them).
    public var imagesPerChunk: Int?

    public init(configuration: WanVAEConfiguration, weights: ModelWeights) throws(ModelError) {
        try configuration.validate()
        self.configuration = configuration
        self.weights = weights
    }

    /// The encoder's parameters with their diffusers names and the checkpoint's 3D shapes.
    public static func parameterSpecs(_ c: WanVAEConfiguration) -> [ParameterSpec] {
        var specs = WanVAESpecs()
        func conv(_ name: String, _ o: Int, _ i: Int, _ k: [Int]) { specs.convolution(name, o, i, k) }
        func residual(_ name: String, _ i: Int, _ o: Int) { specs.residual(name, i, o) }
        let dims = c.encoderDims
        conv("encoder.conv_in", dims[0], c.inChannels, [3, 3, 3])
        for b in 0..<c.dimMult.count {
            var input = dims[b]
            for r in 0..<c.numResBlocks {
                residual("encoder.down_blocks.\(b).resnets.\(r)", input, dims[b + 1])
                input = dims[b + 1]
            }
            if b < c.dimMult.count - 1 {
                conv("encoder.down_blocks.\(b).downsampler.resample.1", dims[b + 1], dims[b + 1], [3, 3])
                if c.temperalDownsample[b] { conv("encoder.down_blocks.\(b).downsampler.time_conv", dims[b + 1], dims[b + 1], [3, 1, 1]) }
            }
        }
        let top = dims.last!
        residual("encoder.mid_block.resnets.0", top, top)
        specs.list.append(ParameterSpec("encoder.mid_block.attentions.0.norm.gamma", shape: [top, 1, 1]))
        conv("encoder.mid_block.attentions.0.to_qkv", 3 * top, top, [1, 1])
        conv("encoder.mid_block.attentions.0.proj", top, top, [1, 1])
        residual("encoder.mid_block.resnets.1", top, top)
        specs.list.append(ParameterSpec("encoder.norm_out.gamma", shape: [top, 1, 1, 1]))
        conv("encoder.conv_out", 2 * c.zDim, top, [3, 3, 3])
        conv("quant_conv", 2 * c.zDim, 2 * c.zDim, [1, 1, 1])
        return specs.list
    }

    /// `(mean, logvar)`, each `[b, zDim, h/16, w/16]`, for images `[b, 3, h, w]` in [−1, 1].
    public func callAsFunction(_ image: Tensor, on backend: any Backend) throws(EngineError) -> (mean: Tensor, logvar: Tensor) {
        guard image.rank == 4 else { return try encoded(image, on: backend) }
        let halves = try chunkedAlongBatch(image.shape[0], chunk: imagesPerChunk, on: backend) { (start, count) throws(EngineError) in
            let (mean, logvar) = try encoded(try image.narrowed(0, start: start, length: count), on: backend)
            return [mean, logvar]
        }
        return (halves[0], halves[1])
    }

    func encoded(_ image: Tensor, on backend: any Backend) throws(EngineError) -> (mean: Tensor, logvar: Tensor) {
        let c = configuration
        let layers = WanVAELayers(weights: weights)
        guard image.rank == 4, image.shape[1] == 3, image.shape[2] % 16 == 0, image.shape[3] % 16 == 0 else {
            throw EngineError(.shapeMismatch, "WanVAE encoder: image \(image.shape) must be [b, 3, h, w] with h and w multiples of 16")
        }
        let w = weights
        let dims = c.encoderDims
        var x = try patchified(try backend.cast(image, to: activationType), on: backend)
        x = try layers.convolution("encoder.conv_in", x, padding: 1, on: backend)
        for b in 0..<c.dimMult.count {
            let shortcut = x
            for r in 0..<c.numResBlocks { x = try layers.residualBlock("encoder.down_blocks.\(b).resnets.\(r)", x, on: backend) }
            let downsamples = b < c.dimMult.count - 1
            if downsamples {
                // ZeroPad2d(0, 1, 0, 1) then a stride-2 3x3; the time convolution has no effect on a first frame.
                x = try backend.run(.pad(amounts: [0, 1, 0, 1], value: 0), [x])[0]
                x = try backend.run(
                    .conv2d(stride: [2], padding: [0]),
                    [x, w["encoder.down_blocks.\(b).downsampler.resample.1.weight"], w["encoder.down_blocks.\(b).downsampler.resample.1.bias"]])[0]
            }
            let temporal = downsamples && c.temperalDownsample[b]
            x = try backend.add(x, try averageDown(shortcut, to: dims[b + 1], temporal: temporal, spatial: downsamples, on: backend))
        }
        x = try layers.residualBlock("encoder.mid_block.resnets.0", x, on: backend)
        x = try layers.attentionBlock("encoder.mid_block.attentions.0", x, on: backend)
        x = try layers.residualBlock("encoder.mid_block.resnets.1", x, on: backend)
        x = try backend.run(.channelRMSNormSiLU(eps: 1e-12), [x, w["encoder.norm_out.gamma"]])[0]
        x = try layers.convolution("encoder.conv_out", x, padding: 1, on: backend)
        x = try layers.convolution("quant_conv", x, padding: 0, on: backend)
        let halves = try backend.split(x, sizes: [c.zDim, c.zDim], axis: 1)
        return (halves[0], try backend.clamped(halves[1], min: -30, max: 20))
    }

    /// `b c (h q) (w r) → b (c r q) h w`: channel `4c + 2·(column offset) + (row offset)`.
    func patchified(_ image: Tensor, on backend: any Backend) throws(EngineError) -> Tensor {
        let (b, ch, h, wd) = (image.shape[0], image.shape[1], image.shape[2], image.shape[3])
        let grid = try image.reshaped([b, ch, h / 2, 2, wd / 2, 2])
        return try backend.permuted(grid, [0, 1, 5, 3, 2, 4]).reshaped([b, ch * 4, h / 2, wd / 2])
    }

    /// `AvgDown3D` for one frame: channels regrouped as (c, time, row, column) factors, a zero frame first when the
    /// block also halves time, then each group of `c·factors / out` averaged.
    func averageDown(_ x: Tensor, to outChannels: Int, temporal: Bool, spatial: Bool, on backend: any Backend) throws(EngineError) -> Tensor {
        let (b, ch, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let fs = spatial ? 2 : 1, ft = temporal ? 2 : 1
        var grouped = try backend.permuted(try x.reshaped([b, ch, 1, h / fs, fs, wd / fs, fs]), [0, 1, 2, 4, 6, 3, 5])
        if temporal {
            // The zero frame comes first in time.
            grouped = try backend.run(.pad(amounts: [0, 0, 0, 0, 0, 0, 0, 0, 1, 0], value: 0), [grouped])[0]
        }
        let factor = ft * fs * fs
        let group = ch * factor / outChannels
        let stacked = try grouped.reshaped([b, outChannels, group, h / fs, wd / fs])
        return try backend.run(.mean(axes: [2], keepDims: false), [stacked])[0]
    }
}
