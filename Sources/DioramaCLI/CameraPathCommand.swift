import ArgumentParser
import Cameras
import SplatIO

struct CameraPathCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "camera-path",
        abstract: "Write a camera path as FlashWorld request JSON, from templates, a parametric path or keyframes.",
        discussion: helpText(
            """
            Template steps act like the buttons of FlashWorld's web UI, each adding a keyframe after the last one,
            starting from camera #0 at the origin looking down -z (OpenGL axes, y up):
              forward, backward, left, right  move 0.5 along world -z, +z, -x, +x
              orbit-left, orbit-right         15° around the point 1 ahead (radius 1)
            The keyframes are then interpolated to --frames cameras (slerp and lerp, as FlashWorld resamples).

            Parametric paths, each on its own:
              orbit    a circle of radius --radius around the point that far ahead
              spiral   two turns of radius 0.1*--radius, looking 4*--radius ahead
              dolly    straight ahead by --radius
            --from FILE interpolates a camera file's keyframes instead.

            The output is {"cameras": [{quaternion, position, fx, fy, cx, cy}], "resolution": [frames, H, W]}
            with intrinsics in pixels for a vertical field of view of --fov: the shape FlashWorld's API takes.

            Examples:
              diorama camera-path forward orbit-left orbit-left -o path.json
              diorama camera-path orbit --radius 2 --frames 24 -o orbit.json
              diorama camera-path --from keys.json --frames 24 -o path.json
            """))

    @Argument(help: "Template steps (forward, backward, left, right, orbit-left, orbit-right) or one of orbit, spiral, dolly.")
    var steps: [String] = []

    @Option(help: "Interpolate the keyframes of this camera file instead.")
    var from: String?

    @Option(help: "Cameras in the path (FlashWorld generates 24).")
    var frames = 24

    @Option(help: "Generation size, WIDTHxHEIGHT: intrinsics are written in its pixels (default: --from's resolution, else 704x480).")
    var size: ImageSize?

    @Option(help: "Vertical field of view in degrees (the web UI's default is 60).")
    var fov: Double = 60

    @Option(help: "Radius of orbit and spiral, length of dolly.")
    var radius: Double = 1

    @Flag(help: "Write the keyframes themselves, not the interpolated path.")
    var keyframesOnly = false

    @Option(name: .shortAndLong, help: "Where to write the JSON; - for standard output.")
    var output = "-"

    static let parametric = ["orbit", "spiral", "dolly"]

    func validate() throws {
        guard (1...RenderCommand.maxFrames).contains(frames) else {
            throw ValidationError("--frames must be 1 to \(RenderCommand.maxFrames), not \(frames)")
        }
        guard fov > 0 && fov < 180 else { throw ValidationError("--fov must be between 0 and 180 degrees, not \(fov)") }
        guard radius > 0 && radius.isFinite else { throw ValidationError("--radius must be positive, not \(radius)") }
        if from != nil && !steps.isEmpty { throw ValidationError("give template steps or --from, not both") }
        if from == nil && steps.isEmpty {
            throw ValidationError("name template steps (e.g. forward orbit-left), a parametric path (orbit, spiral, dolly) or --from FILE")
        }
        for step in steps where PathStep(rawValue: step) == nil && !Self.parametric.contains(step) {
            throw ValidationError("unknown step '\(step)': use forward, backward, left, right, orbit-left, orbit-right, orbit, spiral or dolly")
        }
        if steps.contains(where: Self.parametric.contains) && steps.count > 1 {
            throw ValidationError("orbit, spiral and dolly make a whole path: give one of them alone")
        }
        if keyframesOnly && steps.contains(where: Self.parametric.contains) {
            throw ValidationError("--keyframes-only applies to template steps and --from, not to orbit, spiral or dolly")
        }
    }

    func run() throws {
        var document: CameraPathDocument?
        if let from { document = try reportingErrors { () throws(CameraError) in try readCameraFile(from) } }
        let size = self.size ?? document?.size.map { ImageSize(width: $0.width, height: $0.height) } ?? .flashWorld
        let intrinsics = NormalizedIntrinsics(verticalFieldOfView: fov, width: size.width, height: size.height)
        let origin = Camera(orientation: .identity, position: .zero, intrinsics: intrinsics)
        let path: CameraPath
        switch steps.first {
        case "orbit":
            path = .orbit(
                around: SIMD3(0, 0, -radius), radius: radius, up: SIMD3(0, 1, 0), start: SIMD3(0, 0, 1), count: frames,
                intrinsics: intrinsics)
        case "spiral":
            path = .spiral(from: origin, radius: 0.1 * radius, depth: 0.05 * radius, focus: 4 * radius, count: frames)
        case "dolly":
            path = .dolly(from: origin, distance: radius, count: frames)
        default:
            let keyframes: CameraPath
            if let document {
                keyframes = CameraPath(
                    try reportingErrors { () throws(CameraError) in
                        try document.resolvedCameras(defaultWidth: size.width, defaultHeight: size.height)
                    })
            } else {
                keyframes = .keyframes(steps.compactMap(PathStep.init(rawValue:)), intrinsics: intrinsics)
            }
            path = keyframesOnly ? keyframes : keyframes.resampled(count: frames)
        }
        let written = CameraPathDocument(path.cameras, width: size.width, height: size.height)
        try reportingErrors { () throws(SplatFileError) in try writeOutput(written.jsonBytes(), to: output) }
        if output != "-" { printError("wrote \(output): \(path.count) cameras at \(size.description)\n") }
    }
}
