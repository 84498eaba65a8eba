import Cameras
import EngineCore
import ModelLoading

/// FlashWorld's reconstruction decoder (`WANDecoderPixelAligned3DGSReconstructionModel`, `flashworld-model.md` §8): a
/// copy of the Wan2.2 VAE decoder that also takes the transformer's features through `extra_conv_in`, stops before
/// `conv_out` at half resolution with a new `norm_out`, and ends in the pixel-aligned Gaussian head.
public struct ReconstructionDecoder: Sendable {
    public let vae: WanVAEConfiguration
    public let featureChannels: Int
    public var weights: ModelWeights
    /// The element type activations flow in (weights may be stored narrower); float32 on the CPU oracle.
    public var activationType: DType = .float32
    /// Frames decoded at a time; nil decodes them all at once. Every layer of this decoder works within a frame (its
    /// causal kernels are cut to one tap, its attention spans one frame's pixels), so chunks give the same Gaussians
    /// while the activations shrink with the chunk: a 24-frame pass holds about 9.4 GiB of them in bf16.
    public var framesPerChunk: Int?

    public init(vae: WanVAEConfiguration, featureChannels: Int, weights: ModelWeights) throws(ModelError) {
        try vae.validate()
        self.vae = vae
        self.featureChannels = featureChannels
        self.weights = weights
    }

    public static func parameterSpecs(vae: WanVAEConfiguration, featureChannels: Int) -> [ParameterSpec] {
        // The decoder's own specs without conv_out and without the up blocks' time convolutions (deleted, §8.1).
        var specs = WanVAEDecoder.parameterSpecs(vae, output: false).filter { !$0.name.contains("time_conv") }
        // FlashWorld's checkpoint stores the causal kernels already cut to their last tap, [o, i, 1, 3, 3] (§3.2).
        for k in specs.indices where specs[k].shape.count == 5 && specs[k].shape[2] == 3 {
            var trimmed = specs[k].shape
            trimmed[2] = 1
            specs[k].alternativeShapes = [trimmed]
        }
        let dims = vae.decoderDims
        specs.append(ParameterSpec("extra_conv_in.weight", shape: [dims[0], featureChannels, 1, 3, 3]))
        specs.append(ParameterSpec("extra_conv_in.bias", shape: [dims[0]]))
        specs += GaussianHead.parameterSpecs(inputChannels: dims.last!)
        return specs
    }

    /// Gaussians `[frames · 2 · h · w, 38]` (see `GaussianHead`) from transformer features `[frames, feat, h', w']`,
    /// unscaled latents `[frames, z, h', w']` and one normalised camera per frame; `h = 8h'`, `w = 8w'`.
    public func callAsFunction(features: Tensor, latents: Tensor, cameras: [Camera], on backend: any Backend) throws(EngineError) -> Tensor {
        let frames = latents.shape[0]
        guard cameras.count == frames else {
            throw EngineError(.shapeMismatch, "the reconstruction decoder needs one camera per frame: \(cameras.count) for \(frames)")
        }
        // The head's rows are frame-major, so the chunks' Gaussians concatenate in order.
        return try chunkedAlongBatch(frames, chunk: framesPerChunk, on: backend) { (start, count) throws(EngineError) in
            [try decoded(
                features: try features.narrowed(0, start: start, length: count), latents: try latents.narrowed(0, start: start, length: count),
                cameras: Array(cameras[start..<(start + count)]), on: backend)]
        }[0]
    }

    func decoded(features: Tensor, latents: Tensor, cameras: [Camera], on backend: any Backend) throws(EngineError) -> Tensor {
        let decoder = try WanVAEDecoder(unchecked: vae, weights: weights)
        let layers = WanVAELayers(weights: weights)
        var x = try layers.convolution("post_quant_conv", try backend.cast(latents, to: activationType), padding: 0, on: backend)
        x = try layers.convolution("decoder.conv_in", x, padding: 1, on: backend)
        x = try backend.add(x, try layers.convolution("extra_conv_in", try backend.cast(features, to: activationType), padding: 1, on: backend))
        x = try decoder.trunk(x, prefix: "decoder.", on: backend)
        x = try backend.run(.channelRMSNormSiLU(eps: 1e-12), [x, weights["decoder.norm_out.gamma"]])[0]
        return try GaussianHead(weights: weights)(x, cameras: cameras, on: backend)
    }
}

extension WanVAEDecoder {
    /// A decoder over weights already checked by an owner's own specs.
    init(unchecked configuration: WanVAEConfiguration, weights: ModelWeights) {
        self.configuration = configuration
        self.weights = weights
    }
}
