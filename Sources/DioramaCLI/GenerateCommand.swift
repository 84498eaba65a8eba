import ArgumentParser
import ModelHub
import Cameras
import EngineCPU
import EngineCore
import FlashWorld
import FoundationEssentials
import MediaIO
import Models
import SplatCore
import SplatIO
import SplatRender

extension ModelError: CommandLineReportable {
    var exitCode: Int32 { 65 }
}

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate a 3D Gaussian scene from a prompt along a camera path (FlashWorld).",
        discussion: helpText(
            """
            --image conditions frame --image-index on a picture (PNG, JPEG or WebP), centre-cropped to the generation
            aspect ratio and resized; the cameras are taken at the generation size as given.

            --model tiny is the built-in model: FlashWorld's architecture at toy widths with seeded random weights. It
            runs every stage (text encoder, transformer, four flow-matching steps with the render-and-re-encode
            feedback, Gaussian head, export) on any machine, but its scenes are noise. A model folder is the
            Wan-AI/Wan2.2-TI2V-5B-Diffusers folder as published, with FlashWorld's model.ckpt (or model.safetensors)
            in it or given by --checkpoint; every weight is checked before generation starts. The full model needs
            far more memory than a CPU run has (about 45 GB in float32); the GPU backend is where it runs.

            The scene is written in camera 0's OpenGL frame (RUB, recorded in the file), scaled as the reference
            exports it. --request takes the FlashWorld API's request JSON (cameras, text_prompt, resolution,
            image_index) as the reference's batch tool does.

            Examples:
              diorama generate --model tiny --prompt "a lighthouse on a cliff" -o scene.spz
              diorama generate --model tiny --prompt "a forest" \\
                  --camera-path orbit-left,orbit-left --frames 8 --size 352x256 \\
                  -o scene.ply --video orbit.mp4
            """))

    @Option(help: "tiny, flashworld (fetched by `diorama model pull flashworld`), or a model folder (Wan2.2-TI2V-5B diffusers layout plus model.ckpt).")
    var model = "tiny"

    @Option(help: "FlashWorld's model.ckpt (or its safetensors conversion), when it is not in the model folder.")
    var checkpoint: String?

    @Option(help: "The text prompt.")
    var prompt: String?

    @Option(help: "A FlashWorld request JSON file (cameras, text_prompt, resolution, image_index).")
    var request: String?

    @Option(help: "A conditioning image (PNG, JPEG or WebP), centre-cropped and resized to the generation size.")
    var image: String?

    @Option(help: "The frame the image conditions.")
    var imageIndex = 0

    @Option(help: ArgumentHelp("Template steps joined by commas, or a camera JSON file.", valueName: "path"))
    var cameraPath = "forward,orbit-left,orbit-left"

    @Option(help: "Frames (cameras) to generate: 24 as FlashWorld (4 for the tiny model), or a --request's resolution[0].")
    var frames: Int?

    @Option(help: "Generation size, WIDTHxHEIGHT, multiples of 32 (default: 704x480, FlashWorld's; 256x192 for the tiny model).")
    var size: ImageSize?

    /// Defaults belong to the model: FlashWorld's 24x480x704, and a small fast run for the CPU-bound tiny model (the
    /// service's defaults too).
    var defaultSize: ImageSize { model == "tiny" ? ImageSize(width: 256, height: 192) : .flashWorld }
    var defaultFrames: Int { model == "tiny" ? 4 : 24 }

    @Option(help: "Vertical field of view in degrees for template paths.")
    var fov: Double = 60

    @Option(help: "Seed of every random draw (default: a --request's seed, else 42).")
    var seed: UInt64?

    @Option(help: "full (every weight on the device), balanced (the text encoder waits in host memory and runs layer by layer) or low (the transformer's blocks stream from host memory too: the least device memory, the slowest). Default: chosen from the GPU's free memory (full from 26 GiB, balanced from 17, else low); full on the CPU.")
    var memory: FlashWorldMemoryMode?

    @Option(help: "Flow-matching steps: 4 (FlashWorld's) or 2 (timesteps 1000 and 750: about half the time, visibly softer scenes; the model was distilled for 4).")
    var steps = 4

    @Option(help: "Drop Gaussians whose opacity is below this when writing (the reference's SPZ path uses 0.00025).")
    var minOpacity: Float = 0

    @Option(name: .shortAndLong, help: "The scene to write: .spz, .ply or .splat.")
    var output: String

    @Option(help: "Also render the scene along the path to this MP4.")
    var video: String?

    @OptionGroup var device: DeviceOptions

    @Flag(name: .shortAndLong, help: "No progress or timings.")
    var quiet = false

    func validate() throws {
        guard SplatFormat(path: output) != nil else { throw ValidationError("cannot tell the output format from '\(output)': use .spz, .ply or .splat") }
        if let frames, !(1...GenerationRequest.maxFrames).contains(frames) {
            throw ValidationError("--frames must be 1 to \(GenerationRequest.maxFrames)")
        }
        if let size, size.width % 32 != 0 || size.height % 32 != 0 {
            throw ValidationError("--size \(size.description) must be multiples of 32, e.g. 704x480")
        }
        // With a request and no --frames, the count comes from its resolution, checked once the file is read.
        if let count = frames ?? (request == nil ? defaultFrames : nil), !(0..<count).contains(imageIndex) {
            throw ValidationError("--image-index must be 0 to \(count - 1)")
        }
        guard (0...1).contains(minOpacity) else { throw ValidationError("--min-opacity must be between 0 and 1") }
        guard FlowMatchSchedule.supportedStepCounts.contains(steps) else { throw ValidationError("--steps must be 4 or 2, not \(steps)") }
        if prompt == nil && request == nil && image == nil { throw ValidationError("give --prompt, --image or --request") }
        if let video, !video.lowercased().hasSuffix(".mp4") { throw ValidationError("--video must name an .mp4 file") }
    }

    func run() throws {
        var text = prompt ?? ""
        var index = imageIndex
        var requestImage: ([UInt8], String)?
        var cameras: [Camera] = []
        var requestCameras: CameraPathDocument?
        let size = self.size ?? defaultSize
        var generationSize = size
        var frameCount = frames ?? defaultFrames
        var requestSeed: UInt64?
        if let request {
            let bytes = try reportingErrors { () throws(SplatFileError) in try InputSource(path: request).allBytes() }
            let parsed = try reportingErrors { () throws(CameraError) in try CameraPathDocument(json: bytes) }
            struct Fields: Decodable {
                var text_prompt: String?
                var image_index: Int?
                var image_prompt: String?
                var seed: Int64?
            }
            let fields = (try? JSONDecoder().decode(Fields.self, from: Data(bytes))) ?? Fields()
            text = prompt ?? fields.text_prompt ?? ""
            // As the API does: the request's seed, so one request file gives the same scene everywhere.
            requestSeed = fields.seed.flatMap { $0 >= 0 ? UInt64($0) : nil }
            index = fields.image_index ?? imageIndex
            if image == nil, let embedded = fields.image_prompt, !embedded.isEmpty {
                guard let data = GenerationRequest.imageBytes(fromImagePrompt: embedded) else {
                    try reportingErrors { () throws(ModelError) in
                        throw ModelError("\(request): image_prompt is neither a data URL nor base64; file paths are not read")
                    }
                    return
                }
                requestImage = (data, "\(request) image_prompt")
            }
            if let s = parsed.size { generationSize = ImageSize(width: s.width, height: s.height) }
            // The reference generates resolution[0] frames (app.py's request handling); --frames overrides.
            if frames == nil, let r = parsed.resolution, r.count == 3 { frameCount = r[0] }
            requestCameras = parsed
        } else {
            cameras = try FlashWorldRun.cameras(
                cameraPath, fov: fov, size: size, refusal: "orbit, spiral and dolly frame existing scenes; use template steps or a file here")
        }
        var encodedImage = requestImage
        if let image {
            encodedImage = (try reportingErrors { () throws(SplatFileError) in try InputSource(path: image).allBytes() }, image)
        }
        var conditioning: Tensor?
        var crop: CenterCrop?
        if let (bytes, name) = encodedImage {
            let decoded = try reportingErrors { () throws(MediaError) in try ImageDecoder.decode(bytes, name: name) }
            crop = CenterCrop(imageWidth: decoded.width, imageHeight: decoded.height, width: generationSize.width, height: generationSize.height)
            conditioning = try GenerationRequest.conditioningImage(decoded, width: generationSize.width, height: generationSize.height)
        }
        if var document = requestCameras {
            // As the reference: a request's intrinsics are in its image's pixels and follow the image's crop and resize.
            if let crop { document = document.intrinsicsMapped(crop.intrinsics) }
            cameras = try reportingErrors { () throws(CameraError) in
                try document.resolvedCameras(defaultWidth: generationSize.width, defaultHeight: generationSize.height)
            }
        }
        let generation = GenerationRequest(
            prompt: text, image: conditioning, imageIndex: index, cameras: cameras, frames: frameCount, width: generationSize.width,
            height: generationSize.height, steps: steps)
        try reportingErrors { () throws(ModelError) in try generation.validate() }

        let start = monotonicSeconds()
        let (pipeline, flashWorld) = try FlashWorldRun.pipeline(model: model, checkpoint: checkpoint, device: device, memory: memory, quiet: quiet)
        var noise = SeededNoise(seed: seed ?? requestSeed ?? 42)
        let progress = FlashWorldRun.ProgressLines(quiet: quiet)
        let result = try pipeline.generate(generation, noise: &noise) { progress($0, $1, $2) }
        var cloud = result.cloud
        if minOpacity > 0 { cloud = cloud.pruned(minOpacity: minOpacity) }
        // The cameras it was made along travel in the file (`diorama mesh` fuses their views; `extend` keeps them).
        let options = SplatWriteOptions(metadata: SceneRecord(generated: result).metadata)
        try reportingErrors { () throws(SplatFileError) in try SplatFile.write(cloud, toPath: output, options: options) }
        if let video {
            try renderVideo(cloud, result: result, to: video, size: generationSize)
        }
        if !quiet {
            for (stage, seconds) in result.timings { print("  \(stage): \(formatted(Float(seconds))) s") }
            print("wrote \(output): \(cloud.count) Gaussians from the \(flashWorld.name) model in \(formatted(Float(monotonicSeconds() - start))) s")
        }
    }

    /// The scene along its own (normalised, export-scaled) path, four frames per camera.
    func renderVideo(_ cloud: GaussianCloud, result: GenerationResult, to path: String, size: ImageSize) throws {
        let cameras = SceneVideo.path(result.normalization)
        do {
            try SceneVideo.write(cloud, along: cameras, width: size.width, height: size.height, to: path, frames: device.choice.videoFrames)
        } catch let error as MediaError {
            try reportingErrors { () throws(MediaError) in throw error }
        } catch let error as RenderError {
            try reportingErrors { () throws(RenderError) in throw error }
        } catch let error as EngineError {
            try reportingErrors { () throws(EngineError) in throw error }
        }
        if !quiet { print("wrote \(path): \(cameras.count) frames") }
    }
}
