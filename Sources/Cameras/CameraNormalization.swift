/// Cameras re-based on camera 0 and scaled into a unit-ish box, as FlashWorld feeds them to its model
/// (`normalize_cameras`, `flashworld-model.md` §11.2), with what it takes to undo that.
public struct NormalizedCameras: Equatable, Sendable {
    /// Camera 0 is the identity at the origin; translations are divided by `translationScale + 0.01`.
    public var cameras: [Camera]
    /// The inverse of camera 0's camera-to-world map (`ref_w2c`).
    public var referenceWorldToCamera: RigidTransform
    /// The largest camera distance from camera 0 after re-basing, before the division (`T_norm`).
    public var translationScale: Double

    /// The divisor applied to translations: `T_norm + 0.01`, so a path that never moves stays finite.
    public var translationDivisor: Double { translationScale + Self.divisorEpsilon }

    static let divisorEpsilon = 0.01

    /// What an exported scene's positions and scales are multiplied by: `T_norm`, as the reference exports; a path that
    /// never moves (a look-around from one point) has `T_norm = 0` and would collapse every Gaussian onto the camera,
    /// so its scene keeps the model's own units instead.
    public var exportScale: Double { translationScale > Self.stillPathLimit ? translationScale : 1 }

    /// The normalised cameras with positions at export scale: where they stand in the exported scene's frame.
    public var camerasAtExportScale: [Camera] {
        cameras.map { camera in
            var c = camera
            c.position *= exportScale
            return c
        }
    }

    /// Paths whose cameras all lie within this of camera 0 count as still.
    static let stillPathLimit = 1e-9
}

/// Re-bases `cameras` on the first one and divides translations by the largest distance + 0.01. Rotations are
/// re-derived through the rotation matrix (so they come back normalised with `w ≥ 0`); intrinsics are unchanged.
public func normalizedCameras(_ cameras: [Camera]) -> NormalizedCameras {
    guard let first = cameras.first else {
        return NormalizedCameras(cameras: [], referenceWorldToCamera: .identity, translationScale: 0)
    }
    let reference = first.cameraToWorld.inverse
    let rebased = cameras.map { reference * $0.cameraToWorld }
    let scale = rebased.map { length($0.translation) }.max() ?? 0
    let divisor = scale + NormalizedCameras.divisorEpsilon
    let result = zip(cameras, rebased).map { camera, c2w in
        Camera(
            orientation: Quaternion(rotationMatrix: c2w.rotation), position: c2w.translation / divisor,
            intrinsics: camera.intrinsics)
    }
    return NormalizedCameras(cameras: result, referenceWorldToCamera: reference, translationScale: scale)
}
