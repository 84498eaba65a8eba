import Cameras
import SplatCore

#if canImport(Glibc)
    import Glibc
#endif

/// A splat scene as a triangle mesh: RGB and depth rendered from views that cover it, fused into a TSDF
/// (`TSDFVolume`), and its zero surface extracted. Splats are thin sheets that look the same from both sides, and a
/// field fused from both sides of a sheet averages to noise, so the views come from one side: from inside (the cube
/// views at the scene's first camera, where a FlashWorld scene was generated looking out at its surroundings, and at its
/// centre) or from outside (views from 26 directions looking in, for an object).
public struct SceneMesher: Sendable {
    public struct Options: Sendable {
        /// Voxels along the grid's longest side (the others in proportion).
        public var resolution: Int = 192
        /// Truncation, in voxels.
        public var truncationVoxels: Float = 4
        /// Side of each view rendered for the fusion.
        public var viewSize: Int = 384
        /// Pixels whose coverage is below this carry no depth.
        public var minimumAlpha: Float = 0.5
        public var viewpoint: Viewpoint = .automatic
        /// Cameras that saw the scene from free space (the path it was generated along, in its frame): their views
        /// are fused beside the automatic spread.
        public var pathViews: [Camera] = []
        public init() {}
    }

    /// Where the views look from; automatic: from inside when the first camera (the origin) lies inside the scene's
    /// box, as in a FlashWorld scene, else from outside.
    public enum Viewpoint: String, Sendable, CaseIterable {
        case automatic = "auto", inside, outside
    }

    public let options: Options
    public let renderer: SplatRenderer

    public init(options: Options = Options(), renderer: SplatRenderer = SplatRenderer()) {
        self.options = options
        self.renderer = renderer
    }

    /// The box the grid spans: the 2nd to 98th percentile of the reasonably opaque Gaussians along each axis, padded by
    /// a tenth (generated scenes have floaters far out), holding the first camera's position when `holdingOrigin`.
    public static func bounds(of cloud: GaussianCloud, holdingOrigin: Bool = true) -> (lower: SIMD3<Float>, upper: SIMD3<Float>) {
        let picked = SceneFraming.sample(cloud)
        guard !picked.isEmpty else { return (SIMD3(repeating: -1), SIMD3(repeating: 1)) }
        var lower = SIMD3<Float>.zero, upper = SIMD3<Float>.zero
        for axis in 0..<3 {
            let values = picked.map { cloud.positions[3 * $0 + axis] }.sorted()
            lower[axis] = values[values.count * 2 / 100]
            upper[axis] = values[min(values.count - 1, values.count * 98 / 100)]
            if holdingOrigin { (lower[axis], upper[axis]) = (min(lower[axis], 0), max(upper[axis], 0)) }
        }
        let pad = 0.1 * (upper - lower) + SIMD3(repeating: 1e-3)
        return (lower - pad, upper + pad)
    }

    /// The most views of a generation path fused: its cameras are close together, and each view costs a render.
    static let maxPathViews = 8

    /// How far off its axis an inside view is fused: 38 degrees, just past the 35.3 that the 26 directions need to
    /// cover every ray.
    static let insideTangent: Float = 0.78

    /// The side the views take for `cloud`.
    public func viewpoint(for cloud: GaussianCloud) -> Viewpoint {
        guard options.viewpoint == .automatic else { return options.viewpoint }
        let (lower, upper) = Self.bounds(of: cloud)
        // Inside: the origin well within the box (not on the padding), as a FlashWorld scene's camera #0 is.
        let margin = 0.15 * (upper - lower)
        let inner = (lower + margin, upper - margin)
        let inside = (0..<3).allSatisfy { inner.0[$0] < 0 && 0 < inner.1[$0] }
        return inside ? .inside : .outside
    }

