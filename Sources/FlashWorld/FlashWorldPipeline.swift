import Cameras
import EngineCore
import FoundationEssentials
import MediaIO
import Models
import SplatCore
import SplatRender

#if canImport(Glibc)
    import Glibc
#endif

/// What to generate: a prompt and/or an image, seen from a camera path, at a size and frame count.
public struct GenerationRequest: Sendable {
    public var prompt: String
    /// The conditioning image at the generation size, `[3, height, width]` in [−1, 1] (already cropped and resized).
    public var image: Tensor?
    public var imageIndex: Int
    /// Cameras in the caller's world; resampled to `frames` when their count differs.
    public var cameras: [Camera]
    public var frames: Int
    public var width: Int
    public var height: Int

    public init(prompt: String, image: Tensor? = nil, imageIndex: Int = 0, cameras: [Camera], frames: Int = 24, width: Int = 704, height: Int = 480) {
        self.prompt = prompt
        self.image = image
        self.imageIndex = imageIndex
        self.cameras = cameras
        self.frames = frames
        self.width = width
        self.height = height
    }

    public static let maxFrames = 64
    public static let maxSide = 2048

    /// Refuses a request before any heavy work: sizes that are not multiples of 32, frame counts or sides past the
    /// limits, an index outside the path, nothing to condition on.
    public func validate() throws(ModelError) {
        guard width > 0, height > 0, width % 32 == 0, height % 32 == 0 else {
            throw ModelError("size \(width)x\(height) must be positive multiples of 32 (e.g. 704x480)")
        }
        guard width <= Self.maxSide, height <= Self.maxSide else { throw ModelError("size \(width)x\(height) exceeds the limit of \(Self.maxSide) per side") }
        guard (1...Self.maxFrames).contains(frames) else { throw ModelError("frames \(frames) must be 1 to \(Self.maxFrames)") }
        guard !cameras.isEmpty else { throw ModelError("the camera path is empty") }
        guard !prompt.allSatisfy(\.isWhitespace) || image != nil else { throw ModelError("give a prompt, an image, or both") }
        guard (0..<frames).contains(imageIndex) else { throw ModelError("image index \(imageIndex) is outside the \(frames) frames") }
        if let image, image.shape != [3, height, width] {
            throw ModelError("the image is \(image.shape); it must be [3, \(height), \(width)] after cropping and resizing")
        }
    }
}

/// A generated scene and how it was made.
public struct GenerationResult: Sendable {
    /// De-normalised as the reference exports: positions and scales times `T_norm`, in camera 0's OpenGL frame (RUB).
    public var cloud: GaussianCloud
    public var normalization: NormalizedCameras
    /// Seconds per stage, in order.
    public var timings: [(stage: String, seconds: Double)]
}

/// FlashWorld's generation (`flashworld-model.md` §4): four flow-matching steps of the widened Wan transformer, with
/// the 3D feedback loop (decode Gaussians, render them on white, re-encode, re-noise) after each of the first three.
public struct FlashWorldPipeline: Sendable {
    public let model: FlashWorldModel
    public let backend: any Backend

    public init(model: FlashWorldModel, backend: any Backend) {
        self.model = model
        self.backend = backend
    }

    public typealias Progress = (_ stage: String, _ step: Int, _ steps: Int) -> Void
    /// Sees the loop's intermediates by the parity fixture's names (`context`, `x0_step0`, `renders_step0`, `scene`, …).
    public typealias Inspector = (_ name: String, _ value: Tensor) -> Void

