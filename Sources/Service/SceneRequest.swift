import Cameras
import FlashWorld
import FoundationEssentials
import MediaIO
import SplatCore

/// A validated generation request: what the generator needs.
public struct SceneRequest: Sendable {
    public var prompt: String
    /// Encoded image bytes (PNG, JPEG or WebP) from a data URL or base64; never a path.
    public var image: [UInt8]?
    public var imageIndex: Int
    public var cameras: [Camera]
    public var frames: Int
    public var width: Int
    public var height: Int
    /// The request's seed (Diorama's extension); nil or negative draws one at submission.
    public var seed: Int64?
    /// The job whose scene this one grows (world expansion, `POST /v1/jobs/{id}/extend`): the cameras then lie in
    /// that scene's frame and the first one's render conditions the chunk.
    public var extends: String? = nil
}

/// How far a running job is: the pipeline's stage, its step, and a fraction of the whole for progress bars.
public struct JobProgress: Sendable, Equatable {
    public var stage: String
    public var step: Int
    public var steps: Int
    public var fraction: Double

    public init(stage: String, step: Int = 0, steps: Int = 0, fraction: Double) {
        self.stage = stage
        self.step = step
        self.steps = steps
        self.fraction = min(max(fraction, 0), 1)
    }
}

/// What a generator hands back: the scene and where its time went.
public struct GeneratedScene: Sendable {
    public var cloud: GaussianCloud
    public var timings: [(stage: String, seconds: Double)]
    /// Written into the scene's files (`SplatMetadata`): a grown world's chunk record.
    public var metadata: String?

    public init(cloud: GaussianCloud, timings: [(stage: String, seconds: Double)] = [], metadata: String? = nil) {
        self.cloud = cloud
        self.timings = timings
        self.metadata = metadata
    }
}

/// What runs a job: the FlashWorld pipeline in production, a stand-in in tests. Cancellation is cooperative: a
/// generator checks its task between stages.
public protocol SceneGenerator: Sendable {
    func generate(_ request: SceneRequest, seed: UInt64, progress: @escaping @Sendable (JobProgress) -> Void) async throws -> GeneratedScene
    /// Grows `world` (its file's `metadata` beside it) along the request's cameras, which start inside it.
    func extend(
        _ world: GaussianCloud, metadata: String?, request: SceneRequest, seed: UInt64, progress: @escaping @Sendable (JobProgress) -> Void
    ) async throws -> GeneratedScene
}

extension SceneGenerator {
    public func extend(
        _ world: GaussianCloud, metadata: String?, request: SceneRequest, seed: UInt64, progress: @escaping @Sendable (JobProgress) -> Void
    ) async throws -> GeneratedScene {
        throw ServiceError(501, "this server's generator cannot grow scenes")
    }
}

/// Why a request was refused: the HTTP status and a message that says what to fix.
public struct ServiceError: Error, Sendable, CustomStringConvertible {
    public var status: Int
    public var message: String
    public init(_ status: Int, _ message: String) {
        self.status = status
        self.message = message
    }
    public var description: String { message }

    /// The client closed its side before its request was parsed (nginx's 499: nobody reads the answer).
    static let clientGone = ServiceError(499, "the client closed the connection before its request was handled")
}

/// Parses the FlashWorld request JSON (`service-and-ui.md` §1.1) and refuses what cannot run. Diorama also takes a
/// `seed`, and a request without cameras gets the default path (forward, then two 15° orbits left, at 60° field of view).
public enum FlashWorldRequest {
    struct Body: Decodable {
        var image_prompt: String?
        var text_prompt: String?
        var resolution: [Int]?
        var image_index: Int?
        var seed: Int64?
        var cameras: [CameraRecord]?
        /// Set by the service for world expansion only: not one of `fields`, so clients cannot send it.
        var extend_from: String?
    }

    public static let defaultPath: [PathStep] = [.forward, .orbitLeft, .orbitLeft]

    /// The prompt and size of a stored request, without checking or decoding its image (for listings).
    static func summary(_ bytes: [UInt8]) -> (prompt: String, frames: Int, width: Int, height: Int) {
        let body = try? JSONDecoder().decode(Body.self, from: Data(bytes))
        let r = body?.resolution.flatMap { $0.count == 3 ? $0 : nil } ?? [24, 480, 704]
        return (body?.text_prompt ?? "", r[0], r[2], r[1])
    }

