import ArgumentParser
import EngineCUDA
import EngineCore
import Models
import Video

/// Wan2.2-TI2V-5B video generation at full size with random weights: seconds per step and for the decoder.
struct VideoBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "video",
        abstract: "Time Wan2.2-TI2V-5B video generation at full size (random weights): per step, the decoder, and peak memory.",
        discussion: helpText(
            """
            Builds every module at full size with random weights on the device (--precision), then generates one video \
            of --frames at --size with --steps steps and guidance (two transformer passes per step) after a one-step \
            warm-up. Prints the mean seconds per step, the decoder's seconds, the estimate for a 50-step video, and the \
            peak device memory. The peer is diffusers' WanPipeline timed on the same GPU in the same call \
            (tools/bench/video_peer_diffusers.py).
            """))

    @OptionGroup var device: DeviceOptions

    @Option(help: "Frames, 4k + 1.")
    var frames = 121

    @Option(help: "Video size, WIDTHxHEIGHT.")
    var size = ImageSize(width: 1280, height: 704)

    @Option(help: "Timed steps (a full video is 50; the time per step is what is compared).")
    var steps = 3

    @Option(help: "full, fp8 (e4m3 storage of the block linears), model-offload or sequential-offload: peak memory and time per mode.")
    var memory: VideoMemoryMode = .full

    @Option(help: "TeaCache threshold, to time it too.")
    var teacache: Double?

    func validate() throws {
        guard frames % 4 == 1, steps > 0, size.width % 32 == 0, size.height % 32 == 0 else {
            throw ValidationError("--frames must be 4k + 1, --steps positive and --size multiples of 32")
        }
    }

    func run() throws {
        let backend = try device.backend()
        let precision = device.modelPrecision(for: backend)
        let gpu = backend as? CUDABackend
        let model = try RandomWeights.build(on: backend, precision: precision) { random in try random.wanVideo(precision: precision).arranged(for: memory, on: backend) }
        let pipeline = VideoPipeline(model: model, backend: backend)
        var request = VideoRequest(prompt: "waves rolling onto a beach at sunset", defaults: .wan22)
        (request.frames, request.width, request.height) = (frames, size.width, size.height)
        var warmUp = request
        (warmUp.steps, warmUp.frames) = (1, 1)
        var noise = SeededNoise(seed: 1)
        _ = try pipeline.generate(warmUp, noise: &noise)
        gpu?.resetPeakMemory()
        request.steps = steps
        request.acceleration.teaCacheThreshold = teacache
        var timedNoise = SeededNoise(seed: 2)
        let result = try pipeline.generate(request, noise: &timedNoise) { stage, done, total in
            if stage == "step" && done > 0 { printError("step \(done)/\(total)\n") }
        }
        let stepTimes = result.timings.filter { $0.stage.hasPrefix("step ") }.map(\.seconds)
        let perStep = stepTimes.reduce(0, +) / Double(max(stepTimes.count, 1))
        let decoder = result.timings.first { $0.stage == "decoder" }?.seconds ?? 0
        let text = result.timings.first { $0.stage == "text encoder" }?.seconds ?? 0
        print("video \(frames)x\(size.height)x\(size.width), \(result.latents.shape[2]) latent frames, guidance on, memory \(memory.rawValue)")
        print(String(format: "  text encoder   %8.3f s", text))
        print(String(format: "  per step       %8.3f s  (two transformer passes; %d steps timed)", perStep, stepTimes.count))
        print(String(format: "  decoder        %8.3f s", decoder))
        print(String(format: "  50-step video  %8.1f s (estimate: text + 50 steps + decoder)", text + 50 * perStep + decoder))
        if result.skippedPasses > 0 { print("  TeaCache skipped \(result.skippedPasses) of \(result.transformerPasses) passes") }
        print("  peak device memory \(gib(backend.memoryStats.peak)) GiB")
    }
}
