import EngineCore
import FlashWorld
import FoundationEssentials
import MediaIO
import Models
import Video

/// A validated video request (`POST /v1/videos`): what the video generator needs.
public struct VideoJobRequest: Sendable, Equatable {
    public var prompt: String
    public var negativePrompt: String
    /// Encoded first-frame bytes (PNG, JPEG or WebP) from a data URL or base64; never a path.
    public var image: [UInt8]?
    public var frames: Int
    public var width: Int
    public var height: Int
    public var steps: Int
    public var guidance: Double
    public var sampler: VideoSamplerKind
    public var teaCache: Double?
    public var cfgSkip: Double
    public var fps: Int
    public var seed: Int64?
}

/// What runs a video job: Wan2.2-TI2V in production, a stand-in in tests. It writes the MP4 to `path` (atomically) and
/// returns its stage timings.
public protocol VideoGenerator: Sendable {
    var name: String { get }
    var defaults: VideoDefaults { get }
    func generate(
        _ request: VideoJobRequest, seed: UInt64, to path: String, progress: @escaping @Sendable (JobProgress) -> Void
    ) async throws -> [(stage: String, seconds: Double)]
}

/// Parses the `/v1/videos` body strictly (unknown fields are a 400 naming them) and fills the model's defaults. Stored
/// jobs keep the normalised form, tagged `"kind": "video"`, so a restarted server runs exactly what was accepted.
public enum VideoJobParser {
    static let fields: Set = [
        "kind", "prompt", "negative_prompt", "image", "frames", "width", "height", "steps", "guidance", "sampler", "teacache", "cfg_skip",
        "fps", "seed",
    ]
    /// A prompt longer than this cannot matter: the tokenizer keeps 512 tokens.
    static let maxPromptCharacters = 8192

    /// Whether a stored job body is a video request.
    public static func isVideo(_ body: [UInt8]) -> Bool {
        guard let object = try? JSONDecoder().decode([String: JSONValue].self, from: Data(body)) else { return false }
        return object["kind"] == .string("video")
    }

    public static func parse(_ body: [UInt8], defaults: VideoDefaults, limits: ServiceLimits) throws(ServiceError) -> VideoJobRequest {
        let object: [String: JSONValue]
        do {
            object = try JSONDecoder().decode([String: JSONValue].self, from: Data(body))
        } catch {
            throw ServiceError(400, "the body must be a JSON object of video request fields")
        }
        try JSONValue.refuseUnknownFields(of: object, known: fields)
        func string(_ key: String) throws(ServiceError) -> String? {
            switch object[key] {
            case nil, .null: return nil
            case .string(let text): return text
            default: throw ServiceError(400, "\(key) must be a string")
            }
        }
        func double(_ key: String) throws(ServiceError) -> Double? {
            switch object[key] {
            case nil, .null: return nil
            case .number(let value) where value.isFinite: return value
            default: throw ServiceError(400, "\(key) must be a number")
            }
        }
        func integer(_ key: String) throws(ServiceError) -> Int? {
            guard let value = try double(key) else { return nil }
            guard value == value.rounded(), abs(value) < 1e15 else { throw ServiceError(400, "\(key) must be a whole number") }
            return Int(value)
        }
        if let kind = try string("kind"), kind != "video" { throw ServiceError(400, "kind must be \"video\" here, not \(kind)") }
        let prompt = try string("prompt") ?? ""
        guard prompt.count <= maxPromptCharacters else {
            throw ServiceError(400, "prompt is \(prompt.count) characters; at most \(maxPromptCharacters) are read (the encoder keeps 512 tokens)")
        }
        let negative = try string("negative_prompt") ?? ""
        guard negative.count <= maxPromptCharacters else { throw ServiceError(400, "negative_prompt is longer than \(maxPromptCharacters) characters") }
        var image: [UInt8]?
        if let text = try string("image"), !text.isEmpty {
            guard let bytes = GenerationRequest.imageBytes(fromImagePrompt: text) else {
                throw ServiceError(400, "image must be a data URL or base64 of a PNG, JPEG or WebP; file paths are not read")
            }
            image = bytes
        }
        guard !prompt.allSatisfy(\.isWhitespace) || image != nil else { throw ServiceError(400, "give a prompt, an image, or both") }
        let frames = try integer("frames") ?? defaults.frames
        guard frames % 4 == 1, (1...min(VideoRequest.maxFrames, limits.maxVideoFrames)).contains(frames) else {
            throw ServiceError(400, "frames must be 4k + 1 (1, 5, …, 121) and at most \(min(VideoRequest.maxFrames, limits.maxVideoFrames)), not \(frames)")
        }
        let width = try integer("width") ?? defaults.width, height = try integer("height") ?? defaults.height
        guard width > 0, height > 0, width % 32 == 0, height % 32 == 0, width <= limits.maxSide, height <= limits.maxSide else {
            throw ServiceError(400, "width and height must be positive multiples of 32 up to \(limits.maxSide), not \(width)x\(height)")
        }
        let steps = try integer("steps") ?? defaults.steps
        guard (1...VideoRequest.maxSteps).contains(steps) else { throw ServiceError(400, "steps must be 1 to \(VideoRequest.maxSteps), not \(steps)") }
        let guidance = try double("guidance") ?? defaults.guidance
        guard (0...30).contains(guidance) else { throw ServiceError(400, "guidance must be between 0 and 30, not \(guidance)") }
        let samplerName = try string("sampler") ?? VideoSamplerKind.unipc.rawValue
        guard let sampler = VideoSamplerKind(rawValue: samplerName) else { throw ServiceError(400, "sampler must be unipc or euler, not \(samplerName)") }
        let teaCache = try double("teacache")
        if let teaCache, teaCache < 0 { throw ServiceError(400, "teacache must be at least 0") }
        let cfgSkip = try double("cfg_skip") ?? 0
        guard (0...1).contains(cfgSkip) else { throw ServiceError(400, "cfg_skip must be between 0 and 1") }
        let fps = try integer("fps") ?? defaults.fps
        guard (1...120).contains(fps) else { throw ServiceError(400, "fps must be 1 to 120") }
        let seed = try integer("seed").map(Int64.init)
        return VideoJobRequest(
            prompt: prompt, negativePrompt: negative, image: image, frames: frames, width: width, height: height, steps: steps, guidance: guidance,
            sampler: sampler, teaCache: teaCache, cfgSkip: cfgSkip, fps: fps, seed: seed.flatMap { $0 >= 0 ? $0 : nil })
    }

