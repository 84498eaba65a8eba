import ArgumentParser
import EngineCUDA
import EngineCore
import Cameras
import MediaIO
import SplatCore
import SplatIO
import SplatRender

#if canImport(Glibc)
    import Glibc
#endif

struct RenderCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "render",
        abstract: "Render a splat scene along a camera path to an MP4, a folder of PNG frames, or one PNG.",
        discussion: helpText(
            """
            The renderer follows gsplat 1.5.2/1.5.3 "classic" rasterization, the one FlashWorld was trained with.
            Camera paths use FlashWorld's convention: OpenGL camera axes in a y-up world. A scene that declares
            another axis frame (PLY files default to RDF, the COLMAP/INRIA convention) is turned into that y-up
            frame first, so it appears upright.

            Generated paths (orbit, spiral, dolly) frame the scene from its robust centre and size. Template steps
            start, like FlashWorld's web UI, from camera #0 at the origin looking down -z, which is where a
            FlashWorld scene's first camera is.

            MP4 needs the ffmpeg program (Debian package ffmpeg). PNG frames are written by Diorama itself.

            Examples:
              diorama render scene.spz -o orbit.mp4
              diorama render scene.ply --camera-path request.json --rebase -o frames/
              diorama render scene.spz --camera-path forward,orbit-left,orbit-right \\
                  --frames 48 -o tour.mp4
              diorama render scene.spz --frames 1 --size 1280x720 -o still.png
              diorama render scene.spz --panorama --depth -o pano.png
            """))

    @Argument(help: "The scene to render (.ply, .spz or .splat).")
    var scene: String

    @Option(name: .shortAndLong, help: "out.mp4, a folder for PNG frames (a name ending in /), or one .png with --frames 1.")
    var output: String

    @Option(help: ArgumentHelp(CameraPathSource.help + " Default: orbit (with --panorama: camera #0 of a FlashWorld scene, at the origin looking down -z).", valueName: "path"))
    var cameraPath: String?

    @Option(help: "Frames to render. A camera file keeps its own count unless this is given; generated paths default to 96.")
    var frames: Int?

    @Option(help: "Image size, WIDTHxHEIGHT (default: a camera file's resolution, else 704x480; 2048x1024 for --panorama).")
    var size: ImageSize?

    @Option(help: "Frames per second of the MP4.")
    var fps: Double = 24

    @Option(help: "Background: white (FlashWorld's), black, gray, #rrggbb or r,g,b in 0-1.")
    var background = BackgroundColor(SIMD3(1, 1, 1))

    @Option(help: "SH degree to shade with, 0-3 (default: the scene's).")
    var shDegree: Int?

    @Option(help: ArgumentHelp("cpu, cuda, or auto (the GPU when one works; DIORAMA_DEVICE sets the default).", valueName: "device"))
    var device: String?

    @Option(help: "Vertical field of view in degrees, for generated paths and template steps.")
    var fov: Double = 60

    @Option(help: "Orbit elevation in degrees.")
    var elevation: Double = 15

    @Option(help: "Camera distance of generated paths, as a multiple of the distance that frames the scene.")
    var distance: Double = 1

    @Flag(help: "Re-base a camera file on its first camera and scale it by T_norm, as FlashWorld expresses its exported scenes.")
    var rebase = false

    @Option(help: "Far clipping plane (FlashWorld uses 1000).")
    var far: Float = RenderCamera.defaultFarPlane

    @Option(help: "MP4 quality as an x264 CRF, 0-51; lower is better.")
    var quality = 18

    @Flag(help: "Also write each view's depth (camera-space, expected over the visible splats; 0 where nothing is) as a float map (.pfm) beside its frame; a video's go to a folder beside it. Depth comes from the CPU renderer.")
    var depth = false

    @Flag(help: "Render 360-degree equirectangular panoramas (twice as wide as high) from each camera's position instead of its pinhole view: longitude 0 is where it looks, the top row its up. With --depth, each panorama's depth is the distance along its pixels' rays. Renders on the CPU.")
    var panorama = false

    @Flag(name: .shortAndLong, help: "No progress bar or summary.")
    var quiet = false

    static let maxFrames = 100_000
    static let defaultPanoramaSize = ImageSize(width: 2048, height: 1024)
    static let defaultGeneratedFrames = 96

    enum Destination: Equatable {
        case video
        case image
        case folder
    }

    var destination: Destination {
        let lower = output.lowercased()
        if lower.hasSuffix(".mp4") { return .video }
        if lower.hasSuffix(".png") { return .image }
        return .folder
    }

    func validate() throws {
        if let frames, !(1...Self.maxFrames).contains(frames) {
            throw ValidationError("--frames must be 1 to \(Self.maxFrames), not \(frames)")
        }
        if destination == .image, let frames, frames != 1 {
            throw ValidationError("one .png holds one frame: use --frames 1, or name a folder (e.g. frames/) for many")
        }
        let lastComponent = output.split(separator: "/").last.map(String.init) ?? output
        if destination == .folder, lastComponent.contains("."), !output.hasSuffix("/") {
            throw ValidationError("cannot tell what '\(output)' is: use .mp4 for a video, .png for one frame, or end a folder name with /")
        }
        guard fps > 0 && fps <= 1000 else { throw ValidationError("--fps must be above 0 and at most 1000, not \(fps)") }
        guard fov > 0 && fov < 180 else { throw ValidationError("--fov must be between 0 and 180 degrees, not \(fov)") }
        guard distance > 0 && distance.isFinite else { throw ValidationError("--distance must be positive, not \(distance)") }
        guard elevation.isFinite && abs(elevation) < 90 else {
            throw ValidationError("--elevation must be between -90 and 90 degrees, not \(elevation)")
        }
        guard (0...51).contains(quality) else { throw ValidationError("--quality must be 0 to 51, not \(quality)") }
        if let shDegree, !(0...GaussianCloud.maxSHDegree).contains(shDegree) {
            throw ValidationError("--sh-degree must be 0 to \(GaussianCloud.maxSHDegree), not \(shDegree)")
        }
        guard far > 0.01 else { throw ValidationError("--far must be above the near plane (0.01), not \(far)") }
        if panorama, let size, size.width != 2 * size.height {
            throw ValidationError("a panorama is twice as wide as it is high (equirectangular), not \(size.description): try --size \(2 * size.height)x\(size.height)")
        }
    }

    func run() throws {
        // Fail on a missing encoder before reading a large scene.
        if destination == .video && VideoEncoder.locateFFmpeg() == nil {
            try reportingErrors { () throws(MediaError) in throw MediaError(.encoderMissing, VideoEncoder.missingMessage) }
        }
        let source = CameraPathSource(cameraPath ?? (panorama ? "forward" : "orbit"))
        var document: CameraPathDocument?
        if case .file(let path) = source {
            document = try reportingErrors { () throws(CameraError) in try readCameraFile(path) }
        }
        let imageSize = size ?? (panorama ? Self.defaultPanoramaSize : document?.size.map { ImageSize(width: $0.width, height: $0.height) } ?? .flashWorld)
        // Refuse an impossible size before reading the scene.
        try reportingErrors { () throws(RenderError) in
            try SplatRenderer.check(RenderCamera(viewMatrix: identityView, intrinsics: [1, 0, 0, 0, 1, 0, 0, 0, 1], width: imageSize.width, height: imageSize.height))
        }

        var cloud = try reportingErrors { () throws(SplatFileError) in
            let input = try InputSource(path: scene)
            let bar = ProgressBar("reading \(scene)", enabled: !quiet)
            defer { bar.finish() }
            return try SplatFile.read(input, progress: bar.handler).0
        }
        guard cloud.count > 0 else {
            try reportingErrors { () throws(RenderError) in throw RenderError(.emptyScene, "\(scene) has no Gaussians to render") }
            return
        }
        let originalFrame = cloud.frame
        if cloud.frame != .rub { cloud = cloud.converted(to: .rub) }

        var path = try reportingErrors { () throws(CameraError) in
            try cameras(for: source, document: document, cloud: cloud, size: imageSize)
        }
        // A camera file's path into one still: its first camera, said once.
        if destination == .image && path.count > 1 && frames == nil {
            printError("note: \(output) holds one frame: rendering the first of the path's \(path.count) cameras (name a folder for all)\n")
            path = CameraPath(Array(path.cameras.prefix(1)))
        }
        if destination == .image && path.count != 1 {
            try reportingErrors { () throws(CameraError) in
                throw CameraError(.invalidValue, field: "--frames", "the path has \(path.count) cameras but one .png holds one frame: add --frames 1, or name a folder (e.g. frames/)")
            }
        }
        try render(cloud, cameras: path.cameras, size: imageSize, sceneFrame: originalFrame)
    }

    private var identityView: [Float] { [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1] }

    /// The cameras to render, in the scene's y-up (RUB) world.
    func cameras(
        for source: CameraPathSource, document: CameraPathDocument?, cloud: GaussianCloud, size: ImageSize
    ) throws(CameraError) -> CameraPath {
        let intrinsics = NormalizedIntrinsics(verticalFieldOfView: fov, width: size.width, height: size.height)
        // A still (.png) is one frame unless asked otherwise; videos and folders get the default path length.
        let count = frames ?? (destination == .image ? 1 : Self.defaultGeneratedFrames)
        let framing = SceneFraming(cloud)
        let reach = framing.viewingDistance(verticalFieldOfView: fov) * distance
        let up = SIMD3<Double>(0, 1, 0)
        // The front view: from +z, where camera 0 of a FlashWorld scene stands, raised by the elevation.
        let lift = elevation * .pi / 180
        let front = framing.center + reach * SIMD3(0, sin(lift), cos(lift))
        let base = Camera.lookingAt(framing.center, from: front, up: up, intrinsics: intrinsics)
        switch source {
        case .orbit:
            return .orbit(
                around: framing.center, radius: reach, up: up, start: SIMD3(0, 0, 1), elevation: elevation, count: count,
                intrinsics: intrinsics)
        case .spiral:
            return .spiral(from: base, radius: 0.25 * framing.radius, depth: 0.1 * reach, focus: reach, count: count)
        case .dolly:
            return .dolly(from: base, distance: 0.5 * reach, count: count)
        case .steps(let steps):
            return CameraPath.keyframes(steps, intrinsics: intrinsics).resampled(count: count)
        case .file(let file):
            guard let document else { throw CameraError(.invalidFile, "no camera file was read") }
            var cameras: [Camera]
            do {
                cameras = try document.resolvedCameras(defaultWidth: size.width, defaultHeight: size.height)
            } catch {
                throw CameraError(error.kind, camera: error.camera, field: error.field, "\(error.message) (in \(file))")
            }
            if rebase {
                cameras = normalizedCameras(cameras).camerasAtExportScale
            }
            let path = CameraPath(cameras)
            return frames.map { path.resampled(count: $0) } ?? path
        }
    }

    func render(_ cloud: GaussianCloud, cameras: [Camera], size: ImageSize, sceneFrame: CoordinateFrame) throws {
        let renderer = SplatRenderer(options: RenderOptions(background: background.rgb, shDegree: shDegree))
        let choice = DeviceChoice(device: device)
        try choice.validate()
        // Depth and panoramas are the CPU renderer's: with either, every view renders there.
        let gpu = depth || panorama ? nil : try choice.backend(quiet: quiet) as? CUDABackend
        let frames = try gpu.map { gpu in try GPUFrames(gpu: gpu, cloud: cloud, size: size, far: far, shDegree: shDegree, background: background.rgb) }
        var encoder: VideoEncoder?
        switch destination {
        case .video:
            encoder = try reportingErrors { () throws(MediaError) in
                try VideoEncoder(path: output, width: size.width, height: size.height, fps: fps, quality: quality)
            }
        case .folder:
            guard mkdir(output, 0o755) == 0 || errno == EEXIST else {
                try reportingErrors { () throws(SplatFileError) in
                    throw SplatFileError(.io, file: output, "cannot create the folder: \(String(cString: strerror(errno)))")
                }
                return
            }
        case .image: break
        }
        // Where each view's depth map goes: beside a PNG, in the frames' folder, or in a folder beside a video.
        let depthFolder = destination == .video ? String(output.dropLast(4)) + ".depth/" : nil
        if let depthFolder, depth, mkdir(depthFolder, 0o755) != 0 && errno != EEXIST {
            try reportingErrors { () throws(SplatFileError) in
                throw SplatFileError(.io, file: depthFolder, "cannot create the folder: \(String(cString: strerror(errno)))")
            }
        }
        let digits = max(4, String(cameras.count - 1).count)
        let bar = ProgressBar("rendering \(cameras.count) frames", enabled: !quiet)
        let start = monotonicSeconds()
        for (index, camera) in cameras.enumerated() {
            let rgb: [UInt8]
            var depthMap: [Float]?
            if panorama {
                let view = try reportingErrors { () throws(RenderError) in
                    try PanoramaRenderer(renderer: renderer).render(cloud, from: camera, width: size.width, height: size.height, farPlane: far)
                }
                rgb = view.rgb8()
                if depth { depthMap = view.range }
            } else if let frames {
                rgb = try reportingErrors { () throws(EngineError) in try frames.frame(index, of: cameras) }
            } else {
                let view = RenderCamera(camera, width: size.width, height: size.height, farPlane: far)
                let image = try reportingErrors { () throws(RenderError) in try renderer.render(cloud, camera: view) }
                rgb = image.rgb8()
                if depth { depthMap = image.expectedDepth }
            }
            let name = String(index)
            let frameName = "frame_" + String(repeating: "0", count: max(0, digits - name.count)) + name
            if let depthMap {
                let file =
                    destination == .image
                    ? String(output.dropLast(4)) + ".depth.pfm"
                    : (depthFolder ?? (output.hasSuffix("/") ? output : output + "/")) + frameName + ".depth.pfm"
                let pfm = try reportingErrors { () throws(MediaError) in try PFMEncoder.encode(width: size.width, height: size.height, values: depthMap) }
                try reportingErrors { () throws(SplatFileError) in try writeOutput(pfm, to: file) }
            }
            switch destination {
            case .video:
                try reportingErrors { () throws(MediaError) in try encoder?.append(rgb: rgb) }
            case .image, .folder:
                let png = try reportingErrors { () throws(MediaError) in
                    try PNGEncoder.encode(width: size.width, height: size.height, channels: 3, pixels: rgb)
                }
                let file = destination == .image ? output : (output.hasSuffix("/") ? output : output + "/") + frameName + ".png"
                try reportingErrors { () throws(SplatFileError) in try writeOutput(png, to: file) }
            }
            bar.update(Int64(index + 1), Int64(cameras.count))
        }
        try reportingErrors { () throws(MediaError) in try encoder?.finish() }
        bar.finish()
        if !quiet {
            let seconds = monotonicSeconds() - start
            let rate = Double(cameras.count) / max(seconds, 1e-9)
            let turned = sceneFrame == .rub ? "" : " (turned from \(sceneFrame) to y-up RUB)"
            print(
                "rendered \(cameras.count) frame\(cameras.count == 1 ? "" : "s") at \(size.description) in \(formatted(Float(seconds))) s (\(formatted(Float(rate))) fps): \(output)\(turned)"
            )
        }
    }
}