    /// `isCancelled` is asked at every stage boundary (the calling task's cancellation by default; a caller on a plain
    /// thread passes its own flag).
    public func generate(
        _ request: GenerationRequest, noise: inout some NoiseSource, progress: Progress = { _, _, _ in }, inspect: Inspector? = nil,
        isCancelled: () -> Bool = { Task.isCancelled }
    ) throws -> GenerationResult {
        try request.validate()
        let b = backend
        let (n, z, feat) = (request.frames, model.latentChannels, model.featureChannels)
        let (h, w) = (request.height / 16, request.width / 16)
        var timings: [(String, Double)] = []
        var clock = monotonic()
        // A cancelled job stops at the next stage boundary.
        func lap(_ stage: String) throws {
            let now = monotonic()
            timings.append((stage, now - clock))
            clock = now
            if isCancelled() { throw CancellationError() }
        }

        // 1. Cameras: resampled to the frame count, re-based on camera 0 and scaled.
        let path = request.cameras.count == n ? CameraPath(request.cameras) : CameraPath(request.cameras).resampled(count: n)
        let normalization = normalizedCameras(path.cameras)
        let cameras = normalization.cameras

        // 2. Text: "[Static] " + prompt, padded; positions after the prompt zeroed (the reference does this by hand).
        progress("text", 0, 1)
        let (ids, mask) = model.tokenizer.encode("[Static] " + request.prompt, maxLength: model.textLength)
        var context = try model.textEncoder(
            try Tensor(int64s: ids, shape: [1, ids.count]), mask: try Tensor(int64s: mask, shape: [1, mask.count]), on: b)
        let length = Int(mask.reduce(0, +))
        var values = context.floats()
        let width = context.shape[2]
        for i in (length * width)..<values.count { values[i] = 0 }
        context = try Tensor(values, shape: context.shape)
        inspect?("context", context)
        try lap("text encoder")

        // 3. Image condition into frame `imageIndex`, as scaled latents.
        let statistics = try latentStatistics()
        var condition = [Float](repeating: 0, count: z * n * h * w)
        if let image = request.image {
            progress("image", 0, 1)
            let latent = try encodeAndScale(try image.reshaped([1, 3, request.height, request.width]), noise: &noise, statistics: statistics)
            let v = latent.floats()
            for c in 0..<z {
                for p in 0..<(h * w) { condition[(c * n + request.imageIndex) * h * w + p] = v[c * h * w + p] }
            }
            try lap("image encoder")
        }
        let conditionLatents = try Tensor(condition, shape: [1, z, n, h, w])
        inspect?("condition_latents", conditionLatents)

        // 4. Raymaps [1, 6, n, h, w].
        var rays = [Float](repeating: 0, count: 6 * n * h * w)
        for (f, camera) in cameras.enumerated() {
            let map = RayGrid(camera: camera, width: w, height: h).raymap
            for p in 0..<(h * w) { for c in 0..<6 { rays[(c * n + f) * h * w + p] = map[p * 6 + c] } }
        }
        let raymaps = try Tensor(rays, shape: [1, 6, n, h, w])
        inspect?("raymaps", raymaps)

        // 5.-6. The four steps.
        var noisy = try noise.normal([1, z, n, h, w])
        var previousFeatures = try Tensor.zeros([1, feat, n, h, w])
        var previousLatents = try Tensor.zeros([1, z, n, h, w])
        let sigmas = FlowMatchSchedule.sigmas
        var scene: Tensor?
        for (step, sigma) in sigmas.enumerated() {
            progress("step", step + 1, sigmas.count)
            let input = try b.concat([noisy, raymaps, conditionLatents, previousFeatures, previousLatents], axis: 1)
            let output = try model.transformer(input, timestep: try Tensor([Float(1000 * sigma)], shape: [1]), text: context, on: b)
            let parts = try b.split(output, sizes: [z, feat], axis: 1)
            let x0 = try b.add(noisy, try b.scaled(parts[0], by: Float(-sigma)))
            for (name, value) in [("noisy", noisy), ("velocity", parts[0]), ("feats", parts[1]), ("x0", x0)] { inspect?("\(name)_step\(step)", value) }
            try lap("step \(step + 1): transformer")
            let gaussians = try model.reconstruction(
                features: try perFrame(parts[1]), latents: try perFrame(try unscaled(x0, statistics)), cameras: cameras, on: b)
            try lap("step \(step + 1): reconstruction")
            guard step < sigmas.count - 1 else {
                inspect?("scene", gaussians)
                scene = gaussians
                break
            }
            inspect?("gaussians_step\(step)", gaussians)
            let renders = try render(gaussians, cameras: cameras, width: request.width, height: request.height)
            inspect?("renders_step\(step)", renders)
            try lap("step \(step + 1): render")
            let latents3D = try encodeAndScale(renders, noise: &noise, statistics: statistics)
            previousLatents = try b.permuted(try latents3D.reshaped([1, n, z, h, w]), [0, 2, 1, 3, 4])
            inspect?("x0_3d_step\(step)", previousLatents)
            previousFeatures = parts[1]
            let next = sigmas[step + 1]
            noisy = try b.add(try b.scaled(try noise.normal([1, z, n, h, w]), by: Float(next)), try b.scaled(previousLatents, by: 1 - Float(next)))
            try lap("step \(step + 1): re-encode")
        }
        let cloud = try exported(scene!, scale: Float(normalization.translationScale))
        try lap("export")
        return GenerationResult(cloud: cloud, normalization: normalization, timings: timings)
    }

    /// `[1, c, n, h, w]` → `[n, c, h, w]`.
    func perFrame(_ t: Tensor) throws(EngineError) -> Tensor {
        let (c, n, h, w) = (t.shape[1], t.shape[2], t.shape[3], t.shape[4])
        return try backend.permuted(t, [0, 2, 1, 3, 4]).reshaped([n, c, h, w])
    }

    /// Per-channel mean and std as `[1, z, 1, 1, 1]` tensors (and their 4D forms for per-frame latents).
    func latentStatistics() throws(EngineError) -> (mean: [Float], std: [Float]) {
        let c = model.vaeEncoder.configuration
        return (c.latentsMean.map { Float($0) }, c.latentsStd.map { Float($0) })
    }

    func unscaled(_ latent: Tensor, _ s: (mean: [Float], std: [Float])) throws(EngineError) -> Tensor {
        let z = s.mean.count
        let std = try Tensor(s.std, shape: [1, z, 1, 1, 1]), mean = try Tensor(s.mean, shape: [1, z, 1, 1, 1])
        return try backend.add(try backend.multiply(latent, std), mean)
    }

    /// Encodes images `[f, 3, H, W]` with a posterior sample, then scales: `(sample − mean) / std`, `[f, z, h, w]`.
    func encodeAndScale(_ images: Tensor, noise: inout some NoiseSource, statistics s: (mean: [Float], std: [Float])) throws -> Tensor {
        let (mean, logvar) = try model.vaeEncoder(images, on: backend)
        let epsilon = try noise.normal(mean.shape)
        let (m, l, e) = (mean.floats(), logvar.floats(), epsilon.floats())
        let z = s.mean.count, plane = mean.count / (mean.shape[0] * z)
        var out = [Float](repeating: 0, count: m.count)
        for i in 0..<m.count {
            let c = (i / plane) % z
            out[i] = (m[i] + expf(0.5 * l[i]) * e[i] - s.mean[c]) / s.std[c]
        }
        return try Tensor(out, shape: mean.shape)
    }

    /// The Gaussians rendered from every camera on white, as images `[n, 3, H, W]` in [−1, 1].
    func render(_ gaussians: Tensor, cameras: [Camera], width: Int, height: Int) throws -> Tensor {
        let cloud = try Self.cloud(gaussians, scale: 1, logEpsilon: 0)
        let renderer = SplatRenderer(options: RenderOptions(background: SIMD3(1, 1, 1), shDegree: 2))
        var pixels = [Float](repeating: 0, count: cameras.count * 3 * width * height)
        let plane = width * height
        for (f, camera) in cameras.enumerated() {
            let image = try renderer.render(cloud, camera: RenderCamera(camera, width: width, height: height, farPlane: 1000))
            for p in 0..<plane {
                for c in 0..<3 { pixels[(f * 3 + c) * plane + p] = min(max(image.rgb[3 * p + c] * 2 - 1, -1), 1) }
            }
        }
        return try Tensor(pixels, shape: [cameras.count, 3, height, width])
    }

    /// Gaussians `[m, 38]` as a cloud in the cameras' OpenGL world (RUB), positions and scales times `scale`.
    static func cloud(_ gaussians: Tensor, scale: Float, logEpsilon: Float = 1e-8) throws -> GaussianCloud {
        let g = gaussians.floats()
        let m = gaussians.shape[0]
        var positions = [Float](repeating: 0, count: 3 * m), logScales = positions
        var rotations = [Float](repeating: 0, count: 4 * m), opacities = [Float](repeating: 0, count: m)
        var sh = [Float](repeating: 0, count: 27 * m)
        for i in 0..<m {
            let v = g[(38 * i)..<(38 * i + 38)]
            let base = 38 * i
            for k in 0..<3 {
                positions[3 * i + k] = v[base + k] * scale
                logScales[3 * i + k] = logf(max(v[base + 4 + k] * scale + logEpsilon, .leastNormalMagnitude))
            }
            opacities[i] = logit(v[base + 3])
            for k in 0..<4 { rotations[4 * i + k] = v[base + 7 + k] }
            for k in 0..<27 { sh[27 * i + k] = v[base + 11 + k] }
        }
        return try GaussianCloud(
            positions: positions, logScales: logScales, rotations: rotations, logitOpacities: opacities, sh: sh, shDegree: 2, frame: .rub)
    }

    /// The reference's export: positions and scales times `T_norm` (not `T_norm + 0.01`), camera 0's frame kept.
    func exported(_ gaussians: Tensor, scale: Float) throws -> GaussianCloud { try Self.cloud(gaussians, scale: scale) }
}

func monotonic() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

extension GenerationRequest {
    /// The image bytes of the API's `image_prompt`: a data URL or bare base64, nil otherwise. The reference would open
    /// a server path here; Diorama never reads one.
    public static func imageBytes(fromImagePrompt prompt: String) -> [UInt8]? {
        let payload = prompt.hasPrefix("data:") ? String(prompt.drop { $0 != "," }.dropFirst()) : prompt
        guard let data = Data(base64Encoded: payload, options: .ignoreUnknownCharacters), !data.isEmpty else { return nil }
        return [UInt8](data)
    }

    /// A conditioning image from encoded bytes (PNG, JPEG or WebP): centre-cropped to the generation aspect ratio,
    /// resized, and mapped to `[3, height, width]` in [−1, 1].
    public static func conditioningImage(_ bytes: [UInt8], name: String, width: Int, height: Int) throws -> Tensor {
        try conditioningImage(try ImageDecoder.decode(bytes, name: name), width: width, height: height)
    }

    /// A decoded image as the conditioning tensor (FlashWorld's centre crop, resized, in [−1, 1]).
    public static func conditioningImage(_ image: RGBImage, width: Int, height: Int) throws -> Tensor {
        let fitted = image.centerCroppedAndResized(width: width, height: height)
        let plane = width * height
        var values = [Float](repeating: 0, count: 3 * plane)
        for p in 0..<plane { for c in 0..<3 { values[c * plane + p] = Float(fitted.pixels[3 * p + c]) / 127.5 - 1 } }
        return try Tensor(values, shape: [3, height, width])
    }
}
