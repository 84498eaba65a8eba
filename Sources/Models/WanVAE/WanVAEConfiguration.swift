/// The Wan VAE's configuration as diffusers writes it in `vae/config.json` (`AutoencoderKLWan`).
public struct WanVAEConfiguration: Codable, Sendable, Equatable {
    public var baseDim: Int
    public var decoderBaseDim: Int?
    public var zDim: Int
    public var dimMult: [Int]
    public var numResBlocks: Int
    public var temperalDownsample: [Bool]
    public var latentsMean: [Double]
    public var latentsStd: [Double]
    public var isResidual: Bool
    public var inChannels: Int
    public var outChannels: Int
    public var patchSize: Int?
    public var clipOutput: Bool?

    enum CodingKeys: String, CodingKey {
        case baseDim = "base_dim"
        case decoderBaseDim = "decoder_base_dim"
        case zDim = "z_dim"
        case dimMult = "dim_mult"
        case numResBlocks = "num_res_blocks"
        case temperalDownsample = "temperal_downsample"
        case latentsMean = "latents_mean"
        case latentsStd = "latents_std"
        case isResidual = "is_residual"
        case inChannels = "in_channels"
        case outChannels = "out_channels"
        case patchSize = "patch_size"
        case clipOutput = "clip_output"
    }

    public init(
        baseDim: Int, decoderBaseDim: Int?, zDim: Int, dimMult: [Int], numResBlocks: Int, temperalDownsample: [Bool],
        latentsMean: [Double], latentsStd: [Double], isResidual: Bool, inChannels: Int, outChannels: Int, patchSize: Int?,
        clipOutput: Bool?
    ) {
        self.baseDim = baseDim
        self.decoderBaseDim = decoderBaseDim
        self.zDim = zDim
        self.dimMult = dimMult
        self.numResBlocks = numResBlocks
        self.temperalDownsample = temperalDownsample
        self.latentsMean = latentsMean
        self.latentsStd = latentsStd
        self.isResidual = isResidual
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.patchSize = patchSize
        self.clipOutput = clipOutput
    }

    /// Channel widths of the encoder: the base, then one per down block.
    public var encoderDims: [Int] { [baseDim] + dimMult.map { baseDim * $0 } }

    /// Channel widths of the decoder: the deepest first, then one per up block.
    public var decoderDims: [Int] {
        let base = decoderBaseDim ?? baseDim
        return ([dimMult.last!] + dimMult.reversed()).map { base * $0 }
    }

    public func validate() throws(ModelError) {
        guard isResidual, patchSize == 2, inChannels == 12 else {
            throw ModelError("only the Wan2.2 VAE (is_residual, patch_size 2, 12 input channels) is supported")
        }
        guard dimMult.count == temperalDownsample.count + 1, numResBlocks > 0, zDim > 0, baseDim > 0 else {
            throw ModelError("dim_mult \(dimMult) needs one more entry than temperal_downsample \(temperalDownsample)")
        }
        guard latentsMean.count == zDim, latentsStd.count == zDim, latentsStd.allSatisfy({ $0 != 0 }) else {
            throw ModelError("latents_mean and latents_std must hold z_dim = \(zDim) values, the stds non-zero")
        }
    }
}
