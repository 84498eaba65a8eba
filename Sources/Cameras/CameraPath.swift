#if canImport(Glibc)
    import Glibc
#endif

/// An ordered list of cameras: keyframes to author, or the dense path a model or renderer consumes.
public struct CameraPath: Equatable, Sendable {
    public var cameras: [Camera]

    public init(_ cameras: [Camera]) { self.cameras = cameras }

    public var count: Int { cameras.count }

    /// The path resampled to `count` cameras at `t = i/(count−1)` (`sample_from_dense_cameras`,
    /// `flashworld-model.md` §11.4): slerped rotations, lerped positions and intrinsics. A single camera repeats.
    public func resampled(count: Int) -> CameraPath {
        precondition(count >= 0, "a camera count cannot be negative")
        guard count > 0, let first = cameras.first else { return CameraPath([]) }
        if cameras.count == 1 || count == 1 {
            return CameraPath(Array(repeating: first, count: count))
        }
        let n = Double(cameras.count - 1)
        return CameraPath(
            (0..<count).map { i in
                let t = Double(i) / Double(count - 1)
                let left = min(max(Int((t * n).rounded(.down)), 0), cameras.count - 2)
                return Self.interpolated(cameras[left], cameras[left + 1], t * n - Double(left))
            })
    }

    /// The camera a fraction `t` of the way from `a` to `b`.
    public static func interpolated(_ a: Camera, _ b: Camera, _ t: Double) -> Camera {
        func lerp(_ x: Double, _ y: Double) -> Double { (1 - t) * x + t * y }
        let k = NormalizedIntrinsics(
            fx: lerp(a.intrinsics.fx, b.intrinsics.fx), fy: lerp(a.intrinsics.fy, b.intrinsics.fy),
            cx: lerp(a.intrinsics.cx, b.intrinsics.cx), cy: lerp(a.intrinsics.cy, b.intrinsics.cy))
        return Camera(
            orientation: Quaternion.slerp(a.orientation, b.orientation, t), position: (1 - t) * a.position + t * b.position,
            intrinsics: k)
    }
}

// MARK: - The reference UI's templates

/// One press of a template button in FlashWorld's web UI (`index.html` L1724-1904): a new keyframe derived from the
/// last one.
public enum PathStep: String, CaseIterable, Sendable {
    /// 0.5 along world −z, same rotation.
    case forward
    /// 0.5 along world +z.
    case backward
    /// 0.5 along world −x.
    case left
    /// 0.5 along world +x.
    case right
    /// 15° to the left on a circle of radius 1 around the point 1 unit in front of the last camera, looking at it.
    case orbitLeft = "orbit-left"
    /// 15° to the right, likewise.
    case orbitRight = "orbit-right"

    public static let moveDistance = 0.5
    public static let orbitDegrees = 15.0
    public static let orbitRadius = 1.0
}

extension CameraPath {
    /// Appends the keyframe a template button would add. An empty path starts from camera #0: the origin, no
    /// rotation, with `intrinsics`.
    public mutating func append(_ step: PathStep, intrinsics: NormalizedIntrinsics) {
        let last = cameras.last ?? Camera(orientation: .identity, position: .zero, intrinsics: intrinsics)
        if cameras.isEmpty { cameras.append(last) }
        var next = last
        let d = PathStep.moveDistance
        switch step {
        case .forward: next.position.z -= d
        case .backward: next.position.z += d
        case .left: next.position.x -= d
        case .right: next.position.x += d
        case .orbitLeft, .orbitRight:
            let angle = (step == .orbitLeft ? -1 : 1) * PathStep.orbitDegrees * .pi / 180
            let target = last.position + last.orientation.rotated(SIMD3(0, 0, -1))
            let local = PathStep.orbitRadius * SIMD3(sin(angle), 0, cos(angle))
            next.position = target + last.orientation.rotated(local)
            next.orientation = Quaternion(rotating: SIMD3(0, 0, -1), onto: normalized(target - next.position))
        }
        cameras.append(next)
    }

