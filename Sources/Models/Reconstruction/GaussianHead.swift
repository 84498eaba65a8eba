import Cameras
import EngineCore
import ModelLoading


#if canImport(Glibc)
    import Glibc
#endif

/// FlashWorld's pixel-aligned Gaussian head (`PixelAligned3DGS`, `flashworld-model.md` §8.2): a 3x3 convolution to 76
/// channels per pixel (two Gaussians of 38), then per Gaussian a position along its pixel's ray, opacity, scale,
/// rotation and SH degree 2, formula for formula.
public struct GaussianHead: Sendable {
    public static let shDegree = 2
    public static let pointsPerPixel = 2
    /// `[SH 27 | uv offset 2 | depth 1 | opacity 1 | scale 3 | rotation 4]`.
    public static let channelsPerPoint = 38
    public static let scaleRange: (Float, Float) = (0, 16)

    /// The per-channel multipliers of the convolution (`lrs_mul`): 1 for SH DC, 0.5 for higher SH, 0.01 for the uv
    /// offset, 1 for the rest.
    public static let learningRateMultipliers: [Float] = {
        let point = [Float](repeating: 1, count: 3) + [Float](repeating: 0.5, count: 24) + [0.01, 0.01] + [Float](repeating: 1, count: 9)
        return point + point
    }()

    public let weights: ModelWeights
    public let prefix: String

    public init(weights: ModelWeights, prefix: String = "gs_head.") {
        self.weights = weights
        self.prefix = prefix
    }

    public static func parameterSpecs(inputChannels: Int, prefix: String = "gs_head.") -> [ParameterSpec] {
        let out = pointsPerPixel * channelsPerPoint
        return [
            ParameterSpec("\(prefix)gs_proj.weight", shape: [out, inputChannels, 3, 3]),
            ParameterSpec("\(prefix)gs_proj.bias", shape: [out]),
            ParameterSpec("\(prefix)lrs_mul", shape: [out]),
        ]
    }

    /// Gaussians `[frames · 2 · h · w, 38]` as `[x, y, z, opacity, sx, sy, sz, qw, qx, qy, qz, sh₀…sh₂₆]`, ordered
    /// `((frame·2 + point)·h + row)·w + column`, from decoder features `[frames, c, h, w]` and one normalised camera
    /// per frame (positions in the cameras' world).
    public func callAsFunction(_ features: Tensor, cameras: [Camera], on backend: any Backend) throws(EngineError) -> Tensor {
        guard features.rank == 4, features.shape[0] == cameras.count else {
            throw EngineError(.shapeMismatch, "Gaussian head: features \(features.shape) need one camera per frame, got \(cameras.count)")
        }
        let (frames, h, w) = (features.shape[0], features.shape[2], features.shape[3])
        let lrs = weights["\(prefix)lrs_mul"].floats()
        let weight = try backend.multiply(weights["\(prefix)gs_proj.weight"], try Tensor(lrs, shape: [lrs.count, 1, 1, 1]))
        let bias = try backend.multiply(weights["\(prefix)gs_proj.bias"], try Tensor(lrs, shape: [lrs.count]))
        let raw = try backend.run(.conv2d(stride: [1], padding: [1]), [features, weight, bias])[0].floats()
        let pixels = h * w, perPoint = Self.channelsPerPoint
        var out = [Float](repeating: 0, count: frames * Self.pointsPerPixel * pixels * perPoint)
        for (f, camera) in cameras.enumerated() {
            let rotation = camera.orientation.rotationMatrix
            let k = camera.intrinsics.inPixels(width: w, height: h)
            let (fx, fy, cx, cy) = (Float(k.fx), Float(k.fy), Float(k.cx), Float(k.cy))
            let r = (0..<3).map { row in (0..<3).map { Float(rotation[row, $0]) } }
            let origin = (Float(camera.position.x), Float(camera.position.y), Float(camera.position.z))
            let pixelScale = (Float(camera.intrinsics.fx) / Float(w) * Float(camera.intrinsics.fx) / Float(w)
                + Float(camera.intrinsics.fy) / Float(h) * Float(camera.intrinsics.fy) / Float(h)).squareRoot()
            for point in 0..<Self.pointsPerPixel {
                let channelBase = (f * Self.pointsPerPixel * perPoint + point * perPoint) * pixels
                for pixel in 0..<pixels {
                    @inline(__always) func c(_ i: Int) -> Float { raw[channelBase + i * pixels + pixel] }
                    let (row, column) = (pixel / w, pixel % w)
                    let u = (Float(column) + 0.5) / cx + c(27), v = (Float(row) + 0.5) / cy + c(28)
                    let dx = (u - 1) * cx / fx, dy = -(v - 1) * cy / fy, dz: Float = -1
                    var d = (
                        r[0][0] * dx + r[0][1] * dy + r[0][2] * dz, r[1][0] * dx + r[1][1] * dy + r[1][2] * dz,
                        r[2][0] * dx + r[2][1] * dy + r[2][2] * dz
                    )
                    let norm = max((d.0 * d.0 + d.1 * d.1 + d.2 * d.2).squareRoot(), 1e-12)
                    d = (d.0 / norm, d.1 / norm, d.2 / norm)
                    let depth = expf(c(29))
                    let o = ((f * Self.pointsPerPixel + point) * pixels + pixel) * perPoint
                    out[o] = origin.0 + depth * d.0
                    out[o + 1] = origin.1 + depth * d.1
                    out[o + 2] = origin.2 + depth * d.2
                    out[o + 3] = 1 / (1 + expf(-c(30)))
                    for a in 0..<3 {
                        let s = 1 / (1 + expf(-c(31 + a)))
                        out[o + 4 + a] = (s * (Self.scaleRange.1 - Self.scaleRange.0) + Self.scaleRange.0) * pixelScale * depth
                    }
                    let q = (c(34), c(35), c(36), c(37))
                    let qn = max((q.0 * q.0 + q.1 * q.1 + q.2 * q.2 + q.3 * q.3).squareRoot(), 1e-12)
                    out[o + 7] = q.0 / qn
                    out[o + 8] = q.1 / qn
                    out[o + 9] = q.2 / qn
                    out[o + 10] = q.3 / qn
                    for s in 0..<27 { out[o + 11 + s] = c(s) }
                }
            }
        }
        return try Tensor(out, shape: [frames * Self.pointsPerPixel * pixels, perPoint])
    }
}
