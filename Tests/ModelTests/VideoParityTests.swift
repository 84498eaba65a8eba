import EngineCPU
import EngineCheck
import EngineCore
import Foundation
import MediaIO
import Testing

@testable import Models
@testable import Video

/// Wan2.2-TI2V video generation against diffusers itself (`tools/models/make_video_fixtures.py`): the schedulers, the
/// chunked video VAE decoder, and the whole text-to-video and image-to-video pipelines loaded from a model folder in
/// the published layout.
struct VideoParityTests {
    static let fixtures = try! ModelFixtures.tensors("video-tiny/schedulers.safetensors")

    @Test(arguments: [("unipc", 6), ("unipc50", 50), ("euler", 6)])
    func scheduleMatchesDiffusers(label: String, steps: Int) throws {
        let scheduler: any VideoScheduler =
            label == "euler" ? FlowMatchEulerScheduler(steps: steps, shift: 5) : UniPCScheduler(steps: steps, shift: 5)
        let sigmas = try #require(Self.fixtures["\(label).sigmas"]).floats()
        let timesteps = try #require(Self.fixtures["\(label).timesteps"]).floats()
        #expect(scheduler.sigmas.count == sigmas.count && scheduler.timesteps.count == timesteps.count)
        for (mine, theirs) in zip(scheduler.sigmas, sigmas) { #expect(abs(mine - Double(theirs)) < 1e-6, "σ \(mine) vs \(theirs)") }
        for (mine, theirs) in zip(scheduler.timesteps, timesteps) { #expect(abs(mine - Double(theirs)) < 1e-3, "t \(mine) vs \(theirs)") }
    }

    /// Every step's output over recorded velocities: UniPC's predictor and corrector at orders 1 and 2, and the final
    /// step to σ = 0.
    @Test(arguments: ["unipc", "euler"])
    func stepsMatchDiffusers(label: String) throws {
        var scheduler: any VideoScheduler = label == "euler" ? FlowMatchEulerScheduler(steps: 6, shift: 5) : UniPCScheduler(steps: 6, shift: 5)
        let velocities = try #require(Self.fixtures["\(label).velocities"])
        let samples = try #require(Self.fixtures["\(label).samples"])
        let backend = CPUBackend.shared
        var sample = try backend.contiguous(try samples.narrowed(0, start: 0, length: 1)).reshaped([2, 3, 4])
        for k in 0..<6 {
            let velocity = try backend.contiguous(try velocities.narrowed(0, start: k, length: 1)).reshaped([2, 3, 4])
            sample = try scheduler.step(velocity, sample: sample, index: k, on: backend)
            let expected = try backend.contiguous(try samples.narrowed(0, start: k + 1, length: 1)).reshaped([2, 3, 4])
            let error = relativeError(sample, expected)
            #expect(error < 1e-5, "\(label) step \(k): \(error)")
        }
    }

    static let model = Result { try VideoModelFolder.load(ModelFixtures.path("video-tiny/model"), on: CPUBackend.shared, precision: .float32) }

    /// diffusers' `[b, c, t, h, w]` video as Diorama's frames `[t, c, h, w]`.
    static func frames(_ video: Tensor) throws -> Tensor {
        let (c, t, h, w) = (video.shape[1], video.shape[2], video.shape[3], video.shape[4])
        return try CPUBackend.shared.contiguous(try video.reshaped([c, t, h, w]).permuted([1, 0, 2, 3]))
    }

    @Test func videoDecoderMatchesDiffusersOverSeveralChunks() throws {
        let model = try Self.model.get()
        let case_ = try ModelFixtures.tensors("video-tiny/vae_decode.safetensors")
        var chunks: [Int] = []
        let video = try model.vaeDecoder.decode(try #require(case_["latents"]), on: CPUBackend.shared) { done, _ in chunks.append(done) }
        let expected = try Self.frames(try #require(case_["video"]))
        #expect(video.shape == [9, 3, 32, 48] && expected.shape == video.shape)
        #expect(chunks == [1, 2, 3])
        let error = relativeError(video, expected)
        #expect(error < 1e-4, "decoder: \(error)")
    }

    static func generate(_ label: String, image: Tensor?) throws -> (result: VideoResult, latents: [Tensor], expected: [String: Tensor]) {
        let model = try Self.model.get()
        let expected = try ModelFixtures.tensors("video-tiny/\(label).safetensors")
        var noise = RecordedNoise([try #require(expected["noise"])])
        var request = VideoRequest(prompt: "a lighthouse on a cliff at dusk, waves below", negativePrompt: "blurry, static", image: image, defaults: .tiny)
        (request.frames, request.width, request.height, request.steps, request.guidance) = (9, 64, 32, 4, 5)
        var latents: [Tensor] = []
        let result = try VideoPipeline(model: model, backend: CPUBackend.shared).generate(request, noise: &noise, inspect: { _, value in latents.append(value) })
        return (result, latents, expected)
    }

    static func check(_ run: (result: VideoResult, latents: [Tensor], expected: [String: Tensor]), _ label: String) throws {
        let steps = try #require(run.expected["step_latents"])
        #expect(run.latents.count == steps.shape[0])
        for (k, mine) in run.latents.enumerated() {
            let theirs = try CPUBackend.shared.contiguous(try steps.narrowed(0, start: k, length: 1)).reshaped(mine.shape)
            let error = relativeError(mine, theirs)
            #expect(error < 1e-4, "\(label) latents after step \(k): \(error)")
        }
        // diffusers' frames [1, t, h, w, 3] in [0, 1] (stored as float16) against ours [t, 3, h, w] in [−1, 1].
        let theirs = try #require(run.expected["frames"])
        let (t, h, w) = (theirs.shape[1], theirs.shape[2], theirs.shape[3])
        let ours = try CPUBackend.shared.contiguous(try run.result.frames.permuted([0, 2, 3, 1]))
        let mapped = try Tensor(ours.floats().map { min(max($0 * 0.5 + 0.5, 0), 1) }, shape: [1, t, h, w, 3])
        let error = relativeError(mapped, theirs)
        #expect(error < 2e-3, "\(label) frames: \(error)")
    }

    @Test func textToVideoMatchesDiffusers() throws {
        try Self.check(try Self.generate("t2v", image: nil), "t2v")
    }

    @Test func imageToVideoMatchesDiffusers() throws {
        let png = try Data(contentsOf: URL(fileURLWithPath: ModelFixtures.path("video-tiny/i2v.png")))
        let image = try ImageDecoder.decode([UInt8](png), name: "i2v.png")
        #expect(image.width == 64 && image.height == 32)
        var values = [Float](repeating: 0, count: 3 * 64 * 32)
        for c in 0..<3 {
            for p in 0..<(64 * 32) { values[c * 64 * 32 + p] = Float(image.pixels[3 * p + c]) / 255 * 2 - 1 }
        }
        let run = try Self.generate("i2v", image: try Tensor(values, shape: [3, 32, 64]))
        try Self.check(run, "i2v")
        #expect(run.result.transformerPasses == 8)
    }
}

/// LoRA merging in the three key layouts, against the weights the fixture script merged with VideoX-Fun's rule.
struct LoRATests {
    @Test(arguments: [("kohya", "kohya"), ("diffusers", "plain"), ("wan", "plain")])
    func mergesEveryLayoutAsVideoXFunDoes(file: String, expectation: String) throws {
        let model = try VideoParityTests.model.get()
        let path = ModelFixtures.path("video-tiny/lora/\(file).safetensors")
        let merged = try model.mergingLoRAs([(path, 0.75)], on: CPUBackend.shared)
        let expected = try ModelFixtures.tensors("video-tiny/lora/merged.safetensors")
        var checked = 0
        for (name, theirs) in expected where name.hasPrefix(expectation + ".") {
            let weight = String(name.dropFirst(expectation.count + 1))
            let error = relativeError(merged.transformer.weights[weight], theirs)
            #expect(error < 1e-6, "\(file) \(weight): \(error)")
            checked += 1
        }
        #expect(checked == 3)
        // VideoX-Fun's own merge_lora, run on its Wan-layout model (kohya and original-Wan layouts; it has no
        // diffusers-layout path), gives the same weights.
        if file != "diffusers" {
            let videoXFun = try ModelFixtures.tensors("video-tiny/lora/merged_videoxfun.safetensors")
            let theirs = videoXFun.filter { $0.key.hasPrefix(file + ".") }
            #expect(theirs.count == 3)
            for (name, value) in theirs {
                let error = relativeError(merged.transformer.weights[String(name.dropFirst(file.count + 1))], value)
                #expect(error < 1e-6, "\(file) vs VideoX-Fun \(name): \(error)")
            }
        }
        // Everything else is untouched.
        #expect(merged.transformer.weights["blocks.1.attn1.to_q.weight"].floats() == model.transformer.weights["blocks.1.attn1.to_q.weight"].floats())
    }

    @Test func aLoRAForAnotherModelIsRefused() throws {
        let model = try VideoParityTests.model.get()
        // The video VAE's weights are not a transformer: none of the LoRA's modules exist there.
        #expect(throws: ModelError.self) {
            _ = try LoRA(path: ModelFixtures.path("video-tiny/lora/kohya.safetensors"), matching: model.vaeDecoder.weights.tensors.keys)
        }
        #expect(throws: (any Error).self) {
            _ = try LoRA(path: ModelFixtures.path("video-tiny/vae_decode.safetensors"), matching: model.transformer.weights.tensors.keys)
        }
    }
}

/// TeaCache and CFG skip on the tiny model: what they skip, and that skipping nothing changes nothing.
struct VideoAccelerationTests {
    static func run(_ acceleration: VideoAcceleration, steps: Int = 6) throws -> VideoResult {
        let model = try VideoParityTests.model.get()
        var request = VideoRequest(prompt: "a lighthouse", negativePrompt: "blurry", defaults: .tiny, acceleration: acceleration)
        request.steps = steps
        var noise = SeededNoise(seed: 5)
        return try VideoPipeline(model: model, backend: CPUBackend.shared).generate(request, noise: &noise)
    }

    @Test func rescalingPolynomialIsWan22s() {
        #expect(abs(TeaCache.rescaled(0) - -4.17769401e-02) < 1e-12)
        #expect(abs(TeaCache.rescaled(0.1) - (8.10705460e+03 * 1e-4 + 2.13393892e+03 * 1e-3 - 3.72934672e+02 * 1e-2 + 1.66203073 - 4.17769401e-02)) < 1e-9)
    }

    @Test func teaCacheSkipsOnlyAfterItsStartSteps() throws {
        let plain = try Self.run(.init())
        #expect(plain.skippedPasses == 0 && plain.transformerPasses == 12)
        // A threshold of 0 never skips: the same video, through the residual-keeping path.
        let never = try Self.run(.init(teaCacheThreshold: 0, teaCacheStartSteps: 1))
        #expect(never.skippedPasses == 0)
        #expect(relativeError(never.frames, plain.frames) < 1e-6)
        // A threshold nothing reaches skips both branches of every step after the first two, never the first two,
        // but for the last step's unconditional pass (as VideoX-Fun, whose cache resets after the conditional one).
        // (The toy model's 16-wide timestep sinusoid moves too much between steps for real thresholds to skip.)
        let always = try Self.run(.init(teaCacheThreshold: 1e12, teaCacheStartSteps: 2))
        #expect(always.skippedPasses == 7)
        #expect(always.frames.shape == plain.frames.shape)
        #expect(relativeError(always.frames, plain.frames) > 1e-4)
    }

    /// VideoX-Fun's own TeaCache on the same tiny transformer (`tools/models/make_videoxfun_fixtures.py`): a 10-step
    /// guided run's inputs replayed, each step's decisions for both branches and both predictions compared.
    @Test func teaCacheDecidesAndPredictsAsVideoXFun() throws {
        let model = try VideoParityTests.model.get()
        let backend = CPUBackend.shared
        let fixture = try ModelFixtures.tensors("video-tiny/teacache_videoxfun.safetensors")
        func value(_ name: String) throws -> [Float] { try #require(fixture[name]).floats() }
        func step(_ name: String, _ k: Int) throws -> Tensor {
            let all = try #require(fixture[name])
            return try backend.contiguous(try all.narrowed(0, start: k, length: 1))
        }
        let (timesteps, computed, uncondComputed) = (try value("timesteps"), try value("computed"), try value("uncond_computed"))
        let texts = try #require(fixture["texts"])
        let (negative, positive) = (try texts.narrowed(0, start: 0, length: 1), try texts.narrowed(0, start: 1, length: 1))
        var cache = TeaCache(
            acceleration: .init(teaCacheThreshold: Double(try value("threshold")[0]), teaCacheStartSteps: Int(try value("start_steps")[0])),
            steps: timesteps.count)
        var skipped = 0
        for (k, t) in timesteps.enumerated() {
            let input = try step("latents", k)
            let timestep = try backend.constant([Float](repeating: t, count: input.shape[2]), shape: [1, input.shape[2]])
            let compute = try cache.shouldCompute(step: k, timestep: timestep, transformer: model.transformer, on: backend)
            #expect(compute == (computed[k] == 1), "step \(k): conditional pass")
            let conditional = try cache.run(.conditional, compute: compute, input: input, timestep: timestep, text: positive, transformer: model.transformer, on: backend)
            let computeUnconditional = cache.computesUnconditional(step: k, conditional: compute)
            #expect(computeUnconditional == (uncondComputed[k] == 1), "step \(k): unconditional pass")
            let unconditional = try cache.run(
                .unconditional, compute: computeUnconditional, input: input, timestep: timestep, text: negative, transformer: model.transformer, on: backend)
            #expect(relativeError(conditional, try step("cond", k)) < 1e-4, "step \(k) conditional")
            #expect(relativeError(unconditional, try step("uncond", k)) < 1e-4, "step \(k) unconditional")
            skipped += (compute ? 0 : 1) + (computeUnconditional ? 0 : 1)
        }
        // Both decisions occur in the run: skipping is exercised, and so is recomputing after a skip.
        #expect(skipped > 0 && computed.dropFirst(2).contains(1))
    }

    @Test func cfgSkipDropsTheUnconditionalPassOfTheLastSteps() throws {
        let plain = try Self.run(.init(), steps: 4)
        let skipped = try Self.run(.init(cfgSkipRatio: 0.5), steps: 4)
        #expect(skipped.skippedPasses == 2 && skipped.transformerPasses == 8)
        #expect(relativeError(skipped.frames, plain.frames) > 0)
    }

    @Test func requestsOutsideTheLimitsAreRefused() {
        var request = VideoRequest(prompt: "x", defaults: .tiny)
        request.frames = 8
        #expect(throws: ModelError.self) { try request.validate() }
        request.frames = 9
        request.width = 40
        #expect(throws: ModelError.self) { try request.validate() }
        request.width = 64
        request.acceleration.cfgSkipRatio = 2
        #expect(throws: ModelError.self) { try request.validate() }
        #expect(VideoRequest.supportedFrameCount(84) == 85 && VideoRequest.supportedFrameCount(82) == 81 && VideoRequest.supportedFrameCount(121) == 121)
        #expect(VideoPipeline.cleanedPrompt("  a  &amp;amp; b\n\tc ") == "a & b c")
    }
}

/// The memory modes on the CPU: e4m3 storage changes the weights' type and the video a little; offloading changes
/// nothing but where the weights wait.
struct VideoMemoryModeTests {
    static func frames(_ mode: VideoMemoryMode) throws -> (VideoResult, WanVideoModel) {
        let model = try VideoParityTests.model.get().arranged(for: mode, on: CPUBackend.shared)
        var request = VideoRequest(prompt: "a lighthouse", negativePrompt: "blurry", defaults: .tiny)
        request.steps = 3
        var noise = SeededNoise(seed: 8)
        return (try VideoPipeline(model: model, backend: CPUBackend.shared).generate(request, noise: &noise), model)
    }

    @Test func fp8StorageKeepsTheBlockLinearsInE4M3() throws {
        let full = try VideoParityTests.model.get()
        let stored = try full.arranged(for: .fp8, on: CPUBackend.shared)
        let linears = stored.transformer.weights.tensors.filter { ModelPrecision.isBlockLinearWeight($0.key) }
        #expect(!linears.isEmpty && linears.values.allSatisfy { $0.dtype == .float8E4M3 })
        #expect(stored.transformer.weights["scale_shift_table"].dtype == .float32)
        // One transformer pass moves by about e4m3's rounding (3 mantissa bits); a whole guided toy-model video is
        // chaotic, so the bound is on the pass.
        let b = CPUBackend.shared
        let x = try b.randomNormal([1, 4, 3, 2, 4], seed: 3)
        let t = try b.constant([500], shape: [1])
        let text = try b.scaled(try b.randomNormal([1, 16, 32], seed: 4), by: 0.1)
        let error = relativeError(try stored.transformer(x, timestep: t, text: text, on: b), try full.transformer(x, timestep: t, text: text, on: b))
        #expect(error > 0 && error < 0.05, "one pass, fp8 storage against full: \(error)")
        // And the whole pipeline runs in that mode.
        let (video, _) = try Self.frames(.fp8)
        #expect(video.frames.shape == [9, 3, 32, 64])
    }

    @Test func modelOffloadGivesTheSameVideo() throws {
        let (full, _) = try Self.frames(.full)
        let (offloaded, _) = try Self.frames(.modelOffload)
        #expect(offloaded.frames.floats() == full.frames.floats())
    }

    /// Layer-by-layer streaming is on for the text encoder and the transformer only, and computes the same video.
    @Test func sequentialOffloadStreamsLayersAndGivesTheSameVideo() throws {
        let (full, _) = try Self.frames(.full)
        let (streamed, model) = try Self.frames(.sequentialOffload)
        #expect(model.transformer.streamsBlocks && model.textEncoder.streamsLayers)
        #expect(streamed.frames.floats() == full.frames.floats())
        let resident = try VideoParityTests.model.get()
        #expect(!resident.transformer.streamsBlocks && !resident.textEncoder.streamsLayers)
        // A streamed model's device copy between layers holds everything but the layers' weights; each layer's
        // upload adds exactly that layer's.
        let names = model.transformer.weights.tensors.keys
        #expect(names.contains { $0.hasPrefix("blocks.1.") } && names.contains { !$0.hasPrefix("blocks.") })
    }
}