    /// The views the scene is fused from.
    public func views(for cloud: GaussianCloud) -> [RenderCamera] {
        let framing = SceneFraming(cloud)
        let size = options.viewSize
        var cameras: [RenderCamera] = []
        let inside = viewpoint(for: cloud) == .inside
        // Towards (or, from outside, from) the 26 neighbours of a cube's centre: every surface of a room or a box has a
        // view facing it. Inside: 90-degree views at the first camera and at the scene's centre, each fused only within
        // `insideTangent` of its axis (together they cover every direction). Outside: 60-degree views at twice the
        // distance that frames the object, so that the free space around it is seen too.
        let directions = (-1...1).flatMap { i in (-1...1).flatMap { j in (-1...1).map { k in SIMD3(Double(i), Double(j), Double(k)) } } }
            .filter { $0 != .zero }
        let intrinsics = inside
            ? NormalizedIntrinsics(fx: 0.5, fy: 0.5, cx: 0.5, cy: 0.5) : NormalizedIntrinsics(verticalFieldOfView: 60, width: size, height: size)
        let reach = 2 * framing.viewingDistance(verticalFieldOfView: 60)
        for position in inside ? [SIMD3<Double>.zero, framing.center] : [framing.center] {
            for direction in directions {
                let unit = direction / (direction * direction).sum().squareRoot()
                let up = direction.x == 0 && direction.z == 0 ? SIMD3<Double>(0, 0, -1) : SIMD3<Double>(0, 1, 0)
                let camera =
                    inside
                    ? Camera.lookingAt(position + unit, from: position, up: up, intrinsics: intrinsics)
                    : Camera.lookingAt(position, from: position + reach * unit, up: up, intrinsics: intrinsics)
                cameras.append(RenderCamera(camera, width: size, height: size))
            }
        }
        // At most `maxPathViews` of the path, evenly spread; square pixels at its own aspect (held to 1:4 to 4:1, so an
        // odd camera cannot ask for a huge image), `viewSize` wide.
        let path = options.pathViews
        let picked = path.count <= Self.maxPathViews ? Array(path.indices) : (0..<Self.maxPathViews).map { $0 * (path.count - 1) / (Self.maxPathViews - 1) }
        for camera in picked.map({ path[$0] }) {
            let aspect = min(max(camera.intrinsics.fx / camera.intrinsics.fy, 0.25), 4)
            guard aspect.isFinite else { continue }
            cameras.append(RenderCamera(camera, width: size, height: max(8, Int((Double(size) * aspect).rounded()))))
        }
        return cameras
    }

    /// The fused field of `cloud` (positions in its own frame and units); `progress` gets (views done, views).
    public func fuse(_ cloud: GaussianCloud, progress: (Int, Int) -> Void = { _, _ in }) throws(RenderError) -> TSDFVolume {
        guard cloud.count > 0 else { throw RenderError(.emptyScene, "the scene has no Gaussians to mesh") }
        guard (16...1024).contains(options.resolution) else {
            throw RenderError(.invalidSize, "the mesh resolution must be 16 to 1024 voxels along the longest side, not \(options.resolution)")
        }
        // Inside views stand at the origin, so the grid holds it; an object seen from outside gets a grid of its own.
        let (lower, upper) = Self.bounds(of: cloud, holdingOrigin: viewpoint(for: cloud) == .inside)
        let extent = upper - lower
        let voxel = extent.max() / Float(options.resolution - 1)
        let dimensions = SIMD3<Int32>((extent / voxel).rounded(.up)) &+ 1
        var volume = try TSDFVolume(origin: lower, voxelSize: voxel, dimensions: dimensions, truncation: options.truncationVoxels * voxel)
        let cameras = views(for: cloud)
        let tangent: Float = viewpoint(for: cloud) == .inside ? Self.insideTangent : .infinity
        for (k, camera) in cameras.enumerated() {
            let image = try renderer.render(cloud, camera: camera)
            volume.integrate(image, camera: camera, minimumAlpha: options.minimumAlpha, maximumTangent: tangent)
            progress(k + 1, cameras.count)
        }
        return volume
    }

    /// A collider's triangle budget unless one is asked for: enough for game physics, light enough to cook.
    public static let defaultColliderTriangles = 150_000

    /// A collider: the field halved until its surface has at most `triangles` triangles (coarser grids give smoother
    /// surfaces with fewer triangles), closed (unobserved space counts as empty), without colours.
    public static func collider(from volume: TSDFVolume, triangles: Int) throws(RenderError) -> TriangleMesh {
        var field = volume
        var mesh = field.extractSurface(closingUnobserved: true)
        while mesh.triangleCount > triangles && min(field.dimensions.x, field.dimensions.y, field.dimensions.z) >= 8 {
            field = try field.halved()
            mesh = field.extractSurface(closingUnobserved: true)
        }
        mesh.colours = []
        return mesh
    }
}
