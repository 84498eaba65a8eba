#if canImport(Glibc)
    import Glibc
#endif

extension GaussianCloud {
    /// A deterministic random scene for tests and benchmarks: positions in a ±`extent` cube, log-scales around
    /// ln 0.01, random rotations, opacities across (0, 1) and SH DC/rest in typical ranges.
    public static func synthetic(count: Int, shDegree: Int, seed: UInt64 = 1, extent: Float = 10) -> GaussianCloud {
        var cloud = GaussianCloud(unsafeUninitializedCount: count, shDegree: shDegree, frame: .rdf, antialiased: false)
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        func next() -> Float {
            // xorshift64*: fast and good enough for test data.
            state ^= state >> 12
            state ^= state << 25
            state ^= state >> 27
            return Float((state &* 0x2545_F491_4F6C_DD1D) >> 40) / Float(1 << 24)
        }
        let stride = cloud.shStride
        cloud.withColumns { c in
            for i in 0..<count {
                for k in 0..<3 {
                    c.positions[i * 3 + k] = (next() * 2 - 1) * extent
                    c.logScales[i * 3 + k] = -4.6 + (next() * 2 - 1) * 1.5
                    c.sh[i * stride + k] = (next() * 2 - 1) * 1.5
                }
                for k in 0..<4 { c.rotations[i * 4 + k] = next() * 2 - 1 }
                c.logitOpacities[i] = (next() * 2 - 1) * 5
                for k in 3..<stride { c.sh[i * stride + k] = (next() * 2 - 1) * 0.4 }
            }
        }
        return cloud
    }

    /// A 2 x 2 wall of 1,600 small opaque splats facing the first camera, `distance` ahead of it (at z = −distance,
    /// y-up RUB): a known surface for depth, mesh and service tests.
    public static func syntheticWall(distance: Float = 3) -> GaussianCloud {
        var wall = GaussianCloud(count: 1600, shDegree: 0, frame: .rub)
        for i in 0..<1600 {
            wall.positions[3 * i] = Float(i % 40) / 20 - 1
            wall.positions[3 * i + 1] = Float(i / 40) / 20 - 1
            wall.positions[3 * i + 2] = -distance
            for axis in 0..<3 { wall.logScales[3 * i + axis] = -3 }
            wall.rotations[4 * i] = 1
            wall.logitOpacities[i] = 6
        }
        return wall
    }

    /// A shell of `count` opaque orange splats of radius `radius` around `center` (a Fibonacci sphere, y-up RUB): a
    /// room seen from inside, or an object from outside, for mesh and service tests.
    public static func syntheticShell(radius: Float, center: SIMD3<Float> = .zero, count: Int = 6000, size: Float = 0.06) -> GaussianCloud {
        var cloud = GaussianCloud(count: count, shDegree: 0, frame: .rub)
        let golden = Float.pi * (3 - Float(5).squareRoot())
        for i in 0..<count {
            let y = 1 - 2 * (Float(i) + 0.5) / Float(count), r = (1 - y * y).squareRoot(), phi = golden * Float(i)
            let p = center + radius * SIMD3(r * cos(phi), y, r * sin(phi))
            for k in 0..<3 {
                cloud.positions[3 * i + k] = p[k]
                cloud.logScales[3 * i + k] = logf(size * radius)
            }
            cloud.rotations[4 * i] = 1
            cloud.logitOpacities[i] = 6
            for (k, value) in [Float(1), 0.5, 0].enumerated() { cloud.sh[3 * i + k] = (value - 0.5) / SphericalHarmonics.c0 }
        }
        return cloud
    }
}
