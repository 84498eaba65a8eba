/// Real spherical harmonics in the 3DGS / gsplat convention (degrees 0-3), the basis every format and renderer uses.
public enum SphericalHarmonics {
    public static let c0: Float = 0.28209479177387814
    static let c1 = 0.4886025119029199
    static let c2: [Double] = [
        1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396,
    ]
    static let c3: [Double] = [
        -0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154, -0.4570457994644658,
        1.445305721320277, -0.5900435899266435,
    ]

    /// Coefficients per colour channel, DC included: `(degree + 1)²`.
    @inlinable public static func coefficientCount(degree: Int) -> Int { (degree + 1) * (degree + 1) }

    /// The degree whose coefficient count (DC included) is the largest not above `count`.
    public static func degree(forCoefficientCount count: Int) -> Int {
        var d = 0
        while d < GaussianCloud.maxSHDegree && coefficientCount(degree: d + 1) <= count { d += 1 }
        return d
    }

    /// The basis functions of band 1...3 at the unit direction `d`, in file order.
    static func band(_ l: Int, at d: SIMD3<Double>) -> [Double] {
        let (x, y, z) = (d.x, d.y, d.z)
        let (xx, yy, zz) = (x * x, y * y, z * z)
        switch l {
        case 1: return [-c1 * y, c1 * z, -c1 * x]
        case 2:
            return [
                c2[0] * x * y, c2[1] * y * z, c2[2] * (2 * zz - xx - yy), c2[3] * x * z, c2[4] * (xx - yy),
            ]
        case 3:
            return [
                c3[0] * y * (3 * xx - yy), c3[1] * x * y * z, c3[2] * y * (4 * zz - xx - yy),
                c3[3] * z * (2 * zz - 3 * xx - 3 * yy), c3[4] * x * (4 * zz - xx - yy), c3[5] * z * (xx - yy),
                c3[6] * x * (xx - 3 * yy),
            ]
        default: preconditionFailure("band \(l) is outside 1...3")
        }
    }

    /// The matrix `D` (row-major, `(2l+1)²`) with `c' = D c` for the band-`l` coefficients of a colour function after
    /// the points are transformed by the orthogonal matrix `m` (row-major 3x3): `f'(d) = f(mᵀ d)`.
    ///
    /// Solved by least squares over fixed sample directions; exact to rounding because each band is closed under
    /// orthogonal maps.
    public static func transformMatrix(band l: Int, orthogonal m: [[Double]]) -> [Double] {
        let n = 2 * l + 1
        let samples = (0..<40).map { k -> SIMD3<Double> in
            // A Fibonacci sphere: well spread, never degenerate for the bands used here.
            let t = (Double(k) + 0.5) / 40
            let zc = 1 - 2 * t
            let r = (1 - zc * zc).squareRoot()
            let phi = Double(k) * 2.399963229728653
            return SIMD3(r * _cos(phi), r * _sin(phi), zc)
        }
        // Normal equations: (AᵀA) D = AᵀB, with A[k][i] = Y_i(d_k) and B[k][j] = Y_j(mᵀ d_k).
        var ata = [Double](repeating: 0, count: n * n)
        var atb = [Double](repeating: 0, count: n * n)
        for d in samples {
            let rotated = SIMD3(
                m[0][0] * d.x + m[1][0] * d.y + m[2][0] * d.z,
                m[0][1] * d.x + m[1][1] * d.y + m[2][1] * d.z,
                m[0][2] * d.x + m[1][2] * d.y + m[2][2] * d.z)
            let a = band(l, at: d), b = band(l, at: rotated)
            for i in 0..<n {
                for j in 0..<n {
                    ata[i * n + j] += a[i] * a[j]
                    atb[i * n + j] += a[i] * b[j]
                }
            }
        }
        // Signed permutations give entries of 0 and ±1 among others: snap those so sign flips stay exact.
        return solve(ata, atb, n: n).map { v in
            let r = v.rounded()
            return abs(v - r) < 1e-9 ? r : v
        }
    }