    /// Prompt, frames and size of a stored video job, for listings (no image decoding).
    static func summary(_ body: [UInt8]) -> (prompt: String, frames: Int, width: Int, height: Int) {
        let object = (try? JSONDecoder().decode([String: JSONValue].self, from: Data(body))) ?? [:]
        return (object["prompt"]?.text ?? "", object["frames"]?.integer ?? 0, object["width"]?.integer ?? 0, object["height"]?.integer ?? 0)
    }

    static func steps(_ body: [UInt8]) -> Int {
        ((try? JSONDecoder().decode([String: JSONValue].self, from: Data(body)))?["steps"]?.integer) ?? 0
    }

    /// The normalised body a job stores: every field explicit, the image as base64.
    static func normalized(_ r: VideoJobRequest) -> [UInt8] {
        var object: [String: Any] = [
            "kind": "video", "prompt": r.prompt, "negative_prompt": r.negativePrompt, "frames": r.frames, "width": r.width, "height": r.height,
            "steps": r.steps, "guidance": r.guidance, "sampler": r.sampler.rawValue, "cfg_skip": r.cfgSkip, "fps": r.fps,
        ]
        if let image = r.image { object["image"] = Data(image).base64EncodedString() }
        if let t = r.teaCache { object["teacache"] = t }
        if let seed = r.seed { object["seed"] = seed }
        return Array(JSONText.encode(object).utf8)
    }
}

/// Runs video jobs through the Wan2.2-TI2V pipeline on one backend, each with its own seeded noise, and writes the MP4.
public struct WanVideoGenerator: VideoGenerator {
    public let model: WanVideoModel
    public let backend: any Backend

    public init(model: WanVideoModel, backend: any Backend) {
        self.model = model
        self.backend = backend
    }

    public var name: String { model.name }
    public var defaults: VideoDefaults { model.defaults }

    public func generate(
        _ request: VideoJobRequest, seed: UInt64, to path: String, progress: @escaping @Sendable (JobProgress) -> Void
    ) async throws -> [(stage: String, seconds: Double)] {
        var video = VideoRequest(
            prompt: request.prompt, negativePrompt: request.negativePrompt, defaults: model.defaults, sampler: request.sampler,
            acceleration: VideoAcceleration(teaCacheThreshold: request.teaCache, cfgSkipRatio: request.cfgSkip))
        (video.frames, video.width, video.height, video.steps, video.guidance) = (request.frames, request.width, request.height, request.steps, request.guidance)
        if let bytes = request.image {
            video.image = try GenerationRequest.conditioningImage(bytes, name: "image", width: request.width, height: request.height)
        }
        let (model, backend, fps, job) = (self.model, self.backend, request.fps, video)
        return try await BlockingWork.cancellable { isCancelled in
            var noise = SeededNoise(seed: seed)
            var succeeded = false
            defer { if !succeeded { backend.trimMemory() } }
            let result = try VideoPipeline(model: model, backend: backend).generate(
                job, noise: &noise,
                progress: { stage, done, total in
                    switch stage {
                    case "text": progress(JobProgress(stage: "encoding the prompt", fraction: 0.01))
                    case "image": progress(JobProgress(stage: "encoding the image", fraction: 0.02))
                    case "step":
                        progress(
                            JobProgress(stage: "step \(min(done + 1, total)) of \(total)", step: done, steps: total, fraction: 0.03 + 0.82 * Double(done) / Double(max(total, 1))))
                    case "decode":
                        progress(JobProgress(stage: "decoding frame \(done) of \(total)", step: done, steps: total, fraction: 0.85 + 0.12 * Double(done) / Double(max(total, 1))))
                    default: break
                    }
                }, isCancelled: isCancelled)
            progress(JobProgress(stage: "writing the video", fraction: 0.98))
            try VideoFrames(result.frames, on: backend).writeMP4(to: path, fps: fps)
            succeeded = true
            return result.timings
        }
    }
}
