#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#else
    import Darwin
#endif

extension GaussianCloud {
    /// How much a Gaussian contributes to a picture: its volume times its opacity, `exp(s0+s1+s2) * sigmoid(o)`, the
    /// order antimatter15's .splat writer uses.
    @inlinable public func importance(_ i: Int) -> Float {
        let volume: Float = expf(logScales[i * 3] + logScales[i * 3 + 1] + logScales[i * 3 + 2])
        return volume * sigmoid(logitOpacities[i])
    }

    /// Indices of all Gaussians, most important first (ties keep file order).
    public func importanceOrder() -> [Int32] {
        let keys = (0..<count).map { importance($0) }
        var order = (0..<Int32(count)).map { $0 }
        order.sort { a, b in
            let ka = keys[Int(a)], kb = keys[Int(b)]
            return ka != kb ? ka > kb : a < b
        }
        return order
    }

    /// A cloud with the Gaussians at `indices`, in that order.
    public func selecting(_ indices: [Int32]) -> GaussianCloud {
        var out = GaussianCloud(
            unsafeUninitializedCount: indices.count, shDegree: shDegree, frame: frame, antialiased: antialiased)
        let stride = shStride
        for (k, i32) in indices.enumerated() {
            let i = Int(i32)
            for c in 0..<3 {
                out.positions[k * 3 + c] = positions[i * 3 + c]
                out.logScales[k * 3 + c] = logScales[i * 3 + c]
            }
            for c in 0..<4 { out.rotations[k * 4 + c] = rotations[i * 4 + c] }
            out.logitOpacities[k] = logitOpacities[i]
            for c in 0..<stride { out.sh[k * stride + c] = sh[i * stride + c] }
        }
        return out
    }

    /// Drops Gaussians whose opacity (`sigmoid(logit)`) is below `minOpacity`.
    public func pruned(minOpacity: Float) -> GaussianCloud {
        let kept = (0..<count).filter { opacity($0) >= minOpacity }
        return kept.count == count ? self : selecting(kept.map { Int32($0) })
    }

    /// Keeps the `maxCount` most important Gaussians, in their original order.
    public func keepingMostImportant(_ maxCount: Int) -> GaussianCloud {
        guard maxCount < count else { return self }
        let kept = importanceOrder().prefix(max(0, maxCount)).sorted()
        return selecting(Array(kept))
    }

    /// The same cloud with SH truncated to `degree`, or zero-padded up to it.
    public func withSHDegree(_ degree: Int) -> GaussianCloud {
        precondition((0...Self.maxSHDegree).contains(degree))
        guard degree != shDegree else { return self }
        var out = self
        let oldStride = shStride
        out.shDegree = degree
        let newStride = out.shStride
        let common = min(oldStride, newStride)
        var newSH = [Float](repeating: 0, count: count * newStride)
        for i in 0..<count {
            for c in 0..<common { newSH[i * newStride + c] = sh[i * oldStride + c] }
        }
        out.sh = newSH
        return out
    }

    /// The same scene expressed in another axis convention: positions, rotations, scale axes and SH all move.
    public func converted(to target: CoordinateFrame) -> GaussianCloud {
        guard target != frame else { return self }
        let m = frame.matrix(to: target)
        var out = self
        out.frame = target
        // Row i of a signed permutation has one non-zero entry, in column source[i].
        let source = (0..<3).map { i in (0..<3).first { m[i][$0] != 0 }! }
        let sign = (0..<3).map { Float(m[$0][source[$0]]) }
        let det = Float(determinant(m))
        out.sh = shTransformed(orthogonal: m.map { $0.map(Double.init) })
        for g in 0..<count {
            for i in 0..<3 {
                out.positions[g * 3 + i] = sign[i] * positions[g * 3 + source[i]]
                out.logScales[g * 3 + i] = logScales[g * 3 + source[i]]
                // R' = M R Mᵀ, so the quaternion's vector part maps by det(M)·M.
                out.rotations[g * 4 + 1 + i] = det * sign[i] * rotations[g * 4 + 1 + source[i]]
            }
        }
        return out
    }

    /// The SH column after the points are moved by the orthogonal `m` (row-major 3x3): each band of degree 1 and up
    /// mapped by its `SphericalHarmonics.transformMatrix`, the DC term unchanged.
    public func shTransformed(orthogonal m: [[Double]]) -> [Float] {
        let bands = (0..<shDegree).map { SphericalHarmonics.transformMatrix(band: $0 + 1, orthogonal: m).map(Float.init) }
        var out = sh
        let stride = shStride
        var coefficient = [Float](repeating: 0, count: 7)
        for g in 0..<count {
            for (b, d) in bands.enumerated() {
                let l = b + 1, n = 2 * l + 1, first = l * l
                for ch in 0..<3 {
                    for j in 0..<n { coefficient[j] = sh[g * stride + (first + j) * 3 + ch] }
                    for i in 0..<n {
                        var v: Float = 0
                        for j in 0..<n { v += d[i * n + j] * coefficient[j] }
                        out[g * stride + (first + i) * 3 + ch] = v
                    }
                }
            }
        }
        return out
    }
}

private func determinant(_ m: [[Int]]) -> Int {
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
}