    /// The RGB colour the coefficients give in the unit direction `d` (no +0.5 offset): the real-time form of the
    /// same basis, in float, as renderers evaluate it (gsplat's factored polynomials). `sh` points at one Gaussian's
    /// coefficients in cloud order (coefficient-major, RGB inner) and holds at least `degree`'s count.
    @inlinable public static func color(degree: Int, direction d: SIMD3<Float>, sh: UnsafePointer<Float>) -> SIMD3<Float> {
        @inline(__always) func coefficient(_ k: Int) -> SIMD3<Float> { SIMD3(sh[3 * k], sh[3 * k + 1], sh[3 * k + 2]) }
        var result = 0.2820947917738781 * coefficient(0)
        if degree < 1 { return result }
        let (x, y, z) = (d.x, d.y, d.z)
        result += 0.48860251190292 * (-y * coefficient(1) + z * coefficient(2) - x * coefficient(3))
        if degree < 2 { return result }
        let z2 = z * z
        let t0 = -1.092548430592079 * z
        let c1 = x * x - y * y, s1 = 2 * x * y
        result += 0.5462742152960395 * s1 * coefficient(4) + t0 * y * coefficient(5)
        result += (0.9461746957575601 * z2 - 0.3153915652525201) * coefficient(6)
        result += t0 * x * coefficient(7) + 0.5462742152960395 * c1 * coefficient(8)
        if degree < 3 { return result }
        let t1 = -2.285228997322329 * z2 + 0.4570457994644658
        let t2 = 1.445305721320277 * z
        let c2 = x * c1 - y * s1, s2 = x * s1 + y * c1
        result += -0.5900435899266435 * s2 * coefficient(9) + t2 * s1 * coefficient(10) + t1 * y * coefficient(11)
        result += z * (1.865881662950577 * z2 - 1.119528997770346) * coefficient(12)
        result += t1 * x * coefficient(13) + t2 * c1 * coefficient(14) - 0.5900435899266435 * c2 * coefficient(15)
        return result
    }

    /// Solves `A X = B` for square `n`x`n` A (symmetric positive definite here) by Gauss-Jordan with pivoting.
    private static func solve(_ a: [Double], _ b: [Double], n: Int) -> [Double] {
        var a = a, b = b
        for col in 0..<n {
            let pivot = (col..<n).max { abs(a[$0 * n + col]) < abs(a[$1 * n + col]) }!
            if pivot != col {
                for k in 0..<n {
                    a.swapAt(col * n + k, pivot * n + k)
                    b.swapAt(col * n + k, pivot * n + k)
                }
            }
            let p = a[col * n + col]
            for k in 0..<n {
                a[col * n + k] /= p
                b[col * n + k] /= p
            }
            for r in 0..<n where r != col {
                let f = a[r * n + col]
                if f == 0 { continue }
                for k in 0..<n {
                    a[r * n + k] -= f * a[col * n + k]
                    b[r * n + k] -= f * b[col * n + k]
                }
            }
        }
        return b
    }
}

// Tiny libm shims so SplatCore needs no Foundation.
#if canImport(Glibc)
    import Glibc
    @inline(__always) func _cos(_ x: Double) -> Double { Glibc.cos(x) }
    @inline(__always) func _sin(_ x: Double) -> Double { Glibc.sin(x) }
#elseif canImport(Musl)
    import Musl
    @inline(__always) func _cos(_ x: Double) -> Double { Musl.cos(x) }
    @inline(__always) func _sin(_ x: Double) -> Double { Musl.sin(x) }
#else
    import Darwin
    @inline(__always) func _cos(_ x: Double) -> Double { Darwin.cos(x) }
    @inline(__always) func _sin(_ x: Double) -> Double { Darwin.sin(x) }
#endif
