#if canImport(Glibc)
    import Glibc
#endif

/// Intrinsics divided by the image size (`fx/W, fy/H, cx/W, cy/H`), so one camera serves every grid it is sampled
/// on: the raymap, the Gaussian head and the renderer (`flashworld-model.md` §11.1).
public struct NormalizedIntrinsics: Equatable, Sendable {
    public var fx: Double
    public var fy: Double
    public var cx: Double
    public var cy: Double

    public init(fx: Double, fy: Double, cx: Double, cy: Double) {
        self.fx = fx
        self.fy = fy
        self.cx = cx
        self.cy = cy
    }

    /// Pinhole intrinsics with a vertical field of view and the principal point at the centre, as the reference UI
    /// builds them: `fx = fy = 0.5·H / tan(fov/2)` in pixels.
    public init(verticalFieldOfView degrees: Double, width: Int, height: Int) {
        let f = 0.5 * Double(height) / tan(0.5 * degrees * .pi / 180)
        self.init(fx: f / Double(width), fy: f / Double(height), cx: 0.5, cy: 0.5)
    }

    public func inPixels(width: Int, height: Int) -> PixelIntrinsics {
        let (w, h) = (Double(width), Double(height))
        return PixelIntrinsics(fx: fx * w, fy: fy * h, cx: cx * w, cy: cy * h)
    }

    /// The vertical field of view in degrees.
    public var verticalFieldOfView: Double { 2 * atan(0.5 / fy) * 180 / .pi }
}

/// Pinhole intrinsics in pixels.
public struct PixelIntrinsics: Equatable, Sendable {
    public var fx: Double
    public var fy: Double
    public var cx: Double
    public var cy: Double

    public init(fx: Double, fy: Double, cx: Double, cy: Double) {
        self.fx = fx
        self.fy = fy
        self.cx = cx
        self.cy = cy
    }

    /// `K` in row-major order.
    public var matrix: [Double] { [fx, 0, cx, 0, fy, cy, 0, 0, 1] }

    public func normalized(width: Int, height: Int) -> NormalizedIntrinsics {
        let (w, h) = (Double(width), Double(height))
        return NormalizedIntrinsics(fx: fx / w, fy: fy / h, cx: cx / w, cy: cy / h)
    }
}

/// A pinhole camera in FlashWorld's convention: the camera-to-world rotation and the camera centre in world
/// coordinates, with OpenGL camera axes (+x right, +y up, looking down −z), and normalised intrinsics.
///
/// The 11-value vector `[qw qx qy qz px py pz fx/W fy/H cx/W cy/H]` is its serialised form (`flashworld-model.md`
/// §11.1). Renderers that use OpenCV axes get `openCVWorldToCamera` (§9).
public struct Camera: Equatable, Sendable {
    /// Camera-to-world rotation. It need not be normalised: every conversion uses `2/|q|²`, as the reference does.
    public var orientation: Quaternion
    /// The camera centre in world coordinates.
    public var position: SIMD3<Double>
    public var intrinsics: NormalizedIntrinsics

    public init(orientation: Quaternion, position: SIMD3<Double>, intrinsics: NormalizedIntrinsics) {
        self.orientation = orientation
        self.position = position
        self.intrinsics = intrinsics
    }

    public static let vectorLength = 11

    /// From the 11-value camera vector; checked (see `validated`).
    public init(vector v: [Double], index: Int? = nil) throws(CameraError) {
        guard v.count == Self.vectorLength else {
            throw CameraError(.invalidValue, camera: index, field: "vector", "has \(v.count) values; expected 11")
        }
        try self.init(
            orientation: Quaternion(w: v[0], x: v[1], y: v[2], z: v[3]), position: SIMD3(v[4], v[5], v[6]),
            intrinsics: NormalizedIntrinsics(fx: v[7], fy: v[8], cx: v[9], cy: v[10]), index: index)
    }

    /// A checked camera: finite values, a non-zero quaternion and positive focal lengths.
    public init(
        orientation: Quaternion, position: SIMD3<Double>, intrinsics: NormalizedIntrinsics, index: Int?
    ) throws(CameraError) {
        self.init(orientation: orientation, position: position, intrinsics: intrinsics)
        try validate(index: index)
    }

    public var vector: [Double] {
        orientation.wxyz + [position.x, position.y, position.z, intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy]
    }

