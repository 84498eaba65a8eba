import Cameras
import EngineCPU
import EngineCore
import SplatCore
import Testing

@testable import FlashWorld
@testable import Models

struct PipelineTests {
    static let model = try! FlashWorldModel.tiny(on: CPUBackend.shared)
    let intrinsics = NormalizedIntrinsics(verticalFieldOfView: 60, width: 64, height: 64)

    func request(prompt: String = "a quiet harbour at dawn", image: Tensor? = nil, frames: Int = 2) -> GenerationRequest {
        let path = CameraPath.keyframes([.forward, .orbitLeft], intrinsics: intrinsics)
        return GenerationRequest(prompt: prompt, image: image, imageIndex: frames - 1, cameras: path.cameras, frames: frames, width: 64, height: 64)
    }

    @Test func tinyModelGeneratesAReproducibleScene() throws {
        let pipeline = FlashWorldPipeline(model: Self.model, backend: CPUBackend.shared)
        var noise = SeededNoise(seed: 3)
        var stages: [String] = []
        let result = try pipeline.generate(request(), noise: &noise) { stage, step, _ in stages.append("\(stage)\(step)") }
        // Two Gaussians per pixel of each frame's half-resolution map.
        #expect(result.cloud.count == 2 * 2 * 32 * 32)
        #expect(result.cloud.frame == .rub && result.cloud.shDegree == 2)
        #expect(result.cloud.positions.allSatisfy(\.isFinite) && result.cloud.logScales.allSatisfy(\.isFinite))
        #expect(stages.filter { $0.hasPrefix("step") } == ["step1", "step2", "step3", "step4"])
        #expect(result.timings.contains { $0.stage == "step 1: render" })
        var again = SeededNoise(seed: 3)
        #expect(try pipeline.generate(request(), noise: &again).cloud == result.cloud)
        var other = SeededNoise(seed: 4)
        #expect(try pipeline.generate(request(), noise: &other).cloud != result.cloud)
    }

    /// The memory modes move weights, never results: balanced streams the text encoder's layers, low the
    /// transformer's blocks too, and the scene is the same.
    @Test(arguments: [FlashWorldMemoryMode.balanced, .low])
    func memoryModesGiveTheSameScene(mode: FlashWorldMemoryMode) throws {
        let arranged = try Self.model.arranged(for: mode, on: CPUBackend.shared)
        #expect(arranged.textEncoder.streamsLayers && arranged.transformer.streamsBlocks == (mode == .low))
        #expect(!Self.model.textEncoder.streamsLayers && !Self.model.transformer.streamsBlocks)
        var a = SeededNoise(seed: 3), b = SeededNoise(seed: 3)
        let full = try FlashWorldPipeline(model: Self.model, backend: CPUBackend.shared).generate(request(), noise: &a)
        let streamed = try FlashWorldPipeline(model: arranged, backend: CPUBackend.shared).generate(request(), noise: &b)
        #expect(streamed.cloud == full.cloud)
    }

    /// The reconstruction decoder and the VAE encoder in chunks of frames (as the lean memory modes run them) give what
    /// one pass over every frame gives: each layer works within a frame.
    @Test func theDecoderInChunksGivesTheSameGaussians() throws {
        let cpu = CPUBackend.shared
        var decoder = Self.model.reconstruction
        let (frames, z, feat) = (5, Self.model.latentChannels, Self.model.featureChannels)
        let features = try cpu.run(.randomNormal(shape: [frames, feat, 4, 6], seed: 1), [])[0]
        let latents = try cpu.run(.randomNormal(shape: [frames, z, 4, 6], seed: 2), [])[0]
        let cameras = CameraPath.keyframes([.forward, .orbitLeft, .left, .right], intrinsics: intrinsics).cameras
        let whole = try decoder(features: features, latents: latents, cameras: cameras, on: cpu).floats()
        decoder.framesPerChunk = 2
        let chunked = try decoder(features: features, latents: latents, cameras: cameras, on: cpu)
        #expect(chunked.shape == [frames * 2 * 32 * 48, 38])
        let scale = whole.map(abs).max() ?? 1
        #expect(zip(chunked.floats(), whole).allSatisfy { abs($0 - $1) <= 1e-5 * scale })
        #expect(FlashWorldMemoryMode.low.decoderFramesPerChunk == 2 && FlashWorldMemoryMode.full.decoderFramesPerChunk == nil)
        let balanced = try Self.model.arranged(for: .balanced, on: cpu)
        #expect(balanced.reconstruction.framesPerChunk == 6 && balanced.vaeEncoder.imagesPerChunk == 6)
        // The VAE encoder likewise: each image on its own.
        var encoder = Self.model.vaeEncoder
        let images = try cpu.run(.randomNormal(shape: [5, 3, 32, 48], seed: 3), [])[0]
        let (mean, logvar) = try encoder(images, on: cpu)
        encoder.imagesPerChunk = 2
        let (chunkedMean, chunkedLogvar) = try encoder(images, on: cpu)
        #expect(chunkedMean.shape == mean.shape && chunkedLogvar.shape == logvar.shape)
        for (a, b) in [(chunkedMean, mean), (chunkedLogvar, logvar)] {
            let (x, y) = (a.floats(), b.floats())
            let top = y.map(abs).max() ?? 1
            #expect(zip(x, y).allSatisfy { abs($0 - $1) <= 1e-5 * top })
        }
    }

