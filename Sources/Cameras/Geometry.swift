/// A 3x3 matrix of doubles, stored by rows. Camera math runs in double precision; values are narrowed to float only
/// where a renderer or model consumes them.
public struct Matrix3: Equatable, Sendable {
    public var rows: (SIMD3<Double>, SIMD3<Double>, SIMD3<Double>)

    public init(rows r0: SIMD3<Double>, _ r1: SIMD3<Double>, _ r2: SIMD3<Double>) { rows = (r0, r1, r2) }

    /// From nine values in row-major order.
    public init(rowMajor m: [Double]) {
        precondition(m.count == 9, "a 3x3 matrix needs 9 values")
        self.init(rows: SIMD3(m[0], m[1], m[2]), SIMD3(m[3], m[4], m[5]), SIMD3(m[6], m[7], m[8]))
    }

    /// From its three columns.
    public init(columns c0: SIMD3<Double>, _ c1: SIMD3<Double>, _ c2: SIMD3<Double>) {
        self.init(rows: SIMD3(c0.x, c1.x, c2.x), SIMD3(c0.y, c1.y, c2.y), SIMD3(c0.z, c1.z, c2.z))
    }

    public static let identity = Matrix3(rows: SIMD3(1, 0, 0), SIMD3(0, 1, 0), SIMD3(0, 0, 1))

    public subscript(row: Int, column: Int) -> Double {
        get {
            switch row {
            case 0: return rows.0[column]
            case 1: return rows.1[column]
            default: return rows.2[column]
            }
        }
        set {
            switch row {
            case 0: rows.0[column] = newValue
            case 1: rows.1[column] = newValue
            default: rows.2[column] = newValue
            }
        }
    }

    public func column(_ j: Int) -> SIMD3<Double> { SIMD3(rows.0[j], rows.1[j], rows.2[j]) }

    public var rowMajor: [Double] {
        [rows.0.x, rows.0.y, rows.0.z, rows.1.x, rows.1.y, rows.1.z, rows.2.x, rows.2.y, rows.2.z]
    }

    public var transposed: Matrix3 { Matrix3(columns: rows.0, rows.1, rows.2) }

    public var determinant: Double {
        let (a, b, c) = rows
        return a.x * (b.y * c.z - b.z * c.y) - a.y * (b.x * c.z - b.z * c.x) + a.z * (b.x * c.y - b.y * c.x)
    }

    public static func * (m: Matrix3, v: SIMD3<Double>) -> SIMD3<Double> {
        SIMD3(dot(m.rows.0, v), dot(m.rows.1, v), dot(m.rows.2, v))
    }

    public static func * (a: Matrix3, b: Matrix3) -> Matrix3 {
        let bt = b.transposed
        func row(_ r: SIMD3<Double>) -> SIMD3<Double> { SIMD3(dot(r, bt.rows.0), dot(r, bt.rows.1), dot(r, bt.rows.2)) }
        return Matrix3(rows: row(a.rows.0), row(a.rows.1), row(a.rows.2))
    }

    public static func == (a: Matrix3, b: Matrix3) -> Bool { a.rows.0 == b.rows.0 && a.rows.1 == b.rows.1 && a.rows.2 == b.rows.2 }
}

/// A rotation followed by a translation: `x' = R x + t`. Camera-to-world and world-to-camera maps are both this.
public struct RigidTransform: Equatable, Sendable {
    public var rotation: Matrix3
    public var translation: SIMD3<Double>

    public init(rotation: Matrix3, translation: SIMD3<Double>) {
        self.rotation = rotation
        self.translation = translation
    }

    public static let identity = RigidTransform(rotation: .identity, translation: .zero)

    /// The inverse, using `Rᵀ` (the rotation is orthonormal to double precision by construction).
    public var inverse: RigidTransform {
        let rt = rotation.transposed
        return RigidTransform(rotation: rt, translation: -(rt * translation))
    }

    public func applied(to point: SIMD3<Double>) -> SIMD3<Double> { rotation * point + translation }

    /// `self ∘ other`: applies `other` first.
    public static func * (a: RigidTransform, b: RigidTransform) -> RigidTransform {
        RigidTransform(rotation: a.rotation * b.rotation, translation: a.rotation * b.translation + a.translation)
    }

    /// The homogeneous 4x4 matrix, row-major.
    public var matrix4: [Double] {
        let r = rotation.rowMajor, t = translation
        return [r[0], r[1], r[2], t.x, r[3], r[4], r[5], t.y, r[6], r[7], r[8], t.z, 0, 0, 0, 1]
    }

    /// From a homogeneous 4x4 matrix, row-major, whose last row is `0 0 0 1`.
    public init(matrix4 m: [Double]) {
        precondition(m.count == 16, "a 4x4 matrix needs 16 values")
        rotation = Matrix3(rowMajor: [m[0], m[1], m[2], m[4], m[5], m[6], m[8], m[9], m[10]])
        translation = SIMD3(m[3], m[7], m[11])
    }
}

@inlinable func dot(_ a: SIMD3<Double>, _ b: SIMD3<Double>) -> Double { (a * b).sum() }

@inlinable func cross(_ a: SIMD3<Double>, _ b: SIMD3<Double>) -> SIMD3<Double> {
    SIMD3(a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x)
}

@inlinable func length(_ v: SIMD3<Double>) -> Double { dot(v, v).squareRoot() }

@inlinable func normalized(_ v: SIMD3<Double>) -> SIMD3<Double> { v / length(v) }
