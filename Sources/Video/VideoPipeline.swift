import EngineCore
import Models

/// What to generate: a prompt (and what to steer away from), optionally a first frame, at a size, length and step count.
public struct VideoRequest: Sendable {
    public var prompt: String
    /// Classifier-free guidance's negative prompt; diffusers' default is the empty prompt.
    public var negativePrompt: String
    /// The first frame, `[3, height, width]` in [−1, 1] (already cropped and resized), for image-to-video.
    public var image: Tensor?
    public var frames: Int
    public var width: Int
    public var height: Int
    public var steps: Int
    /// Guidance scale; 1 or less runs the conditional pass only.
    public var guidance: Double
    public var sampler: VideoSamplerKind
    public var acceleration: VideoAcceleration

    public init(
        prompt: String, negativePrompt: String = "", image: Tensor? = nil, defaults: VideoDefaults, sampler: VideoSamplerKind = .unipc,
        acceleration: VideoAcceleration = .init()
    ) {
        self.prompt = prompt
        self.negativePrompt = negativePrompt
        self.image = image
        self.frames = defaults.frames
        self.width = defaults.width
        self.height = defaults.height
        self.steps = defaults.steps
        self.guidance = defaults.guidance
        self.sampler = sampler
        self.acceleration = acceleration
    }

    public static let maxFrames = 241
    public static let maxSide = 2048
    public static let maxSteps = 200

    /// The frame count diffusers would run for `frames`: the nearest `4k + 1` at or below (at least 1).
    public static func supportedFrameCount(_ frames: Int) -> Int { frames % 4 == 1 ? frames : max(frames / 4 * 4 + 1, 1) }

    public var latentFrames: Int { (frames - 1) / 4 + 1 }

    /// Refuses a request before any heavy work, naming what is wrong.
    public func validate() throws(ModelError) {
        guard width > 0, height > 0, width % 32 == 0, height % 32 == 0 else {
            throw ModelError("size \(width)x\(height) must be positive multiples of 32 (e.g. 1280x704)")
        }
        guard width <= Self.maxSide, height <= Self.maxSide else { throw ModelError("size \(width)x\(height) exceeds the limit of \(Self.maxSide) per side") }
        guard frames % 4 == 1, (1...Self.maxFrames).contains(frames) else {
            throw ModelError("frames \(frames) must be 4k + 1 (1, 5, ..., 121) and at most \(Self.maxFrames)")
        }
        guard (1...Self.maxSteps).contains(steps) else { throw ModelError("steps \(steps) must be 1 to \(Self.maxSteps)") }
        guard guidance.isFinite, guidance >= 0, guidance <= 30 else { throw ModelError("guidance \(guidance) must be between 0 and 30") }
        guard !prompt.allSatisfy(\.isWhitespace) || image != nil else { throw ModelError("give a prompt, an image, or both") }
        if let image, image.shape != [3, height, width] {
            throw ModelError("the image is \(image.shape); it must be [3, \(height), \(width)] after cropping and resizing")
        }
        try acceleration.validate()
    }
}

/// VideoX-Fun's speed-ups: TeaCache (skip the transformer's blocks when the modulation barely moved) and CFG skip
/// (drop the unconditional pass for the last steps).
public struct VideoAcceleration: Sendable, Equatable {
    /// TeaCache's accumulated-distance threshold; nil turns it off (0.1 is VideoX-Fun's default).
    public var teaCacheThreshold: Double?
    /// Steps always computed before TeaCache may skip (VideoX-Fun's default 5).
    public var teaCacheStartSteps: Int
    /// The fraction of steps at the end run without the unconditional pass (0–0.25 recommended).
    public var cfgSkipRatio: Double

    public init(teaCacheThreshold: Double? = nil, teaCacheStartSteps: Int = 5, cfgSkipRatio: Double = 0) {
        self.teaCacheThreshold = teaCacheThreshold
        self.teaCacheStartSteps = teaCacheStartSteps
        self.cfgSkipRatio = cfgSkipRatio
    }

    public func validate() throws(ModelError) {
        if let t = teaCacheThreshold, !(t.isFinite && t >= 0) { throw ModelError("TeaCache threshold \(t) must be a number of at least 0") }
        guard teaCacheStartSteps >= 0 else { throw ModelError("TeaCache start steps must not be negative") }
        guard cfgSkipRatio.isFinite, (0...1).contains(cfgSkipRatio) else { throw ModelError("CFG skip ratio \(cfgSkipRatio) must be between 0 and 1") }
    }
}

