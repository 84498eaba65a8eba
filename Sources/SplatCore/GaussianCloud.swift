/// A scene of 3D Gaussians, held as struct-of-arrays columns of pre-activation values (as PLY stores them).
///
/// Conventions, the one place they are defined:
/// - `positions`: x, y, z per Gaussian, in `frame`.
/// - `logScales`: natural log of the three standard deviations.
/// - `rotations`: quaternions **w, x, y, z**, not necessarily normalised (files store them that way).
/// - `logitOpacities`: `logit(alpha)`.
/// - `sh`: spherical-harmonic coefficients, `coefficientsPerChannel` per Gaussian, **coefficient-major with the RGB
///   channel inner** (`c0r c0g c0b c1r …`); coefficient 0 is the DC term, so `rgb = 0.5 + SH_C0 * sh[0..<3]`.
public struct GaussianCloud: Sendable, Equatable {
    public internal(set) var count: Int
    public internal(set) var shDegree: Int
    public var positions: [Float]
    public var logScales: [Float]
    public var rotations: [Float]
    public var logitOpacities: [Float]
    public var sh: [Float]
    public var frame: CoordinateFrame
    /// Trained with Mip-Splatting antialiasing (render with the 2D mip filter and opacity compensation).
    public var antialiased: Bool

    public static let maxSHDegree = 3

    /// A cloud of `count` Gaussians with every column zero-filled (rotations set to identity).
    public init(count: Int, shDegree: Int, frame: CoordinateFrame = .rdf, antialiased: Bool = false) {
        precondition(count >= 0 && (0...Self.maxSHDegree).contains(shDegree))
        self.count = count
        self.shDegree = shDegree
        self.frame = frame
        self.antialiased = antialiased
        positions = [Float](repeating: 0, count: count * 3)
        logScales = [Float](repeating: 0, count: count * 3)
        var identity = [Float](repeating: 0, count: count * 4)
        for i in 0..<count { identity[i * 4] = 1 }
        rotations = identity
        logitOpacities = [Float](repeating: 0, count: count)
        sh = [Float](repeating: 0, count: count * 3 * SphericalHarmonics.coefficientCount(degree: shDegree))
    }

    /// Builds a cloud from columns; fails with a message when a column's length does not match `count`.
    public init(
        positions: [Float], logScales: [Float], rotations: [Float], logitOpacities: [Float], sh: [Float],
        shDegree: Int, frame: CoordinateFrame = .rdf, antialiased: Bool = false
    ) throws(GaussianCloudError) {
        guard (0...Self.maxSHDegree).contains(shDegree) else { throw .unsupportedSHDegree(shDegree) }
        let n = logitOpacities.count
        let coefficients = SphericalHarmonics.coefficientCount(degree: shDegree)
        for (name, column, width) in [
            ("positions", positions, 3), ("logScales", logScales, 3), ("rotations", rotations, 4),
            ("sh", sh, 3 * coefficients),
        ] where column.count != n * width {
            throw .columnLength(name: name, expected: n * width, actual: column.count)
        }
        self.count = n
        self.shDegree = shDegree
        self.positions = positions
        self.logScales = logScales
        self.rotations = rotations
        self.logitOpacities = logitOpacities
        self.sh = sh
        self.frame = frame
        self.antialiased = antialiased
    }

    /// A cloud whose columns hold uninitialised memory, for readers that overwrite every value (it spares a pass of
    /// zero-filling over hundreds of megabytes).
    public init(unsafeUninitializedCount count: Int, shDegree: Int, frame: CoordinateFrame, antialiased: Bool) {
        precondition(count >= 0 && (0...Self.maxSHDegree).contains(shDegree))
        func column(_ n: Int) -> [Float] { [Float](unsafeUninitializedCapacity: n) { _, c in c = n } }
        self.count = count
        self.shDegree = shDegree
        self.frame = frame
        self.antialiased = antialiased
        positions = column(count * 3)
        logScales = column(count * 3)
        rotations = column(count * 4)
        logitOpacities = column(count)
        sh = column(count * 3 * SphericalHarmonics.coefficientCount(degree: shDegree))
    }

    public var coefficientsPerChannel: Int { SphericalHarmonics.coefficientCount(degree: shDegree) }
    /// Floats of `sh` per Gaussian.
    public var shStride: Int { 3 * coefficientsPerChannel }

    /// Bytes held by the columns.
    public var byteCount: Int { count * (3 + 3 + 4 + 1 + shStride) * MemoryLayout<Float>.stride }

    /// Linear opacity of Gaussian `i`.
    @inlinable public func opacity(_ i: Int) -> Float { sigmoid(logitOpacities[i]) }

    /// The quaternion of Gaussian `i`, normalised, w first; a zero or non-finite quaternion becomes the identity.
    @inlinable public func normalizedRotation(_ i: Int) -> SIMD4<Float> {
        normalizedQuaternion(
            SIMD4(rotations[i * 4], rotations[i * 4 + 1], rotations[i * 4 + 2], rotations[i * 4 + 3]))
    }
}

public enum GaussianCloudError: Error, Equatable, CustomStringConvertible {
    case unsupportedSHDegree(Int)
    case columnLength(name: String, expected: Int, actual: Int)

    public var description: String {
        switch self {
        case .unsupportedSHDegree(let d): "SH degree \(d) is not supported (0 to \(GaussianCloud.maxSHDegree))"
        case .columnLength(let name, let expected, let actual):
            "column '\(name)' holds \(actual) values where \(expected) were expected"
        }
    }
}

@inlinable public func sigmoid(_ x: Float) -> Float { 1 / (1 + expf(-x)) }

/// `log(p / (1 - p))`, with `p` clamped away from 0 and 1 so the result is finite.
@inlinable public func logit(_ p: Float) -> Float {
    let q = min(max(p, 1e-7), 1 - 1e-7)
    return logf(q / (1 - q))
}

/// Normalises a w-first quaternion; a zero or non-finite one becomes the identity.
@inlinable public func normalizedQuaternion(_ q: SIMD4<Float>) -> SIMD4<Float> {
    let n = (q * q).sum().squareRoot()
    guard n > 0, n.isFinite else { return SIMD4(1, 0, 0, 0) }
    return q / n
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif
