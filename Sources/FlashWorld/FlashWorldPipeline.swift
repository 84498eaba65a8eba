import Cameras
import EngineCore
import FoundationEssentials
import MediaIO
import Models
import Parallelism
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
    /// Flow-matching steps: 4 (FlashWorld's) or 2 (`FlowMatchSchedule.supportedStepCounts`).
    public var steps: Int

    public init(
        prompt: String, image: Tensor? = nil, imageIndex: Int = 0, cameras: [Camera], frames: Int = 24, width: Int = 704, height: Int = 480,
        steps: Int = 4
    ) {
        self.prompt = prompt
        self.image = image
        self.imageIndex = imageIndex
        self.cameras = cameras
        self.frames = frames
        self.width = width
        self.height = height
        self.steps = steps
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
        guard FlowMatchSchedule.supportedStepCounts.contains(steps) else {
            throw ModelError("steps \(steps) is not supported: FlashWorld runs 4 (as distilled) or 2 (faster, lower quality)")
        }
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
    /// Renders the feedback loop's views; the CPU renderer unless a device rasterizer is given.
    public let renderer: any ViewRenderer
    /// Text contexts of recent prompts (a service keeps one across jobs).
    public let textCache: TextEmbeddingCache?

    public init(model: FlashWorldModel, backend: any Backend, renderer: (any ViewRenderer)? = nil, textCache: TextEmbeddingCache? = nil) {
        self.model = model
        self.backend = backend
        self.renderer = renderer ?? CPUViewRenderer()
        self.textCache = textCache
    }

    /// Stages in order: `text`, `image`, then per step `step` (its transformer pass), `reconstruction`, `render`,
    /// `re-encode` (the last step has only the first two), and `export`.
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
            // A device runs behind the host: wait at each stage boundary so the timings (and a cancellation) mean
            // the stage is done. One wait per stage, a handful per scene.
            try b.synchronize()
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
        let prompt = "[Static] " + request.prompt
        let context: Tensor
        if let cached = textCache?.lookup(prompt), cached.device == b.device {
            context = cached
            inspect?("context", context)
            try lap("text encoder (cached)")
        } else {
            // A streamed encoder puts its layers on the device one at a time (a no-op for a resident one).
            var encoder = model.textEncoder
            encoder.weights = try model.textEncoder.streamedWeights(on: b)
            context = try encoder.context(for: prompt, tokenizer: model.tokenizer, length: model.textLength, on: b)
            textCache?.store(context, for: prompt)
            inspect?("context", context)
            try lap("text encoder")
        }

        // 3. Image condition into frame `imageIndex`, as scaled latents (zeros elsewhere).
        let statistics = try latentStatistics()
        var conditionLatents = try b.zeros([1, z, n, h, w])
        if let image = request.image {
            progress("image", 0, 1)
            let pixels = try b.upload(image).reshaped([1, 3, request.height, request.width])
            let latent = try encodeAndScale(pixels, noise: &noise, statistics: statistics).reshaped([1, z, 1, h, w])
            var parts: [Tensor] = []
            if request.imageIndex > 0 { parts.append(try b.zeros([1, z, request.imageIndex, h, w])) }
            parts.append(latent)
            if request.imageIndex < n - 1 { parts.append(try b.zeros([1, z, n - 1 - request.imageIndex, h, w])) }
            conditionLatents = try b.concat(parts, axis: 2)
            try lap("image encoder")
        }
        inspect?("condition_latents", conditionLatents)

        // 4. Raymaps [1, 6, n, h, w]: the cameras' rays, computed on the host and copied over once.
        var rays = [Float](repeating: 0, count: 6 * n * h * w)
        for (f, camera) in cameras.enumerated() {
            let map = RayGrid(camera: camera, width: w, height: h).raymap
            for p in 0..<(h * w) { for c in 0..<6 { rays[(c * n + f) * h * w + p] = map[p * 6 + c] } }
        }
        let raymaps = try b.constant(rays, shape: [1, 6, n, h, w])
        inspect?("raymaps", raymaps)

        // 5.-6. The four steps.
        var noisy = try noise.normal([1, z, n, h, w], on: b)
        var previousFeatures = try b.zeros([1, feat, n, h, w])
        var previousLatents = try b.zeros([1, z, n, h, w])
        let sigmas = FlowMatchSchedule.sigmas(steps: request.steps)
        var scene: Tensor?
        var transformer = model.transformer
        transformer.weights = try model.transformer.streamedWeights(on: b)
        for (step, sigma) in sigmas.enumerated() {
            progress("step", step + 1, sigmas.count)
            let input = try b.concat([noisy, raymaps, conditionLatents, previousFeatures, previousLatents], axis: 1)
            let output = try b.cast(
                try transformer(input, timestep: try b.constant([Float(1000 * sigma)], shape: [1]), text: context, on: b), to: .float32)
            let parts = try b.split(output, sizes: [z, feat], axis: 1)
            let x0 = try b.add(noisy, try b.scaled(parts[0], by: Float(-sigma)))
            for (name, value) in [("noisy", noisy), ("velocity", parts[0]), ("feats", parts[1]), ("x0", x0)] { inspect?("\(name)_step\(step)", value) }
            try lap("step \(step + 1): transformer")
            progress("reconstruction", step + 1, sigmas.count)
            let gaussians = try model.reconstruction(
                features: try perFrame(parts[1]), latents: try perFrame(try unscaled(x0, statistics)), cameras: cameras, on: b)
            try lap("step \(step + 1): reconstruction")
            guard step < sigmas.count - 1 else {
                inspect?("scene", gaussians)
                scene = gaussians
                break
            }
            inspect?("gaussians_step\(step)", gaussians)
            progress("render", step + 1, sigmas.count)
            let renders = try renderer.render(gaussians, cameras: cameras, width: request.width, height: request.height, on: b)
            inspect?("renders_step\(step)", renders)
            try lap("step \(step + 1): render")
            progress("re-encode", step + 1, sigmas.count)
            let latents3D = try encodeAndScale(renders, noise: &noise, statistics: statistics)
            previousLatents = try b.permuted(try latents3D.reshaped([1, n, z, h, w]), [0, 2, 1, 3, 4])
            inspect?("x0_3d_step\(step)", previousLatents)
            previousFeatures = parts[1]
            let next = sigmas[step + 1]
            noisy = try b.add(
                try b.scaled(try noise.normal([1, z, n, h, w], on: b), by: Float(next)), try b.scaled(previousLatents, by: 1 - Float(next)))
            try lap("step \(step + 1): re-encode")
        }
        progress("export", sigmas.count, sigmas.count)
        let cloud = try exported(scene!, scale: Float(normalization.exportScale))
        try lap("export")
        return GenerationResult(cloud: cloud, normalization: normalization, timings: timings)
    }

    /// `[1, c, n, h, w]` → `[n, c, h, w]`.
    func perFrame(_ t: Tensor) throws(EngineError) -> Tensor {
        let (c, n, h, w) = (t.shape[1], t.shape[2], t.shape[3], t.shape[4])
        return try backend.permuted(t, [0, 2, 1, 3, 4]).reshaped([n, c, h, w])
    }

    /// The VAE's per-channel latent mean and std as `[1, z, 1, 1]` tensors on the backend.
    func latentStatistics() throws(EngineError) -> (mean: Tensor, std: Tensor) {
        let c = model.vaeEncoder.configuration
        let z = c.latentsMean.count
        return (
            try backend.constant(c.latentsMean.map { Float($0) }, shape: [1, z, 1, 1]),
            try backend.constant(c.latentsStd.map { Float($0) }, shape: [1, z, 1, 1])
        )
    }

    /// `latent · std + mean` for `[1, z, n, h, w]` latents.
    func unscaled(_ latent: Tensor, _ s: (mean: Tensor, std: Tensor)) throws(EngineError) -> Tensor {
        let z = s.mean.count
        return try backend.add(try backend.multiply(latent, try s.std.reshaped([1, z, 1, 1, 1])), try s.mean.reshaped([1, z, 1, 1, 1]))
    }

    /// Encodes images `[f, 3, H, W]` with a posterior sample, then scales: `(sample − mean) / std`, `[f, z, h, w]`.
    func encodeAndScale(_ images: Tensor, noise: inout some NoiseSource, statistics s: (mean: Tensor, std: Tensor)) throws -> Tensor {
        let b = backend
        let (mean, logvar) = try model.vaeEncoder(images, on: b)
        let (m, l) = (try b.cast(mean, to: .float32), try b.cast(logvar, to: .float32))
        let epsilon = try noise.normal(m.shape, on: b)
        let sample = try b.add(m, try b.multiply(try b.exp(try b.scaled(l, by: 0.5)), epsilon))
        return try b.divide(try b.subtract(sample, s.mean), s.std)
    }

    /// Gaussians `[m, 38]` as a cloud in the cameras' OpenGL world (RUB), positions and scales times `scale`. The
    /// columns are computed on the backend (log scales, opacity logits) and each is read back once, straight into the
    /// cloud's own buffers: no host-side copy of the whole tensor and no per-element host loop.
    static func cloud(_ gaussians: Tensor, scale: Float, logEpsilon: Float = 1e-8, on b: any Backend) throws -> GaussianCloud {
        guard gaussians.rank == 2, gaussians.shape[1] == 38 else {
            throw EngineError(.shapeMismatch, "Gaussians must be [m, 38] (the head's layout), not \(gaussians.shape)")
        }
        let g = gaussians.dtype == .float32 ? gaussians : try b.cast(gaussians, to: .float32)
        let m = g.shape[0]
        func columns(_ start: Int, _ count: Int) throws(EngineError) -> Tensor { try g.narrowed(1, start: start, length: count) }
        func constant(_ value: Float) throws(EngineError) -> Tensor { try b.run(.full(shape: [1], value: value, dtype: .float32), [])[0] }
        let positions = try b.scaled(try columns(0, 3), by: scale)
        let shifted = try b.add(try b.scaled(try columns(4, 3), by: scale), try constant(logEpsilon))
        let logScales = try b.log(try b.clamped(shifted, min: .leastNormalMagnitude, max: .infinity))
        // `logit` of SplatCore: log(q / (1 − q)) with q kept inside [1e-7, 1 − 1e-7].
        let q = try b.clamped(try columns(3, 1), min: 1e-7, max: 1 - 1e-7)
        let opacities = try b.log(try b.divide(q, try b.add(try b.scaled(q, by: -1), try constant(1))))
        let rotations = try b.run(.contiguous, [try columns(7, 4)])[0]
        let sh = try b.run(.contiguous, [try columns(11, 27)])[0]
        var cloud = GaussianCloud(unsafeUninitializedCount: m, shDegree: 2, frame: .rub, antialiased: false)
        func fill(_ column: inout [Float], from t: Tensor) throws { try column.withUnsafeMutableBytes { try b.download(t, into: $0) } }
        try fill(&cloud.positions, from: positions)
        try fill(&cloud.logScales, from: logScales)
        try fill(&cloud.logitOpacities, from: opacities)
        try fill(&cloud.rotations, from: rotations)
        try fill(&cloud.sh, from: sh)
        return cloud
    }

    /// The reference's export: positions and scales times `T_norm` (not `T_norm + 0.01`), camera 0's frame kept; the
    /// one read-back of the final scene.
    func exported(_ gaussians: Tensor, scale: Float) throws -> GaussianCloud { try Self.cloud(gaussians, scale: scale, on: backend) }
}

