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

    /// The projection's bias as the reference initialises it (its weight is zero): depth 1, opacity 0.1, pixel-sized,
    /// identity rotation, before the `lrs_mul` rescaling; random-weight models start from it so their scenes render
    /// like an untrained FlashWorld's rather than as screen-filling blobs.
    public static let initialBias: [Float] = {
        let point: [Float] = [Float](repeating: 0, count: 27) + [0, 0, 0, -2.1972246] + [Float](repeating: -2.7080502, count: 3) + [1, 0, 0, 0]
        return zip(point + point, learningRateMultipliers).map { $0 / $1 }
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

    /// The convolution's weight and bias with `lrs_mul` applied: done once by `prepared(on:)`, or here per call for
    /// weights that were not prepared.
    func projection(on backend: any Backend) throws(EngineError) -> (weight: Tensor, bias: Tensor) {
        if let weight = weights.optional("\(prefix)gs_proj.scaled_weight"), let bias = weights.optional("\(prefix)gs_proj.scaled_bias") {
            return (weight, bias)
        }
        let lrs = weights["\(prefix)lrs_mul"]
        let weight = weights["\(prefix)gs_proj.weight"]
        return (
            try backend.multiply(weight, try backend.cast(try lrs.reshaped([lrs.count, 1, 1, 1]), to: weight.dtype)),
            try backend.multiply(weights["\(prefix)gs_proj.bias"], try backend.cast(lrs, to: weight.dtype))
        )
    }

    /// The weights with the projection's rescaling done once (added as `gs_proj.scaled_weight` and `scaled_bias`).
    public static func prepared(_ weights: ModelWeights, prefix: String = "gs_head.", on backend: any Backend) throws(EngineError) -> ModelWeights {
        let (weight, bias) = try GaussianHead(weights: weights, prefix: prefix).projection(on: backend)
        var tensors = weights.tensors
        tensors["\(prefix)gs_proj.scaled_weight"] = weight
        tensors["\(prefix)gs_proj.scaled_bias"] = bias
        return ModelWeights(tensors, source: weights.source)
    }

    /// Gaussians `[frames · 2 · h · w, 38]` as `[x, y, z, opacity, sx, sy, sz, qw, qx, qy, qz, sh₀…sh₂₆]`, ordered
    /// `((frame·2 + point)·h + row)·w + column`, from decoder features `[frames, c, h, w]` and one normalised camera
    /// per frame (positions in the cameras' world). Everything after the convolution is float32 elementwise work on
    /// the backend, with the cameras as per-frame constants broadcast over the pixels.
    public func callAsFunction(_ features: Tensor, cameras: [Camera], on backend: any Backend) throws(EngineError) -> Tensor {
        guard features.rank == 4, features.shape[0] == cameras.count else {
            throw EngineError(.shapeMismatch, "Gaussian head: features \(features.shape) need one camera per frame, got \(cameras.count)")
        }
        let b = backend
        let (frames, h, w) = (features.shape[0], features.shape[2], features.shape[3])
        let (weight, bias) = try projection(on: b)
        let raw = try b.cast(try b.conv2d(features, weight, bias, padding: 1), to: .float32)
            .reshaped([frames, Self.pointsPerPixel, Self.channelsPerPoint, h, w])
        // [SH 27 | du | dv | depth | opacity | scale 3 | rotation 4]
        let c = try b.split(raw, sizes: [27, 1, 1, 1, 1, 3, 4], axis: 2)
        let (sh, du, dv, depthLogit, opacityLogit, scaleLogits, rotation) = (c[0], c[1], c[2], c[3], c[4], c[5], c[6])

        // Per-frame constants (the host's float32 arithmetic, as the reference does it per camera).
        var fx: [Float] = [], fy: [Float] = [], cx: [Float] = [], cy: [Float] = [], pixelScale: [Float] = []
        var r: [[Float]] = Array(repeating: [], count: 9), origin: [[Float]] = Array(repeating: [], count: 3)
        var uBase: [Float] = [], vBase: [Float] = []
        for camera in cameras {
            let rotation = camera.orientation.rotationMatrix
            let k = camera.intrinsics.inPixels(width: w, height: h)
            let (kx, ky, kcx, kcy) = (Float(k.fx), Float(k.fy), Float(k.cx), Float(k.cy))
            fx.append(kx)
            fy.append(ky)
            cx.append(kcx)
            cy.append(kcy)
            for row in 0..<3 { for column in 0..<3 { r[row * 3 + column].append(Float(rotation[row, column])) } }
            origin[0].append(Float(camera.position.x))
            origin[1].append(Float(camera.position.y))
            origin[2].append(Float(camera.position.z))
            pixelScale.append(
                (Float(camera.intrinsics.fx) / Float(w) * Float(camera.intrinsics.fx) / Float(w)
                    + Float(camera.intrinsics.fy) / Float(h) * Float(camera.intrinsics.fy) / Float(h)).squareRoot())
            uBase += (0..<w).map { (Float($0) + 0.5) / kcx }
            vBase += (0..<h).map { (Float($0) + 0.5) / kcy }
        }
        func perFrame(_ values: [Float]) throws(EngineError) -> Tensor { try b.constant(values, shape: [frames, 1, 1, 1, 1]) }
        let one = try b.full([1], value: 1)

        // The ray through each pixel (shifted by the predicted offset), rotated into the world and normalised.
        let u = try b.add(try b.constant(uBase, shape: [frames, 1, 1, 1, w]), du)
        let v = try b.add(try b.constant(vBase, shape: [frames, 1, 1, h, 1]), dv)
        let dx = try b.divide(try b.multiply(try b.subtract(u, one), try perFrame(cx)), try perFrame(fx))
        let dy = try b.scaled(try b.divide(try b.multiply(try b.subtract(v, one), try perFrame(cy)), try perFrame(fy)), by: -1)
        var direction: [Tensor] = []
        for axis in 0..<3 {
            let towards = try b.add(try b.multiply(dx, try perFrame(r[axis * 3])), try b.multiply(dy, try perFrame(r[axis * 3 + 1])))
            direction.append(try b.add(towards, try perFrame(r[axis * 3 + 2].map { -$0 })))
        }
        let norm = try b.clamped(
            try b.sqrt(
                try b.add(
                    try b.add(try b.multiply(direction[0], direction[0]), try b.multiply(direction[1], direction[1])),
                    try b.multiply(direction[2], direction[2]))), min: 1e-12)
        let depth = try b.exp(depthLogit)
        var position: [Tensor] = []
        for axis in 0..<3 {
            position.append(try b.add(try perFrame(origin[axis]), try b.multiply(depth, try b.divide(direction[axis], norm))))
        }
        let opacity = try b.sigmoid(opacityLogit)
        let scaleSpan = Self.scaleRange.1 - Self.scaleRange.0
        let scales = try b.multiply(
            try b.multiply(try b.add(try b.scaled(try b.sigmoid(scaleLogits), by: scaleSpan), try b.full([1], value: Self.scaleRange.0)),
                try perFrame(pixelScale)), depth)
        let q = try b.split(rotation, sizes: [1, 1, 1, 1], axis: 2)
        var squares = try b.multiply(q[0], q[0])
        for i in 1..<4 { squares = try b.add(squares, try b.multiply(q[i], q[i])) }
        let unitRotation = try b.divide(rotation, try b.clamped(try b.sqrt(squares), min: 1e-12))
        let gaussians = try b.concat(position + [opacity, scales, unitRotation, sh], axis: 2)
        return try b.permuted(gaussians, [0, 1, 3, 4, 2]).reshaped([frames * Self.pointsPerPixel * h * w, Self.channelsPerPoint])
    }
}