/// Frames rendered on the GPU, a batch of views at a time: the scene uploaded once as rows (position, opacity,
/// scale, rotation, SH), each batch read back as 8-bit RGB.
final class GPUFrames {
    let gpu: CUDABackend
    let rows: Tensor
    let size: ImageSize
    let far: Float
    let shDegree: Int?
    let background: SIMD3<Float>
    static let batch = 8
    private var cached: (first: Int, frames: [[UInt8]])?

    init(gpu: CUDABackend, cloud: GaussianCloud, size: ImageSize, far: Float, shDegree: Int?, background: SIMD3<Float>) throws {
        self.gpu = gpu
        self.size = size
        self.far = far
        self.shDegree = shDegree
        self.background = background
        let stride = 11 + cloud.shStride
        var values = [Float](repeating: 0, count: cloud.count * stride)
        for i in 0..<cloud.count {
            let row = i * stride
            for k in 0..<3 {
                values[row + k] = cloud.positions[3 * i + k]
                values[row + 4 + k] = expf(cloud.logScales[3 * i + k])
            }
            values[row + 3] = sigmoid(cloud.logitOpacities[i])
            for k in 0..<4 { values[row + 7 + k] = cloud.rotations[4 * i + k] }
            for k in 0..<cloud.shStride { values[row + 11 + k] = cloud.sh[cloud.shStride * i + k] }
        }
        rows = try gpu.upload(try Tensor(values, shape: [cloud.count, stride]))
    }

    /// Frame `index` of `cameras`, rendering the batch it belongs to when it is not the one at hand.
    func frame(_ index: Int, of cameras: [Camera]) throws(EngineError) -> [UInt8] {
        if let cached, (cached.first..<(cached.first + cached.frames.count)).contains(index) { return cached.frames[index - cached.first] }
        let first = index, count = min(Self.batch, cameras.count - index)
        let views = CUDAViewRenderer.views(Array(cameras[first..<(first + count)]), width: size.width, height: size.height, farPlane: far)
        let planes = try gpu.readFloats(
            try gpu.rasterize(
                rows, views: views, width: size.width, height: size.height, shDegree: shDegree,
                background: (background.x, background.y, background.z)
            ).rgb)
        let plane = size.width * size.height
        let frames = (0..<count).map { v in
            (0..<(3 * plane)).map { k -> UInt8 in
                let value = planes[(v * 3 + k % 3) * plane + k / 3]
                return value.isNaN ? 0 : UInt8((min(max(value, 0), 1) * 255).rounded())
            }
        }
        cached = (first, frames)
        return frames[0]
    }
}