/// The generated video: frames `[t, 3, h, w]` in [−1, 1] on the backend, the final latents, and what ran.
public struct VideoResult: Sendable {
    public var frames: Tensor
    public var latents: Tensor
    public var timings: [(stage: String, seconds: Double)]
    /// The transformer passes the run called for (two per step with guidance), and how many of them TeaCache (blocks
    /// replaced by a kept residual) or CFG skip (pass dropped) saved.
    public var transformerPasses: Int
    public var skippedPasses: Int
}

/// Wan2.2-TI2V generation as diffusers' `WanPipeline` / `WanImageToVideoPipeline` run it with `expand_timesteps`:
/// text through UMT5, noise latents at 1/16 size and 1/4 length, classifier-free guidance with separate conditional and
/// unconditional passes, the scheduler's steps, an image's latents pinned into the first latent frame (whose tokens get
/// timestep 0), then the video VAE decoder chunk by chunk.
public struct VideoPipeline: Sendable {
    public let model: WanVideoModel
    public let backend: any Backend

    /// `stage`, done, total: "text", "image", "step", "decode". `inspect` sees the latents after each step
    /// ("latents k"), for tests.
    public typealias Progress = (String, Int, Int) -> Void

    public init(model: WanVideoModel, backend: any Backend) {
        self.model = model
        self.backend = backend
    }

    /// Diffusers' `prompt_clean`: HTML entities unescaped (twice), whitespace runs collapsed, ends trimmed.
    public static func cleanedPrompt(_ text: String) -> String {
        let unescaped = htmlUnescaped(htmlUnescaped(text))
        return unescaped.split(whereSeparator: \.isWhitespace).joined(separator: " ")
    }

    public func generate(
        _ request: VideoRequest, noise: inout some NoiseSource, progress: Progress = { _, _, _ in }, inspect: ((String, Tensor) -> Void)? = nil,
        isCancelled: () -> Bool = { Task.isCancelled }
    ) throws -> VideoResult {
        try request.validate()
        let b = backend
        let z = model.latentChannels
        let (f, h, w) = (request.latentFrames, request.height / 16, request.width / 16)
        var timings: [(String, Double)] = []
        var clock = ContinuousClock.now
        func lap(_ stage: String) throws {
            try b.synchronize()
            let now = ContinuousClock.now
            timings.append((stage, (now - clock).seconds))
            clock = now
            if isCancelled() { throw CancellationError() }
        }

        progress("text", 0, 1)
        let guided = request.guidance > 1
        // Each sub-model on the device for its stage (a no-op when the model is resident; a copy per stage when its
        // weights are offloaded to host memory).
        var textEncoder = model.textEncoder
        textEncoder.weights = try model.textEncoder.streamedWeights(on: b)
        let context = try textEncoder.context(for: Self.cleanedPrompt(request.prompt), tokenizer: model.tokenizer, length: model.textLength, on: b)
        let negativeContext = guided
            ? try textEncoder.context(for: Self.cleanedPrompt(request.negativePrompt), tokenizer: model.tokenizer, length: model.textLength, on: b)
            : nil
        textEncoder.weights = ModelWeights([:], source: "released")
        progress("text", 1, 1)
        try lap("text encoder")

        let statistics = try latentStatistics()
        var condition: Tensor?
        if let image = request.image {
            progress("image", 0, 1)
            let pixels = try b.upload(try image.reshaped([1, 3, request.height, request.width]))
            var encoder = model.vaeEncoder
            encoder.weights = try model.vaeEncoder.weights.uploaded(to: b)
            let mean = try b.cast(try encoder(pixels, on: b).mean, to: .float32).reshaped([1, z, 1, h, w])
            condition = try b.divide(try b.subtract(mean, statistics.mean), statistics.std)
            progress("image", 1, 1)
            try lap("image encoder")
        }

        var transformer = model.transformer
        transformer.weights = try model.transformer.streamedWeights(on: b)
        var latents = try noise.normal([1, z, f, h, w], on: b)
        var scheduler = request.sampler.scheduler(steps: request.steps, shift: model.flowShift)
        var cache = TeaCache(acceleration: request.acceleration, steps: request.steps)
        var passes = 0, skipped = 0
        for (k, t) in scheduler.timesteps.enumerated() {
            progress("step", k, request.steps)
            let input = try pinned(latents, condition: condition)
            // Per-frame timesteps: t everywhere, 0 on an image's frame (expand_timesteps).
            let frameTimes = (0..<f).map { condition != nil && $0 == 0 ? Float(0) : Float(t) }
            let timestep = try b.constant(frameTimes, shape: [1, f])
            let skipUnconditional = Double(k) >= Double(request.steps) * (1 - request.acceleration.cfgSkipRatio) && request.acceleration.cfgSkipRatio > 0
            let compute = try cache.shouldCompute(step: k, timestep: timestep, transformer: transformer, on: b)
            var velocity = try cache.run(.conditional, compute: compute, input: input, timestep: timestep, text: context, transformer: transformer, on: b)
            passes += guided ? 2 : 1
            if !compute { skipped += 1 }
            if let negativeContext {
                if skipUnconditional {
                    skipped += 1
                } else {
                    let computeUnconditional = cache.computesUnconditional(step: k, conditional: compute)
                    let unconditional = try cache.run(
                        .unconditional, compute: computeUnconditional, input: input, timestep: timestep, text: negativeContext,
                        transformer: transformer, on: b)
                    if !computeUnconditional { skipped += 1 }
                    velocity = try b.add(unconditional, try b.scaled(try b.subtract(velocity, unconditional), by: Float(request.guidance)))
                }
            }
            latents = try scheduler.step(velocity, sample: latents, index: k, on: b)
            inspect?("latents \(k)", latents)
            try lap("step \(k + 1)")
        }
        progress("step", request.steps, request.steps)
        transformer.weights = ModelWeights([:], source: "released")
        latents = try pinned(latents, condition: condition)

        let unscaled = try b.add(try b.multiply(latents, statistics.std), statistics.mean)
        var decoder = model.vaeDecoder
        decoder.weights = try model.vaeDecoder.weights.uploaded(to: b)
        let frames = try decoder.decode(unscaled, on: b) { done, total in progress("decode", done, total) }
        try lap("decoder")
        return VideoResult(frames: frames, latents: latents, timings: timings, transformerPasses: passes, skippedPasses: skipped)
    }