/// Renders the feedback loop's views: Gaussians `[m, 38]` (the head's layout) seen from every camera on white, as
/// images `[n, 3, H, W]` in [−1, 1] on the backend (`flashworld-model.md` §9), with gsplat 1.5.2/1.5.3's semantics.
public protocol ViewRenderer: Sendable {
    func render(_ gaussians: Tensor, cameras: [Camera], width: Int, height: Int, on backend: any Backend) throws -> Tensor
}

/// The CPU renderer: reads the Gaussians back (an explicit host round trip on a GPU backend) and renders each view
/// on every core.
public struct CPUViewRenderer: ViewRenderer {
    public init() {}

    public func render(_ gaussians: Tensor, cameras: [Camera], width: Int, height: Int, on backend: any Backend) throws -> Tensor {
        let cloud = try FlashWorldPipeline.cloud(gaussians, scale: 1, logEpsilon: 0, on: backend)
        let renderer = SplatRenderer(options: RenderOptions(background: SIMD3(1, 1, 1), shDegree: 2))
        var pixels = [Float](repeating: 0, count: cameras.count * 3 * width * height)
        let plane = width * height
        for (f, camera) in cameras.enumerated() {
            let image = try renderer.render(cloud, camera: RenderCamera(camera, width: width, height: height, farPlane: 1000))
            for p in 0..<plane {
                for c in 0..<3 { pixels[(f * 3 + c) * plane + p] = min(max(image.rgb[3 * p + c] * 2 - 1, -1), 1) }
            }
        }
        return try backend.constant(pixels, shape: [cameras.count, 3, height, width])
    }
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
