#if canImport(Glibc)
    import Glibc
#endif

/// A rotation quaternion, real part first (w, x, y, z): Diorama's one convention, shared with `GaussianCloud`.
///
/// Conversions follow FlashWorld's `utils.py` (the pytorch3d formulas), so cameras round-trip exactly as the reference
/// computes them (`flashworld-model.md` §11).
public struct Quaternion: Equatable, Sendable {
    public var w: Double
    public var x: Double
    public var y: Double
    public var z: Double

    public init(w: Double, x: Double, y: Double, z: Double) {
        self.w = w
        self.x = x
        self.y = y
        self.z = z
    }

    /// From `[w, x, y, z]`.
    public init(_ wxyz: [Double]) {
        precondition(wxyz.count == 4, "a quaternion needs 4 values")
        self.init(w: wxyz[0], x: wxyz[1], y: wxyz[2], z: wxyz[3])
    }

    public static let identity = Quaternion(w: 1, x: 0, y: 0, z: 0)

    public var wxyz: [Double] { [w, x, y, z] }
    public var lengthSquared: Double { w * w + x * x + y * y + z * z }
    public var isFinite: Bool { w.isFinite && x.isFinite && y.isFinite && z.isFinite }

    public var normalized: Quaternion {
        let s = 1 / lengthSquared.squareRoot()
        return Quaternion(w: w * s, x: x * s, y: y * s, z: z * s)
    }

    /// The inverse rotation of a unit quaternion.
    public var conjugate: Quaternion { Quaternion(w: w, x: -x, y: -y, z: -z) }

    public static prefix func - (q: Quaternion) -> Quaternion { Quaternion(w: -q.w, x: -q.x, y: -q.y, z: -q.z) }

    public static func dot(_ a: Quaternion, _ b: Quaternion) -> Double { a.w * b.w + a.x * b.x + a.y * b.y + a.z * b.z }

    /// The Hamilton product: the rotation `b` followed by `a`.
    public static func * (a: Quaternion, b: Quaternion) -> Quaternion {
        Quaternion(
            w: a.w * b.w - a.x * b.x - a.y * b.y - a.z * b.z,
            x: a.w * b.x + a.x * b.w + a.y * b.z - a.z * b.y,
            y: a.w * b.y - a.x * b.z + a.y * b.w + a.z * b.x,
            z: a.w * b.z + a.x * b.y - a.y * b.x + a.z * b.w)
    }

    /// The rotation matrix, with `2/|q|²` so that an unnormalised quaternion gives the rotation of its direction
    /// (pytorch3d `quaternion_to_matrix`).
    public var rotationMatrix: Matrix3 {
        let s = 2 / lengthSquared
        return Matrix3(
            rows: SIMD3(1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w)),
            SIMD3(s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w)),
            SIMD3(s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y)))
    }

    /// The quaternion of a rotation matrix: pytorch3d's best-conditioned candidate, then `w ≥ 0`
    /// (`matrix_to_quaternion`).
    public init(rotationMatrix m: Matrix3) {
        let (m00, m01, m02) = (m[0, 0], m[0, 1], m[0, 2])
        let (m10, m11, m12) = (m[1, 0], m[1, 1], m[1, 2])
        let (m20, m21, m22) = (m[2, 0], m[2, 1], m[2, 2])
        func positiveRoot(_ v: Double) -> Double { v > 0 ? v.squareRoot() : 0 }
        let qAbs = [
            positiveRoot(1 + m00 + m11 + m22), positiveRoot(1 + m00 - m11 - m22),
            positiveRoot(1 - m00 + m11 - m22), positiveRoot(1 - m00 - m11 + m22),
        ]
        let candidates: [[Double]] = [
            [qAbs[0] * qAbs[0], m21 - m12, m02 - m20, m10 - m01],
            [m21 - m12, qAbs[1] * qAbs[1], m10 + m01, m02 + m20],
            [m02 - m20, m10 + m01, qAbs[2] * qAbs[2], m12 + m21],
            [m10 - m01, m20 + m02, m21 + m12, qAbs[3] * qAbs[3]],
        ]
        // argmax picks the first of equal maxima, as torch does.
        var best = 0
        for k in 1..<4 where qAbs[k] > qAbs[best] { best = k }
        let denominator = 2 * max(qAbs[best], 0.1)
        let q = candidates[best].map { $0 / denominator }
        let sign: Double = q[0] < 0 ? -1 : 1
        self.init(w: sign * q[0], x: sign * q[1], y: sign * q[2], z: sign * q[3])
    }

    /// Rotates a vector (the quaternion need not be normalised).
    public func rotated(_ v: SIMD3<Double>) -> SIMD3<Double> { rotationMatrix * v }

    /// The rotation by `angle` radians about `axis` (right-handed; the axis need not be unit length).
    public init(axis: SIMD3<Double>, angle: Double) {
        let n = axis / max((axis * axis).sum().squareRoot(), 1e-300)
        let s = sin(0.5 * angle)
        self.init(w: cos(0.5 * angle), x: n.x * s, y: n.y * s, z: n.z * s)
    }

    /// The shortest rotation taking unit vector `from` onto unit vector `to`, as three.js
    /// `Quaternion.setFromUnitVectors` computes it (the reference UI builds its orbit cameras with it).
    public init(rotating from: SIMD3<Double>, onto to: SIMD3<Double>) {
        var r = Cameras.dot(from, to) + 1
        var q: Quaternion
        if r < 1e-8 {
            // Opposite vectors: any axis perpendicular to `from` will do; three.js picks this one.
            r = 0
            if abs(from.x) > abs(from.z) {
                q = Quaternion(w: r, x: -from.y, y: from.x, z: 0)
            } else {
                q = Quaternion(w: r, x: 0, y: -from.z, z: from.y)
            }
        } else {
            let c = cross(from, to)
            q = Quaternion(w: r, x: c.x, y: c.y, z: c.z)
        }
        self = q.normalized
    }

    /// Spherical interpolation as FlashWorld's `sample_from_two_pose` does it: `b` is flipped onto `a`'s hemisphere,
    /// the angle is `acos(clamp(a·b, 0, 1))`, `a` is returned below an angle of 1e-5, and the result is normalised.
    public static func slerp(_ a: Quaternion, _ b: Quaternion, _ t: Double) -> Quaternion {
        // Unit inputs as the reference has them; an unnormalised one would clamp the angle to 0.
        let a = a.normalized
        var b = b.normalized
        if dot(a, b) < 0 { b = -b }
        let angle = acos(min(max(dot(a, b), 0), 1))
        if angle < 1e-5 { return a }
        let inverseSine = 1 / (sin(angle) + 1e-10)
        let wa = sin((1 - t) * angle) * inverseSine, wb = sin(t * angle) * inverseSine
        return Quaternion(
            w: a.w * wa + b.w * wb, x: a.x * wa + b.x * wb, y: a.y * wa + b.y * wb, z: a.z * wa + b.z * wb
        ).normalized
    }
}
