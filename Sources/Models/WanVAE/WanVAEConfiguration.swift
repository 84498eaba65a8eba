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

    /// The Wan2.2 VAE (`vae/config.json` of Wan2.2-TI2V-5B-Diffusers; `flashworld-model.md` §2 and Appendix A).
    public static let wan22 = WanVAEConfiguration(
        baseDim: 160, decoderBaseDim: 256, zDim: 48, dimMult: [1, 2, 4, 4], numResBlocks: 2, temperalDownsample: [false, true, true],
        latentsMean: [
            -0.2289, -0.0052, -0.1323, -0.2339, -0.2799, 0.0174, 0.1838, 0.1557, -0.1382, 0.0542, 0.2813, 0.0891, 0.1570, -0.0098, 0.0375,
            -0.1825, -0.2246, -0.1207, -0.0698, 0.5109, 0.2665, -0.2108, -0.2158, 0.2502, -0.2055, -0.0322, 0.1109, 0.1567, -0.0729, 0.0899,
            -0.2799, -0.1230, -0.0313, -0.1649, 0.0117, 0.0723, -0.2839, -0.2083, -0.0520, 0.3748, 0.0152, 0.1957, 0.1433, -0.2944, 0.3573,
            -0.0548, -0.1681, -0.0667,
        ],
        latentsStd: [
            0.4765, 1.0364, 0.4514, 1.1677, 0.5313, 0.4990, 0.4818, 0.5013, 0.8158, 1.0344, 0.5894, 1.0901, 0.6885, 0.6165, 0.8454, 0.4978,
            0.5759, 0.3523, 0.7135, 0.6804, 0.5833, 1.4146, 0.8986, 0.5659, 0.7069, 0.5338, 0.4889, 0.4917, 0.4069, 0.4999, 0.6866, 0.4093,
            0.5709, 0.6065, 0.6415, 0.4944, 0.5726, 1.2042, 0.5458, 1.6887, 0.3971, 1.0600, 0.3943, 0.5537, 0.5444, 0.4089, 0.7468, 0.7744,
        ], isResidual: true, inChannels: 12, outChannels: 12, patchSize: 2, clipOutput: false)

    /// The Wan2.2 VAE's every flag at toy widths (4 latent channels), as the built-in `tiny` models use it.
    public static let toy = WanVAEConfiguration(
        baseDim: 4, decoderBaseDim: 4, zDim: 4, dimMult: [1, 2, 4, 4], numResBlocks: 1, temperalDownsample: [false, true, true],
        latentsMean: [0.1, -0.2, 0.05, 0], latentsStd: [0.9, 1.1, 1, 0.8], isResidual: true, inChannels: 12, outChannels: 12,
        patchSize: 2, clipOutput: false)

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