    /// The latents with the image's latents in frame 0 (image-to-video), or as they are.
    func pinned(_ latents: Tensor, condition: Tensor?) throws(EngineError) -> Tensor {
        guard let condition else { return latents }
        let frames = latents.shape[2]
        guard frames > 1 else { return condition }
        return try backend.concat([condition, try latents.narrowed(2, start: 1, length: frames - 1)], axis: 2)
    }

    /// The VAE's per-channel latent mean and standard deviation, `[1, z, 1, 1, 1]`.
    func latentStatistics() throws(EngineError) -> (mean: Tensor, std: Tensor) {
        let c = model.vaeDecoder.configuration
        let shape = [1, c.zDim, 1, 1, 1]
        return (try backend.constant(c.latentsMean.map { Float($0) }, shape: shape), try backend.constant(c.latentsStd.map { Float($0) }, shape: shape))
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}

/// Python's `html.unescape` for the entities prompts carry: the five XML ones, `&nbsp;` and numeric references.
func htmlUnescaped(_ text: String) -> String {
    guard text.contains("&") else { return text }
    let named: [Substring: String] = ["amp": "&", "lt": "<", "gt": ">", "quot": "\"", "apos": "'", "nbsp": "\u{A0}", "#39": "'"]
    var out = ""
    var rest = text[...]
    while let amp = rest.firstIndex(of: "&") {
        out += rest[..<amp]
        let after = rest[rest.index(after: amp)...]
        if let semicolon = after.prefix(10).firstIndex(of: ";") {
            let name = after[..<semicolon]
            var replacement: String? = named[name]
            if replacement == nil, name.hasPrefix("#") {
                let digits = name.dropFirst()
                let value = digits.hasPrefix("x") || digits.hasPrefix("X") ? UInt32(digits.dropFirst(), radix: 16) : UInt32(digits)
                replacement = value.flatMap(Unicode.Scalar.init).map { String(Character($0)) }
            }
            if let replacement {
                out += replacement
                rest = after[after.index(after: semicolon)...]
                continue
            }
        }
        out += "&"
        rest = after
    }
    return out + rest
}
