import Cameras

/// A pinhole camera as the rasterizer takes it, gsplat's way: a world-to-camera map with OpenCV axes (+x right,
/// +y down, looking down +z), intrinsics in pixels, an image size and depth limits. All float, like the reference.
public struct RenderCamera: Sendable, Equatable {
    /// World-to-camera rotation, by rows.
    public var rotation: (SIMD3<Float>, SIMD3<Float>, SIMD3<Float>)
    public var translation: SIMD3<Float>
    public var fx: Float
    public var fy: Float
    public var cx: Float
    public var cy: Float
    public var width: Int
    public var height: Int
    /// Gaussians whose camera-space depth is outside `nearPlane...farPlane` are culled.
    public var nearPlane: Float
    public var farPlane: Float

    /// gsplat's defaults; FlashWorld passes a far plane of 1000.
    public static let defaultNearPlane: Float = 0.01
    public static let defaultFarPlane: Float = 1e10

    /// From a row-major 4x4 world-to-camera matrix (OpenCV axes) and a row-major 3x3 `K`.
    public init(
        viewMatrix m: [Float], intrinsics k: [Float], width: Int, height: Int,
        nearPlane: Float = defaultNearPlane, farPlane: Float = defaultFarPlane
    ) {
        precondition(m.count == 16 && k.count == 9, "a view matrix has 16 values and K has 9")
        rotation = (SIMD3(m[0], m[1], m[2]), SIMD3(m[4], m[5], m[6]), SIMD3(m[8], m[9], m[10]))
        translation = SIMD3(m[3], m[7], m[11])
        (fx, fy, cx, cy) = (k[0], k[4], k[2], k[5])
        self.width = width
        self.height = height
        self.nearPlane = nearPlane
        self.farPlane = farPlane
    }

    /// The OpenCV view of a FlashWorld camera (OpenGL axes, normalised intrinsics) at `width` × `height`, as
    /// FlashWorld's renderer builds it (`flashworld-model.md` §9).
    public init(
        _ camera: Camera, width: Int, height: Int, nearPlane: Float = defaultNearPlane,
        farPlane: Float = defaultFarPlane
    ) {
        let view = camera.openCVWorldToCamera
        let k = camera.intrinsics.inPixels(width: width, height: height)
        self.init(
            viewMatrix: view.matrix4.map { Float($0) }, intrinsics: k.matrix.map { Float($0) }, width: width,
            height: height, nearPlane: nearPlane, farPlane: farPlane)
    }

    /// The camera centre in world coordinates: `−Rᵀ t`.
    public var center: SIMD3<Float> {
        let (r0, r1, r2) = rotation
        let t = translation
        return -(r0 * t.x + r1 * t.y + r2 * t.z)
    }

    /// World to camera coordinates.
    @inlinable func toCamera(_ p: SIMD3<Float>) -> SIMD3<Float> {
        // Summed left to right, as gsplat does: depth ties between splats then break the same way.
        @inline(__always) func row(_ r: SIMD3<Float>, _ t: Float) -> Float { ((r.x * p.x + r.y * p.y) + r.z * p.z) + t }
        return SIMD3(row(rotation.0, translation.x), row(rotation.1, translation.y), row(rotation.2, translation.z))
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.rotation.0 == b.rotation.0 && a.rotation.1 == b.rotation.1 && a.rotation.2 == b.rotation.2
            && a.translation == b.translation && a.fx == b.fx && a.fy == b.fy && a.cx == b.cx && a.cy == b.cy
            && a.width == b.width && a.height == b.height && a.nearPlane == b.nearPlane && a.farPlane == b.farPlane
    }
}