    /// Throws when the camera cannot be used: a value that is not finite, a zero quaternion, or a focal length that
    /// is not positive. `index` names the camera in the message.
    public func validate(index: Int? = nil) throws(CameraError) {
        for (name, value) in [("qw", orientation.w), ("qx", orientation.x), ("qy", orientation.y), ("qz", orientation.z)]
        where !value.isFinite {
            throw CameraError(.nonFinite, camera: index, field: "quaternion.\(name)", "is \(value)")
        }
        // Below this, 2/|q|² overflows the rotation matrix into infinities.
        guard orientation.lengthSquared > 1e-12 && orientation.lengthSquared.isFinite else {
            throw CameraError(.degenerate, camera: index, field: "quaternion", "is zero or too large; a rotation needs a non-zero, finite quaternion")
        }
        for (name, value) in [("x", position.x), ("y", position.y), ("z", position.z)] where !value.isFinite {
            throw CameraError(.nonFinite, camera: index, field: "position.\(name)", "is \(value)")
        }
        for (name, value) in [("fx", intrinsics.fx), ("fy", intrinsics.fy), ("cx", intrinsics.cx), ("cy", intrinsics.cy)]
        where !value.isFinite {
            throw CameraError(.nonFinite, camera: index, field: name, "is \(value)")
        }
        for (name, value) in [("fx", intrinsics.fx), ("fy", intrinsics.fy)] where !(value > 0) {
            throw CameraError(.degenerate, camera: index, field: name, "is \(value); focal lengths must be positive")
        }
        // In image sizes: 0.001 to 1000 is a field of view between about 179.9° and 0.06°; outside it the projection
        // overflows or every Gaussian lands on one pixel.
        for (name, value) in [("fx", intrinsics.fx), ("fy", intrinsics.fy)] where !(1e-3...1e3).contains(value) {
            throw CameraError(
                .degenerate, camera: index, field: name, "is \(value) image sizes; a usable focal length is 0.001 to 1000 times the image size")
        }
    }

    /// Camera-to-world with OpenGL camera axes: `[R(q) | p]`.
    public var cameraToWorld: RigidTransform { RigidTransform(rotation: orientation.rotationMatrix, translation: position) }

    /// Camera-to-world with OpenCV camera axes (+y down, looking down +z): columns 1 and 2 of the rotation negated,
    /// as FlashWorld's renderer does before calling gsplat.
    public var openCVCameraToWorld: RigidTransform {
        var c2w = cameraToWorld
        for row in 0..<3 {
            c2w.rotation[row, 1] = -c2w.rotation[row, 1]
            c2w.rotation[row, 2] = -c2w.rotation[row, 2]
        }
        return c2w
    }

    /// The view matrix gsplat takes: world to OpenCV camera.
    public var openCVWorldToCamera: RigidTransform { openCVCameraToWorld.inverse }

    /// The unit viewing direction in world coordinates (the camera's −z axis).
    public var forward: SIMD3<Double> { normalized(orientation.rotated(SIMD3(0, 0, -1))) }

    /// A camera at `position` looking at `target`, with `up` kept upright (no roll), OpenGL axes.
    public static func lookingAt(
        _ target: SIMD3<Double>, from position: SIMD3<Double>, up: SIMD3<Double>, intrinsics: NormalizedIntrinsics
    ) -> Camera {
        let back = normalized(position - target)
        var right = cross(up, back)
        // Looking straight along `up`: any right vector perpendicular to the view will do.
        if length(right) < 1e-9 { right = cross(abs(back.x) < 0.9 ? SIMD3(1, 0, 0) : SIMD3(0, 1, 0), back) }
        right = normalized(right)
        let trueUp = cross(back, right)
        let rotation = Matrix3(columns: right, trueUp, back)
        return Camera(orientation: Quaternion(rotationMatrix: rotation), position: position, intrinsics: intrinsics)
    }
}

/// Why a camera or camera path was refused, naming the camera (0-based) and field.
public struct CameraError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// NaN or infinity.
        case nonFinite
        /// A zero quaternion, a focal length that is not positive, coincident look-at points.
        case degenerate
        /// A value of the wrong kind or count, or an empty path.
        case invalidValue
        /// A camera file that is not valid JSON of the expected shape.
        case invalidFile
    }

    public var kind: Kind
    public var camera: Int?
    public var field: String?
    public var message: String

    public init(_ kind: Kind, camera: Int? = nil, field: String? = nil, _ message: String) {
        self.kind = kind
        self.camera = camera
        self.field = field
        self.message = message
    }

    public var description: String {
        var parts: [String] = []
        if let camera { parts.append("camera \(camera)") }
        if let field { parts.append(field) }
        return parts.isEmpty ? message : parts.joined(separator: ": ") + " " + message
    }
}