    @Test func anImageConditionsTheScene() throws {
        let pipeline = FlashWorldPipeline(model: Self.model, backend: CPUBackend.shared)
        let image = try CPUBackend.shared.run(.randomNormal(shape: [3, 64, 64], seed: 9), [])[0]
        var a = SeededNoise(seed: 5), b = SeededNoise(seed: 5)
        let withImage = try pipeline.generate(request(prompt: "", image: image), noise: &a)
        let textOnly = try pipeline.generate(request(prompt: "x"), noise: &b)
        #expect(withImage.cloud != textOnly.cloud)
    }

    @Test func badRequestsFailBeforeAnyWork() throws {
        let pipeline = FlashWorldPipeline(model: Self.model, backend: CPUBackend.shared)
        var bad: [GenerationRequest] = []
        var r = request()
        r.width = 70
        bad.append(r)
        bad.append(request(prompt: "   "))
        r = request()
        r.frames = 500
        bad.append(r)
        r = request()
        r.imageIndex = 7
        bad.append(r)
        r = request()
        r.image = try Tensor.zeros([3, 10, 10])
        bad.append(r)
        for request in bad {
            var noise = RecordedNoise([])  // would throw if any draw happened
            #expect(throws: ModelError.self) { _ = try pipeline.generate(request, noise: &noise) }
        }
        var empty = RecordedNoise([])
        #expect(throws: EngineError.self) { _ = try pipeline.generate(request(), noise: &empty) }
    }

    /// `steps: 2` runs the schedule's indices 0 and 500 (σ = 1, then 0.75): two transformer and decoder passes, one
    /// render-and-re-encode; other counts are refused before any work.
    @Test func twoStepsRunTwoPasses() throws {
        let pipeline = FlashWorldPipeline(model: Self.model, backend: CPUBackend.shared)
        var noise = SeededNoise(seed: 3)
        var request = request()
        request.steps = 2
        var stages: [String] = []
        let result = try pipeline.generate(request, noise: &noise) { stage, step, steps in stages.append("\(stage)\(step)/\(steps)") }
        #expect(stages.filter { $0.hasPrefix("step") } == ["step1/2", "step2/2"])
        // Every sub-stage is reported, in order: one feedback round, then the last step and the export.
        #expect(stages.drop { !$0.hasPrefix("step") } == ["step1/2", "reconstruction1/2", "render1/2", "re-encode1/2", "step2/2", "reconstruction2/2", "export2/2"])
        #expect(result.timings.filter { $0.stage.hasSuffix("render") }.count == 1)
        #expect(FlowMatchSchedule.sigmas(steps: 2) == [1, 0.75])
        request.steps = 3
        var unused = RecordedNoise([])
        #expect { try pipeline.generate(request, noise: &unused) } throws: { "\($0)".contains("steps 3") }
    }

    /// A repeated prompt takes its text context from the cache (the same tensor), a new one runs the encoder.
    @Test func repeatedPromptsSkipTheTextEncoder() throws {
        let cache = TextEmbeddingCache(capacity: 1)
        let pipeline = FlashWorldPipeline(model: Self.model, backend: CPUBackend.shared, textCache: cache)
        var contexts: [Tensor] = []
        func run(_ prompt: String) throws -> GenerationResult {
            var noise = SeededNoise(seed: 5)
            return try pipeline.generate(request(prompt: prompt), noise: &noise, inspect: { name, value in if name == "context" { contexts.append(value) } })
        }
        let first = try run("a mossy bridge")
        let second = try run("a mossy bridge")
        #expect(first.timings.contains { $0.stage == "text encoder" } && second.timings.contains { $0.stage == "text encoder (cached)" })
        #expect(contexts[0].storage === contexts[1].storage && first.cloud == second.cloud)
        _ = try run("a desert road")
        #expect(cache.count == 1 && cache.lookup("[Static] a mossy bridge") == nil, "capacity 1 keeps only the latest prompt")
    }
}

/// The mode chosen from a device's free memory, and the mode a model reports.
struct MemoryModeChoiceTests {
    @Test func theModeFollowsTheFreeMemory() throws {
        let gib = 1 << 30
        #expect(FlashWorldMemoryMode.fitting(deviceBytes: 79 * gib) == .full)
        #expect(FlashWorldMemoryMode.fitting(deviceBytes: 26 * gib) == .full)
        #expect(FlashWorldMemoryMode.fitting(deviceBytes: 23 * gib) == .balanced)
        // A 24 GB card holds everything when the text encoder's linears are FP8.
        #expect(FlashWorldMemoryMode.fitting(deviceBytes: 23 * gib, leanTextEncoder: true) == .full)
        #expect(FlashWorldMemoryMode.fitting(deviceBytes: 15 * gib) == .low)
        #expect(FlashWorldMemoryMode.fitting(deviceBytes: 7 * gib) == .low)
        let model = try FlashWorldModel.tiny(on: CPUBackend.shared)
        for mode in FlashWorldMemoryMode.allCases { #expect(try model.arranged(for: mode, on: CPUBackend.shared).memoryMode == mode) }
    }
}
