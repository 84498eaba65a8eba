import ArgumentParser
import ModelHub
import EngineCore
import FlashWorld
import FoundationEssentials
import MediaIO
import Models
import SplatIO
import Video

#if canImport(Glibc)
    import Glibc
#endif

struct VideoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "video",
        abstract: "Generate a video from a prompt, or a prompt and a first frame (Wan2.2-TI2V-5B).",
        discussion: helpText(
            """
            The model is a Wan-AI/Wan2.2-TI2V-5B-Diffusers folder as published (model_index.json, scheduler, tokenizer, text_encoder, transformer, vae; sharded weights are fine), or tiny-video: the same architecture at toy widths with seeded random weights, which runs every path on a CPU in seconds and makes noise.

            The run follows diffusers' WanPipeline: UMT5 text (512 tokens), classifier-free guidance with the negative prompt, the UniPC sampler with the model's flow shift (or --sampler euler), then the video VAE decoder one latent frame at a time. With --image, the picture (centre-cropped to the video's aspect ratio and resized) is the first frame. Frame counts are 4k + 1; another count is rounded as diffusers rounds it.

            --teacache T skips the transformer's blocks on steps whose timestep modulation barely moved (VideoX-Fun's TeaCache; 0.1 is a good start, larger is faster and looser); --cfg-skip R drops the unconditional pass for the last R of the steps.

            Examples:
              diorama video --model tiny-video --prompt "waves on a beach" -o clip.mp4
              diorama video --model Wan2.2-TI2V-5B-Diffusers --prompt "a red fox in snow" \\
                  --image fox.png --teacache 0.1 -o fox.mp4
            """))

    @Option(help: "tiny-video, wan2.2-ti2v-5b (fetched by `diorama model pull wan2.2-ti2v-5b`), or a Wan2.2-TI2V-5B-Diffusers model folder.")
    var model = "tiny-video"

    @Option(help: "The text prompt.")
    var prompt: String?

    @Option(help: "What the video should not look like (guidance steers away from it).")
    var negativePrompt = ""

    @Option(help: "The first frame (PNG, JPEG or WebP), centre-cropped and resized to the video size.")
    var image: String?

    @Option(help: "Frames, 4k + 1 (default: the model's, 121 = 5 s at 24 fps; 9 for tiny-video).")
    var frames: Int?

    @Option(help: "Video size, WIDTHxHEIGHT, multiples of 32 (default: the model's, 1280x704; 64x32 for tiny-video).")
    var size: ImageSize?

    @Option(help: "Sampling steps (default: the model's, 50; 4 for tiny-video).")
    var steps: Int?

    @Option(help: "Guidance scale; 1 turns the negative pass off (default 5).")
    var guidance: Double?

    @Option(help: "unipc (the model's scheduler) or euler (flow-match Euler).")
    var sampler: VideoSamplerKind = .unipc

    @Option(help: "TeaCache threshold (e.g. 0.1): skip the blocks while the accumulated change stays below it.")
    var teacache: Double?

    @Option(help: "Steps always computed before TeaCache may skip.")
    var teacacheStartSteps = 5

    @Option(help: "Fraction of the last steps run without the unconditional pass (0 to 1; 0.1-0.25 is typical).")
    var cfgSkip: Double = 0

    @Option(help: ArgumentHelp("A LoRA (safetensors; kohya, VideoX-Fun or diffusers keys) merged at a strength, default 1; repeatable.", valueName: "file[:strength]"))
    var lora: [String] = []

    @Option(help: "full (every weight resident), fp8 (the transformer's block linears stored in e4m3, about half its memory) model-offload (weights in host memory, each sub-model on the GPU for its stage) or sequential-offload (the text encoder's and transformer's layers copied to the GPU one at a time as they run: the least memory, the slowest).")
    var memory: VideoMemoryMode = .full

    @Option(help: "Seed of the noise.")
    var seed: UInt64 = 42

    @Option(help: "Frames per second of the MP4 (default: the model's, 24).")
    var fps: Int?

    @Option(name: .shortAndLong, help: "The video to write: an .mp4 file (needs ffmpeg), or a folder for PNG frames.")
    var output: String

    @OptionGroup var device: DeviceOptions

    @Flag(name: .shortAndLong, help: "No progress or timings.")
    var quiet = false

    var isMP4: Bool { output.lowercased().hasSuffix(".mp4") }

    /// `--lora file[:strength]`: the strength after the last colon when it is a number.
    func loras() throws -> [(path: String, strength: Float)] {
        try lora.map { argument in
            if let colon = argument.lastIndex(of: ":"), let strength = Float(argument[argument.index(after: colon)...]) {
                guard strength.isFinite, abs(strength) <= 10 else { throw ValidationError("--lora \(argument): the strength must be between -10 and 10") }
                return (String(argument[..<colon]), strength)
            }
            return (argument, 1)
        }
    }

    func validate() throws {
        if let frames, !(1...VideoRequest.maxFrames).contains(frames) { throw ValidationError("--frames must be 1 to \(VideoRequest.maxFrames)") }
        if let size, size.width % 32 != 0 || size.height % 32 != 0 {
            throw ValidationError("--size \(size.description) must be multiples of 32, e.g. 1280x704")
        }
        if let steps, !(1...VideoRequest.maxSteps).contains(steps) { throw ValidationError("--steps must be 1 to \(VideoRequest.maxSteps)") }
        if let guidance, !(0...30).contains(guidance) { throw ValidationError("--guidance must be between 0 and 30") }
        if let teacache, !(teacache.isFinite && teacache >= 0) { throw ValidationError("--teacache must be a number of at least 0") }
        guard teacacheStartSteps >= 0 else { throw ValidationError("--teacache-start-steps must not be negative") }
        guard (0...1).contains(cfgSkip) else { throw ValidationError("--cfg-skip must be between 0 and 1") }
        if let fps, !(1...120).contains(fps) { throw ValidationError("--fps must be 1 to 120") }
        _ = try loras()
        if prompt == nil && image == nil { throw ValidationError("give --prompt, --image or both") }
        let ext = output.split(separator: "/").last.map { $0.contains(".") ? String($0.split(separator: ".").last!) : "" } ?? ""
        if !isMP4 && !ext.isEmpty { throw ValidationError("-o must be an .mp4 file or a folder for PNG frames, not .\(ext)") }
        if isMP4 && VideoEncoder.locateFFmpeg() == nil { throw ValidationError(VideoEncoder.missingMessage) }
    }

    func run() throws {
        let folder = try reportingErrors { () throws(HubError) in
            model == "tiny-video" ? model : try ModelArgument.resolve(model, checkpoint: nil).folder
        }
        let start = monotonicSeconds()
        let backend = try device.backend(quiet: quiet)
        let precision = device.modelPrecision(for: backend)
        var video: WanVideoModel
        do {
            video =
                model == "tiny-video"
                ? try WanVideoModel.tiny(on: backend).mergingLoRAs(try loras(), on: backend).prepared(for: backend, precision: precision)
                : try VideoModelFolder.load(folder, on: backend, precision: precision, loras: try loras())
            video = try video.arranged(for: memory, on: backend)
        } catch let error as EngineError {
            try reportingErrors { () throws(EngineError) in throw error }
            return
        } catch {
            printError("error: \(error)\n")
            throw ExitCode(65)
        }
        let defaults = video.defaults
        var request = VideoRequest(
            prompt: prompt ?? "", negativePrompt: negativePrompt, defaults: defaults, sampler: sampler,
            acceleration: VideoAcceleration(teaCacheThreshold: teacache, teaCacheStartSteps: teacacheStartSteps, cfgSkipRatio: cfgSkip))
        if let frames {
            request.frames = VideoRequest.supportedFrameCount(frames)
            if request.frames != frames && !quiet { printError("note: \(frames) frames is not 4k + 1; generating \(request.frames)\n") }
        }
        if let size { (request.width, request.height) = (size.width, size.height) }
        if let steps { request.steps = steps }
        if let guidance { request.guidance = guidance }
        if let image {
            let bytes = try reportingErrors { () throws(SplatFileError) in try InputSource(path: image).allBytes() }
            let decoded = try reportingErrors { () throws(MediaError) in try ImageDecoder.decode(bytes, name: image) }
            request.image = try GenerationRequest.conditioningImage(decoded, width: request.width, height: request.height)
        }
        try reportingErrors { () throws(ModelError) in try request.validate() }
        if !quiet {
            printError(
                "\(request.frames) frames of \(request.width)x\(request.height), \(request.steps) steps, on \(backend.device) in \(precision)\n")
        }

        var noise = SeededNoise(seed: seed)
        var stepStarted = monotonicSeconds()
        var stepTimes: [Double] = []
        let result = try VideoPipeline(model: video, backend: backend).generate(request, noise: &noise) { stage, done, total in
            guard !quiet else { return }
            switch stage {
            case "step" where done > 0:
                let now = monotonicSeconds()
                stepTimes.append(now - stepStarted)
                stepStarted = now
                let perStep = stepTimes.reduce(0, +) / Double(stepTimes.count)
                printError("step \(done)/\(total)  \(formatted(Float(perStep))) s/step, about \(Int((perStep * Double(total - done)).rounded())) s to go\n")
            case "step": stepStarted = monotonicSeconds()
            case "decode" where done == 1: printError("decoding \(total) latent frames…\n")
            case "text" where done == 0: printError("text encoder…\n")
            case "image" where done == 0: printError("image encoder…\n")
            default: break
            }
        }
        try write(result.frames, on: backend, fps: fps ?? defaults.fps)
        if !quiet {
            for (stage, seconds) in result.timings where !stage.hasPrefix("step ") { print("  \(stage): \(formatted(Float(seconds))) s") }
            let steps = result.timings.filter { $0.stage.hasPrefix("step ") }.map(\.seconds)
            if !steps.isEmpty { print("  \(steps.count) steps: \(formatted(Float(steps.reduce(0, +)))) s") }
            if result.skippedPasses > 0 { print("  skipped \(result.skippedPasses) of \(result.transformerPasses) transformer passes") }
            print("wrote \(output): \(result.frames.shape[0]) frames from the \(video.name) model in \(formatted(Float(monotonicSeconds() - start))) s")
        }
    }

    /// Frames `[t, 3, h, w]` in [−1, 1] to an MP4 (through a temporary file, renamed when complete) or PNG files.
    func write(_ frames: Tensor, on backend: any Backend, fps: Int) throws {
        let video = try reportingErrors { () throws(EngineError) in try VideoFrames(frames, on: backend) }
        if isMP4 {
            try reportingErrors { () throws(MediaError) in try video.writeMP4(to: output, fps: fps) }
        } else {
            mkdir(output, 0o755)
            for t in 0..<video.count {
                let name = String(t)
                let path = (output.hasSuffix("/") ? output : output + "/") + "frame_" + String(repeating: "0", count: max(0, 4 - name.count)) + name + ".png"
                let png = try reportingErrors { () throws(MediaError) in
                    try PNGEncoder.encode(width: video.width, height: video.height, channels: 3, pixels: video.rgb(t))
                }
                try reportingErrors { () throws(SplatFileError) in try writeOutput(png, to: path) }
            }
        }
    }
}

extension VideoSamplerKind: ExpressibleByArgument {}
extension VideoMemoryMode: ExpressibleByArgument {}
extension FlashWorldMemoryMode: ExpressibleByArgument {}
