import Cameras
import EngineCore
import FlashWorld
import Models
import SplatCore

/// Runs jobs through the FlashWorld pipeline on one backend (the service owns one GPU context), each with its own
/// seeded noise. A job that runs out of device memory fails with that message; the next job starts afresh.
public struct FlashWorldSceneGenerator: SceneGenerator {
    public let model: FlashWorldModel
    public let backend: any Backend
    public let renderer: (any ViewRenderer)?
    /// Recent prompts' text contexts, shared by every job of this generator.
    public let textCache = TextEmbeddingCache()

    public init(model: FlashWorldModel, backend: any Backend, renderer: (any ViewRenderer)? = nil) {
        self.model = model
        self.backend = backend
        self.renderer = renderer
    }

    public func generate(_ request: SceneRequest, seed: UInt64, progress: @escaping @Sendable (JobProgress) -> Void) async throws -> GeneratedScene {
        let image = try request.image.map { try GenerationRequest.conditioningImage($0, name: "image_prompt", width: request.width, height: request.height) }
        let generation = GenerationRequest(
            prompt: request.prompt, image: image, imageIndex: request.imageIndex, cameras: request.cameras, frames: request.frames,
            width: request.width, height: request.height)
        let result = try await running(seed: seed) { pipeline, noise, isCancelled in
            try pipeline.generate(generation, noise: &noise, progress: Self.jobProgress(progress), isCancelled: isCancelled)
        }
        return GeneratedScene(cloud: result.cloud, timings: result.timings, metadata: SceneRecord(generated: result).metadata)
    }

    /// World expansion (`WorldExpansion.extend`): the chunk is generated on the world's render from the request's
    /// first camera, placed, merged, and recorded in the world's metadata.
    public func extend(
        _ world: GaussianCloud, metadata: String?, request: SceneRequest, seed: UInt64, progress: @escaping @Sendable (JobProgress) -> Void
    ) async throws -> GeneratedScene {
        let generation = GenerationRequest(
            prompt: request.prompt.isEmpty ? " " : request.prompt, cameras: request.cameras, frames: request.frames, width: request.width,
            height: request.height)
        let started = monotonicNow()
        let grown = try await running(seed: seed) { pipeline, noise, isCancelled in
            do {
                return try WorldExpansion.extend(
                    world, along: request.cameras, generation: generation, pipeline: pipeline, noise: &noise, progress: Self.jobProgress(progress),
                    isCancelled: isCancelled)
            } catch let error as ModelError {
                // A path that starts outside the scene, or a chunk that shares too little of its view: the request's fault.
                throw ServiceError(422, error.message)
            }
        }
        var record = SceneRecord(metadata: metadata) ?? SceneRecord()
        record.chunks.append(SceneRecord.Chunk(grown.placement))
        return GeneratedScene(cloud: grown.world, timings: [("extend", monotonicNow() - started)], metadata: record.metadata)
    }

    /// `work` on a Dispatch thread with the job's pipeline and seeded noise, cancellable between stages. A job that
    /// fails (out of device memory, say) leaves nothing cached behind for the next one.
    func running<T: Sendable>(
        seed: UInt64, _ work: @escaping @Sendable (FlashWorldPipeline, inout SeededNoise, @escaping @Sendable () -> Bool) throws -> T
    ) async throws -> T {
        let (model, backend, renderer, textCache) = (self.model, self.backend, self.renderer, self.textCache)
        return try await BlockingWork.cancellable { isCancelled in
            var noise = SeededNoise(seed: seed)
            var succeeded = false
            defer { if !succeeded { backend.trimMemory() } }
            let result = try work(FlashWorldPipeline(model: model, backend: backend, renderer: renderer, textCache: textCache), &noise, isCancelled)
            succeeded = true
            return result
        }
    }

    /// The pipeline's stages as a job's progress: text and image take a few percent; each step's share splits over
    /// its sub-stages.
    static func jobProgress(_ progress: @escaping @Sendable (JobProgress) -> Void) -> FlashWorldPipeline.Progress {
        { stage, step, steps in
            let within = ["step": 0.0, "reconstruction": 0.4, "render": 0.7, "re-encode": 0.85]
            switch stage {
            case "world render": progress(JobProgress(stage: "rendering the scene from the path's start", fraction: 0.01))
            case "text": progress(JobProgress(stage: "encoding the prompt", fraction: 0.02))
            case "image": progress(JobProgress(stage: "encoding the image", fraction: 0.05))
            case "export": progress(JobProgress(stage: "exporting the scene", step: step, steps: steps, fraction: 0.97))
            default:
                let part = within[stage] ?? 0
                let name = stage == "step" ? "transformer" : stage
                progress(
                    JobProgress(
                        stage: "step \(step) of \(steps): \(name)", step: step, steps: steps,
                        fraction: 0.05 + 0.9 * (Double(step - 1) + part) / Double(max(steps, 1))))
            }
        }
    }

    /// The smallest request the model runs: one frame at 32x32, for the warm-up before the service reports ready.
    public static func warmUpRequest() -> SceneRequest {
        let intrinsics = NormalizedIntrinsics(verticalFieldOfView: 60, width: 32, height: 32)
        return SceneRequest(
            prompt: "warm-up", image: nil, imageIndex: 0, cameras: CameraPath.keyframes([.forward], intrinsics: intrinsics).cameras,
            frames: 1, width: 32, height: 32, seed: 42)
    }
}