    /// The keyframes a sequence of template presses makes, starting from camera #0.
    public static func keyframes(_ steps: [PathStep], intrinsics: NormalizedIntrinsics) -> CameraPath {
        var path = CameraPath([Camera(orientation: .identity, position: .zero, intrinsics: intrinsics)])
        for step in steps { path.append(step, intrinsics: intrinsics) }
        return path
    }

    /// The path moved rigidly so that its first camera takes `orientation` and `position` (the others keep their
    /// pose relative to it): template steps from any pose, not only from camera #0.
    public func startingAt(orientation: Quaternion, position: SIMD3<Double>) -> CameraPath {
        guard let first = cameras.first else { return self }
        let toStart = orientation.normalized * first.orientation.normalized.conjugate
        return CameraPath(
            cameras.map { camera in
                var moved = camera
                moved.orientation = toStart * camera.orientation
                moved.position = position + toStart.rotated(camera.position - first.position)
                return moved
            })
    }
}

// MARK: - Parametric paths

extension CameraPath {
    /// `count` cameras on a circle around `target`, all looking at it with `up` kept upright. The circle starts at
    /// `target + radius · start` (projected onto the plane perpendicular to `up`, then raised by `elevation` degrees)
    /// and turns counter-clockwise seen from above by `degrees` in total. A full turn leaves out the end point so the
    /// video loops without a repeated frame.
    public static func orbit(
        around target: SIMD3<Double>, radius: Double, up: SIMD3<Double>, start: SIMD3<Double>,
        elevation: Double = 0, degrees: Double = 360, count: Int, intrinsics: NormalizedIntrinsics
    ) -> CameraPath {
        let up = normalized(up)
        var ahead = start - dot(start, up) * up
        if length(ahead) < 1e-9 { ahead = cross(up, abs(up.x) < 0.9 ? SIMD3(1, 0, 0) : SIMD3(0, 1, 0)) }
        ahead = normalized(ahead)
        let side = cross(up, ahead)
        let fullTurn = abs(abs(degrees) - 360) < 1e-9
        let steps = Double(fullTurn ? count : max(count - 1, 1))
        let lift = elevation * .pi / 180
        return CameraPath(
            (0..<count).map { i in
                let a = degrees * .pi / 180 * Double(i) / steps
                let direction = cos(lift) * (cos(a) * ahead + sin(a) * side) + sin(lift) * up
                return Camera.lookingAt(target, from: target + radius * direction, up: up, intrinsics: intrinsics)
            })
    }

    /// `count` cameras that circle `turns` times around `base`'s viewing axis (radius `radius` across it, swinging
    /// `depth` along it) while looking at the point `focus` units in front of `base`: the LLFF-style spiral.
    public static func spiral(
        from base: Camera, radius: Double, depth: Double, focus: Double, turns: Double = 2, count: Int
    ) -> CameraPath {
        let rotation = base.orientation.rotationMatrix
        let (right, up, back) = (rotation.column(0), rotation.column(1), rotation.column(2))
        let target = base.position - focus * back
        return CameraPath(
            (0..<count).map { i in
                let a = 2 * .pi * turns * Double(i) / Double(max(count, 1))
                let offset = radius * (cos(a) * right + sin(a) * up) + depth * sin(0.5 * a) * back
                return Camera.lookingAt(target, from: base.position + offset, up: up, intrinsics: base.intrinsics)
            })
    }

    /// `count` cameras moving `distance` along `base`'s viewing direction (negative moves back), rotation fixed.
    public static func dolly(from base: Camera, distance: Double, count: Int) -> CameraPath {
        let forward = base.forward
        return CameraPath(
            (0..<count).map { i in
                var camera = base
                camera.position += distance * (count > 1 ? Double(i) / Double(count - 1) : 0) * forward
                return camera
            })
    }
}
