import ArgumentParser
import Cameras
import EngineCore
import FlashWorld
import FoundationEssentials
import Models
import SplatCore
import SplatIO

#if canImport(Glibc)
    import Glibc
#endif

struct ExtendCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "extend",
        abstract: "Grow a scene along a camera path that starts inside it (world expansion with FlashWorld).",
        discussion: helpText(
            """
            The scene is rendered from the path's first camera; the next chunk is generated along the path,
            conditioned on that render at image index 0; the chunk is scaled by the ratio of the scene's rendered
            depth to its own at that view (the median over pixels both cover confidently; the estimate and its
            spread are printed), placed at the camera's pose, and merged without the Gaussians that duplicate
            surfaces the scene already has. Run it again from the new path's end to walk on: each chunk starts
            where its path does.

            The path is in the scene's own frame: a camera JSON file, or template steps from camera #0 at the
            origin (where a FlashWorld scene was generated). --chunks keeps each placed chunk as its own file, for
            undo. OUTPUT.chunks.json lists every chunk's pose, scale and estimate: SCENE.chunks.json's, when it
            exists, then this one's.

            Examples:
              diorama generate --model tiny --prompt "a hall" -o hall.ply
              diorama extend hall.ply --model tiny --prompt "a hall" \\
                  --camera-path forward,forward -o hall2.ply
            """))

    @Argument(help: "The scene to grow (.ply, .spz or .splat).")
    var scene: String

    @Option(help: "tiny, flashworld, or a model folder, as for generate.")
    var model = "tiny"

    @Option(help: "FlashWorld's model.ckpt, when it is not in the model folder.")
    var checkpoint: String?

    @Option(help: "The text prompt for the new chunk.")
    var prompt = ""

    @Option(help: ArgumentHelp("Template steps joined by commas, or a camera JSON file, in the scene's frame; its first camera must see the scene.", valueName: "path"))
    var cameraPath = "forward,forward"

    @Option(help: "Frames of the chunk: 24 as FlashWorld (4 for the tiny model).")
    var frames: Int?

    @Option(help: "Generation size, WIDTHxHEIGHT, multiples of 32 (default: 704x480; 256x192 for the tiny model).")
    var size: ImageSize?

    @Option(help: "Vertical field of view in degrees for template paths.")
    var fov: Double = 60

    @Option(help: "Seed of every random draw.")
    var seed: UInt64 = 42

    @Option(help: "Flow-matching steps: 4 or 2.")
    var steps = 4

    @Option(help: "A folder to keep the placed chunk in, as chunk_NNNN.ply.")
    var chunks: String?

    @Option(name: .shortAndLong, help: "The grown scene to write: .spz, .ply or .splat.")
    var output: String

    @OptionGroup var device: DeviceOptions

    @Flag(name: .shortAndLong, help: "No progress or summary.")
    var quiet = false

    func validate() throws {
        guard SplatFormat(path: output) != nil else { throw ValidationError("cannot tell the output format from '\(output)': use .spz, .ply or .splat") }
        if let frames, !(1...GenerationRequest.maxFrames).contains(frames) {
            throw ValidationError("--frames must be 1 to \(GenerationRequest.maxFrames), not \(frames)")
        }
        if let size, size.width % 32 != 0 || size.height % 32 != 0 {
            throw ValidationError("--size \(size.description) must be multiples of 32, e.g. 704x480")
        }
        guard FlowMatchSchedule.supportedStepCounts.contains(steps) else { throw ValidationError("--steps must be 4 or 2, not \(steps)") }
    }

    func run() throws {
        let generationSize = size ?? (model == "tiny" ? ImageSize(width: 256, height: 192) : .flashWorld)
        let frameCount = frames ?? (model == "tiny" ? 4 : 24)
        let (world, description) = try reportingErrors { () throws(SplatFileError) in try SplatFile.read(try InputSource(path: scene)) }
        guard world.count > 0 else {
            try reportingErrors { () throws(ModelError) in throw ModelError("\(scene) has no Gaussians to extend") }
            return
        }
        let path = try FlashWorldRun.cameras(
            cameraPath, fov: fov, size: generationSize,
            refusal: "orbit, spiral and dolly frame a scene from outside; a chunk's path starts inside it: use template steps or a file")
        let generation = GenerationRequest(
            prompt: prompt.isEmpty ? " " : prompt, cameras: path, frames: frameCount, width: generationSize.width, height: generationSize.height,
            steps: steps)
        let (pipeline, _) = try FlashWorldRun.pipeline(model: model, checkpoint: checkpoint, device: device, memory: nil, quiet: quiet)
        var noise = SeededNoise(seed: seed)
        let start = monotonicSeconds()
        let progress = FlashWorldRun.ProgressLines(quiet: quiet)
        let grown: (world: GaussianCloud, chunk: GaussianCloud, placement: ChunkPlacement)
        do {
            grown = try WorldExpansion.extend(world, along: path, generation: generation, pipeline: pipeline, noise: &noise) { progress($0, $1, $2) }
        } catch let error as ModelError {
            // A path that does not start inside the scene, or a chunk that shares too little of its view.
            return try reportingErrors { () throws(ModelError) in throw error }
        }
        var chunkFile: String?
        if let chunks {
            chunkFile = try reportingErrors { () throws(SplatFileError) in try Self.writeChunk(grown.chunk, in: chunks) }
        }
        // The scene's own record of its chunks (else its sidecar's), with this one appended, goes into the file and
        // beside it (.splat files have no room for it).
        var record = SceneRecord(metadata: description.metadata) ?? Self.sidecarRecord(scene + ".chunks.json") ?? SceneRecord()
        record.chunks.append(SceneRecord.Chunk(grown.placement, scene: output, chunk: chunkFile))
        try reportingErrors { () throws(SplatFileError) in
            try SplatFile.write(grown.world, toPath: output, options: SplatWriteOptions(metadata: record.metadata))
            try Self.writeSidecar(record, to: output + ".chunks.json")
        }
        let p = grown.placement
        if !quiet {
            print(
                "wrote \(output): \(grown.world.count) Gaussians (\(grown.chunk.count - p.pruned) new, \(p.pruned) duplicates pruned); chunk scale \(formatted(Float(p.scale))) over \(p.pixels) pixels (spread \(formatted(Float(100 * p.spread)))%), in \(formatted(Float(monotonicSeconds() - start))) s"
            )
        }
    }

    /// The next free chunk_NNNN.ply in `folder` (made when missing).
    static func writeChunk(_ chunk: GaussianCloud, in folder: String) throws(SplatFileError) -> String {
        let base = folder.hasSuffix("/") ? folder : folder + "/"
        guard mkdir(base, 0o755) == 0 || errno == EEXIST else {
            throw SplatFileError(.io, file: folder, "cannot create the folder: \(String(cString: strerror(errno)))")
        }
        var index = 0
        while access("\(base)chunk_\(format4(index)).ply", F_OK) == 0 { index += 1 }
        let file = "\(base)chunk_\(format4(index)).ply"
        try SplatFile.write(chunk, toPath: file)
        return file
    }

    static func format4(_ n: Int) -> String {
        let digits = String(n)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    /// The chunks a `.chunks.json` sidecar lists (a list of `SceneRecord.Chunk`), if it exists and reads.
    static func sidecarRecord(_ path: String) -> SceneRecord? {
        guard let bytes = try? InputSource(path: path).allBytes(),
            let chunks = try? JSONDecoder().decode([SceneRecord.Chunk].self, from: Data(bytes))
        else { return nil }
        return SceneRecord(chunks: chunks)
    }

    static func writeSidecar(_ record: SceneRecord, to path: String) throws(SplatFileError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(record.chunks) else { throw SplatFileError(.io, file: path, "the chunk records could not be encoded") }
        try writeOutput(Array(data), to: path)
    }
}