    /// The body a job stores: the request's own fields as sent, nothing else (an ignored field of any size is not
    /// kept). Nil when the body is not an object (the parse has refused it by then).
    static func normalized(_ bytes: [UInt8]) -> [UInt8]? {
        guard let object = try? JSONDecoder().decode([String: JSONValue].self, from: Data(bytes)) else { return nil }
        let kept = object.filter { fields.contains($0.key) }
        guard kept.count != object.count else { return bytes }
        return (try? JSONEncoder().encode(kept)).map { Array($0) }
    }

    /// The request's fields; the native `/v1` API refuses others (`strict`), FlashWorld's own routes ignore them as
    /// the reference does.
    static let fields: Set = ["image_prompt", "text_prompt", "resolution", "image_index", "seed", "cameras"]

    /// `stored`: the body is a job's own, as the service stored it (a growing job's `extend_from` is honoured only
    /// there; from a client it is ignored, as the lenient routes ignore any unknown field).
    public static func parse(_ bytes: [UInt8], limits: ServiceLimits, strict: Bool = false, stored: Bool = false) throws(ServiceError) -> SceneRequest {
        let body: Body
        do {
            body = try JSONDecoder().decode(Body.self, from: Data(bytes))
        } catch let error as DecodingError {
            throw ServiceError(400, error.requestMessage)
        } catch {
            throw ServiceError(400, "the body is not JSON")
        }
        if strict, let object = try? JSONDecoder().decode([String: JSONValue].self, from: Data(bytes)) {
            try JSONValue.refuseUnknownFields(of: object, known: fields)
        }
        let resolution = body.resolution ?? [24, 480, 704]
        guard resolution.count == 3, resolution.allSatisfy({ $0 > 0 }) else {
            throw ServiceError(
                400, resolution.count == 3 ? "resolution must be three positive numbers, not \(resolution)"
                    : "resolution must be [frames, height, width], not a list of \(resolution.count) numbers")
        }
        let (frames, height, width) = (resolution[0], resolution[1], resolution[2])
        guard frames <= limits.maxFrames, width <= limits.maxSide, height <= limits.maxSide else {
            throw ServiceError(400, "resolution \(resolution) exceeds the limits: at most \(limits.maxFrames) frames and \(limits.maxSide) pixels a side")
        }
        guard width % 32 == 0, height % 32 == 0 else { throw ServiceError(400, "width and height must be multiples of 32, not \(width)x\(height)") }
        // Each side may be within its limit and the whole still too much for memory: frames x height x width is capped.
        guard frames * width * height <= limits.maxTotalPixels else {
            throw ServiceError(400, "resolution \(resolution) is \(frames * width * height) pixels in all; the limit is \(limits.maxTotalPixels) (e.g. 48 frames at 704x480)")
        }
        var image: [UInt8]?
        if let prompt = body.image_prompt, !prompt.isEmpty {
            guard let data = GenerationRequest.imageBytes(fromImagePrompt: prompt) else {
                throw ServiceError(400, "Image decode error: image_prompt must be a data URL or base64 (server paths are not read)")
            }
            image = data
        }
        let text = body.text_prompt ?? ""
        // The encoder keeps 512 tokens; a longer text cannot matter and would only weigh on every read of the job.
        guard text.count <= VideoJobParser.maxPromptCharacters else {
            throw ServiceError(400, "text_prompt is \(text.count) characters; at most \(VideoJobParser.maxPromptCharacters) are read (the encoder keeps 512 tokens)")
        }
        // A growing world's chunk is conditioned on the scene's render, so it needs no prompt of its own.
        let extends = stored ? body.extend_from : nil
        guard image != nil || extends != nil || !text.allSatisfy(\.isWhitespace) else { throw ServiceError(400, "No Prompts provided") }
        var crop: CenterCrop?
        if let image {
            // Decoded now, as the reference preprocesses in the request: a bad image is the client's 400, not a failed job.
            do {
                let decoded = try ImageDecoder.decode(image, name: "image_prompt")
                crop = CenterCrop(imageWidth: decoded.width, imageHeight: decoded.height, width: width, height: height)
            } catch {
                throw ServiceError(400, "Image decode error: \(error)")
            }
        }
        let index = body.image_index ?? 0
        guard (0..<frames).contains(index) else { throw ServiceError(400, "image_index \(index) is outside the \(frames) frames") }
        let cameras: [Camera]
        if let records = body.cameras {
            guard !records.isEmpty else { throw ServiceError(400, "cameras is empty; give at least one camera or leave it out") }
            do {
                var document = CameraPathDocument(cameras: records, resolution: resolution)
                // As the reference: intrinsics given in the uploaded image's pixels follow its crop and resize.
                if let crop { document = document.intrinsicsMapped(crop.intrinsics) }
                cameras = try document.resolvedCameras(defaultWidth: width, defaultHeight: height)
            } catch {
                throw ServiceError(400, "cameras: \(error)")
            }
        } else {
            let intrinsics = NormalizedIntrinsics(verticalFieldOfView: 60, width: width, height: height)
            cameras = CameraPath.keyframes(defaultPath, intrinsics: intrinsics).cameras
        }
        let seed = body.seed.flatMap { $0 >= 0 ? $0 : nil }
        return SceneRequest(
            prompt: text, image: image, imageIndex: index, cameras: cameras, frames: frames, width: width, height: height, seed: seed,
            extends: extends)
    }
}

