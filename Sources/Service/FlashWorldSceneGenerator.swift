import EngineCPU
import EngineCore
import FlashWorld
import SplatCore

/// Runs jobs through the FlashWorld pipeline on the CPU backend, each with its own seeded noise.
public struct FlashWorldSceneGenerator: SceneGenerator {
    public let model: FlashWorldModel
    public let seed: UInt64

    public init(model: FlashWorldModel, seed: UInt64 = 42) {
        self.model = model
        self.seed = seed
    }

    public func generate(_ request: SceneRequest) async throws -> GaussianCloud {
        let image = try request.image.map { try GenerationRequest.conditioningImage($0, name: "image_prompt", width: request.width, height: request.height) }
        let generation = GenerationRequest(
            prompt: request.prompt, image: image, imageIndex: request.imageIndex, cameras: request.cameras, frames: request.frames,
            width: request.width, height: request.height)
        var noise = SeededNoise(seed: seed)
        return try FlashWorldPipeline(model: model, backend: CPUBackend.shared).generate(generation, noise: &noise).cloud
    }
}
