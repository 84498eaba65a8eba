import ArgumentParser
import EngineCUDA
import EngineCore
import Cameras
import SplatCore
import SplatIO
import SplatRender

#if canImport(Glibc)
    import Glibc
#endif

struct RenderBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "render",
        abstract: "Frames per second of the CPU renderer on FlashWorld-like scenes.",
        discussion: helpText(
            """
            Each scene is built like a FlashWorld output: 24 cameras along a short path, two layers of pixel-aligned
            Gaussians per camera on a 352x240-shaped grid (scaled to --counts), about two pixels wide at the render
            size, mostly opaque. Every frame is rendered from one of those 24 cameras, as the 3D feedback loop does.
            Reports the best of --repeat passes over the cameras, and the share of time per stage. With --dir, the
            scenes (render-COUNT.ply) and cameras (render-cameras.json) are written there so that a peer
            (tools/bench/render_peer_gsplat.py runs gsplat on a GPU) renders the same thing.
            """))

    @Option(help: "Scene sizes in Gaussians, comma separated.")
    var counts = "100000,1000000,4055040"

    @Option(help: "Render size, WIDTHxHEIGHT.")
    var size = ImageSize.flashWorld

    @Option(help: "Passes over the 24 cameras; the best is reported.")
    var `repeat` = 2

    @Flag(help: "Print JSON lines instead of a table.")
    var json = false

    @Option(help: "Also write the scenes and cameras into this folder, for peers.")
    var dir: String?

    @Option(help: "cpu (the default), or cuda: all 24 views in one batched GPU rasterization, timed with CUDA events.")
    var device = "cpu"

    func validate() throws {
        guard `repeat` > 0 else { throw ValidationError("--repeat must be positive") }
        guard parsedCounts != nil else { throw ValidationError("--counts must be positive integers separated by commas") }
    }

    var parsedCounts: [Int]? {
        let values = counts.split(separator: ",").map { Int($0.filter { $0 != " " }) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) > 0 }) else { return nil }
        return values.compactMap { $0 }
    }

    func run() throws {
        let cameras = Self.flashWorldPath(width: size.width, height: size.height)
        if !json {
            print("diorama bench render: \(size.description), 24 cameras, best of \(`repeat`), \(activeProcessorCountDescription)")
        }
        if let dir {
            mkdir(dir, 0o755)
            let document = CameraPathDocument(cameras, width: size.width, height: size.height)
            try reportingErrors { () throws(SplatFileError) in
                try writeOutput(document.jsonBytes(), to: "\(dir)/render-cameras.json")
            }
        }
        if device != "cpu" {
            let choice = DeviceChoice(device: device)
            try choice.validate()
            let gpu = try choice.backend() as? CUDABackend
            guard let gpu else { throw ValidationError("--device must be cpu or cuda") }
            for requested in parsedCounts ?? [] {
                let cloud = Self.pixelAlignedScene(count: requested, cameras: cameras)
                let frames = try GPUFrames(gpu: gpu, cloud: cloud, size: size, far: RenderCamera.defaultFarPlane, shDegree: nil, background: SIMD3(1, 1, 1))
                let views = CUDAViewRenderer.views(cameras, width: size.width, height: size.height, farPlane: RenderCamera.defaultFarPlane)
                var best = Double.infinity
                for _ in 0...`repeat` {  // the first pass warms up
                    let milliseconds = try gpu.measure {
                        _ = try gpu.rasterize(frames.rows, views: views, width: size.width, height: size.height)
                    }
                    best = min(best, milliseconds)
                }
                if json {
                    print(#"{"device":"\#(gpu.name)","gaussians":\#(cloud.count),"views":24,"ms":\#(String(format: "%.2f", best))}"#)
                } else {
                    print("\(cloud.count) Gaussians, 24 views on \(gpu.name): \(String(format: "%.2f", best)) ms (\(String(format: "%.2f", best / 24)) ms a view)")
                }
            }
            return
        }
        for requested in parsedCounts ?? [] {
            let cloud = Self.pixelAlignedScene(count: requested, cameras: cameras)
            if let dir {
                try reportingErrors { () throws(SplatFileError) in
                    try SplatFile.write(cloud, toPath: "\(dir)/render-\(requested).ply", durable: false)
                }
            }
            let options = RenderOptions()
            var best = Double.infinity
            var stages = (project: 0.0, bin: 0.0, rasterize: 0.0)
            var overlaps = 0
            for _ in 0..<`repeat` {
                var times = (project: 0.0, bin: 0.0, rasterize: 0.0)
                let start = monotonicSeconds()
                for camera in cameras {
                    let view = RenderCamera(camera, width: size.width, height: size.height)
                    let t0 = monotonicSeconds()
                    let projected = GaussianProjection.project(cloud, camera: view, options: options)
                    let t1 = monotonicSeconds()
                    let bins = try reportingErrors { () throws(RenderError) in
                        try TileBinning.bin(projected, width: size.width, height: size.height)
                    }
                    let t2 = monotonicSeconds()
                    _ = Rasterizer.rasterize(projected, bins: bins, width: size.width, height: size.height, options: options)
                    let t3 = monotonicSeconds()
                    times.project += t1 - t0
                    times.bin += t2 - t1
                    times.rasterize += t3 - t2
                    overlaps += bins.intersectionCount
                }
                let elapsed = monotonicSeconds() - start
                if elapsed < best {
                    best = elapsed
                    stages = times
                }
            }
            let fps = Double(cameras.count) / best
            let perFrame = Double(overlaps) / Double(cameras.count * `repeat`)
            if json {
                print(
                    "{\"tool\": \"diorama\", \"op\": \"render\", \"gaussians\": \(cloud.count), \"width\": \(size.width), \"height\": \(size.height), \"fps\": \(fps), \"project_s\": \(stages.project), \"bin_s\": \(stages.bin), \"rasterize_s\": \(stages.rasterize), \"overlaps_per_frame\": \(Int(perFrame))}"
                )
            } else {
                let total = stages.project + stages.bin + stages.rasterize
                func share(_ x: Double) -> String { "\(Int((100 * x / total).rounded()))%" }
                print(
                    "\(cloud.count) Gaussians: \(formatted(Float(fps))) fps (\(formatted(Float(1000 / fps))) ms/frame; project \(share(stages.project)), bin \(share(stages.bin)), rasterize \(share(stages.rasterize)); \(Int(perFrame)) overlaps/frame)"
                )
            }
        }
    }

    private var activeProcessorCountDescription: String {
        "\(sysconf(Int32(_SC_NPROCESSORS_ONLN))) cores"
    }

    /// 24 cameras like a FlashWorld request: forward, then orbiting left, intrinsics for a 60° vertical view.
    static func flashWorldPath(width: Int, height: Int) -> [Camera] {
        let intrinsics = NormalizedIntrinsics(verticalFieldOfView: 60, width: width, height: height)
        return CameraPath.keyframes([.forward, .orbitLeft, .orbitLeft], intrinsics: intrinsics).resampled(count: 24).cameras
    }

    /// About `count` Gaussians: for each camera two layers on a 352:240 grid, each on a smooth random surface 2-4
    /// units away and as wide as two render pixels.
    static func pixelAlignedScene(count: Int, cameras: [Camera]) -> GaussianCloud {
        let perLayer = max(1, count / (2 * cameras.count))
        let rows = max(1, Int((Double(perLayer) * 240 / 352).squareRoot().rounded()))
        let columns = max(1, perLayer / rows)
        var cloud = GaussianCloud(count: 2 * cameras.count * rows * columns, shDegree: 2, frame: .rub)
        var state: UInt64 = 0x2545_F491_4F6C_DD1D
        func random() -> Float {
            state ^= state >> 12
            state ^= state << 25
            state ^= state >> 27
            return Float((state &* 0x2545_F491_4F6C_DD1D) >> 40) / Float(1 << 24)
        }
        var i = 0
        for camera in cameras {
            let grid = RayGrid(camera: camera, width: columns, height: rows)
            let pixelAngle = Float(1 / (camera.intrinsics.fy * Double(rows)))
            for layer in 0..<2 {
                for p in 0..<(rows * columns) {
                    let (u, v) = (Float(p % columns) / Float(columns), Float(p / columns) / Float(rows))
                    let depth = 3 + 0.8 * sinf(6 * u + 2 * v) * cosf(5 * v) + 0.05 * Float(layer) + 0.02 * random()
                    for k in 0..<3 {
                        cloud.positions[3 * i + k] = grid.origins[3 * p + k] + depth * grid.directions[3 * p + k]
                        cloud.logScales[3 * i + k] = logf(depth * pixelAngle * (0.6 + 0.4 * random()))
                        cloud.sh[27 * i + k] = (random() - 0.5) * 3
                    }
                    for k in 0..<4 { cloud.rotations[4 * i + k] = random() - 0.5 }
                    for k in 3..<27 { cloud.sh[27 * i + k] = (random() - 0.5) * 0.2 }
                    cloud.logitOpacities[i] = layer == 0 ? 1 + 3 * random() : -2 + 4 * random()
                    i += 1
                }
            }
        }
        return cloud
    }
}