/// What the service refuses past, and how hard it retries.
public struct ServiceLimits: Sendable {
    public var maxFrames = 64
    /// Frames of one video job (121 is five seconds at 24 fps).
    public var maxVideoFrames = 241
    public var maxSide = 2048
    public var maxBodyBytes = 32 << 20
    /// Frames x height x width of one request: twice FlashWorld's 24 frames at 704x480.
    public var maxTotalPixels = 48 * 704 * 480
    public var maxQueued = 64
    /// A job that was running when the process died is run again at most this many times in all.
    public var maxAttempts = 3
    /// Seconds a failed, cancelled or expired job's row is kept before it is purged (0 keeps them).
    public var jobRetention: Double = 30 * 24 * 3600
    /// Seconds a job may be expected to take on this server (from the measured rate of finished jobs of its kind);
    /// longer ones are refused at submission. 0 turns the check off.
    public var maxJobSeconds: Double = 1800
    /// Bytes the data folder's filesystem must keep free; below, submissions are refused (507).
    public var minFreeDiskBytes: Int64 = 1 << 30
    /// Bytes all finished jobs' files may take together; beyond, the oldest completed jobs expire first (their files
    /// go) until the rest fit. 0 sets no budget (the lifetime and the free-disk floor still apply).
    public var artifactBudgetBytes: Int64 = 0
    /// Seconds a worker's claim on a job lasts without a heartbeat (renewed every third of it): a worker killed, cut off
    /// or paused longer loses the job, which another worker then runs.
    public var leaseSeconds: Double = 30
    public init() {}
}

extension DecodingError {
    /// What a client should fix, in a line: the field's path and the problem (not Swift's debug description).
    var requestMessage: String {
        func path(_ context: Context, _ last: CodingKey? = nil) -> String {
            let keys = context.codingPath + (last.map { [$0] } ?? [])
            let text = keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return text.hasPrefix(".") ? String(text.dropFirst()) : text
        }
        switch self {
        case .dataCorrupted(let context) where context.codingPath.isEmpty: return "the body is not valid JSON"
        case .dataCorrupted(let context): return "\(path(context)) is not valid here"
        case .keyNotFound(let key, let context): return "\(path(context, key)) is missing"
        case .typeMismatch(let type, let context): return "\(path(context)) must be \(Self.describe(type))"
        case .valueNotFound(let type, let context): return "\(path(context)) must be \(Self.describe(type)), not null"
        @unknown default: return "the body does not match the request's fields"
        }
    }

    static func describe(_ type: Any.Type) -> String {
        switch "\(type)" {
        case "String": "a string"
        case "Int", "Int64", "Int32": "a whole number"
        case "Double", "Float": "a number"
        case "Bool": "true or false"
        case let name where name.hasPrefix("Array"): "a list"
        case let name where name.hasPrefix("Dictionary"): "an object"
        default: "an object"
        }
    }
}
