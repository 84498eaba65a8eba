import EngineCore

#if canImport(Glibc)
    import Glibc
#endif

extension CPUBackend {
    /// Rotates interleaved pairs: `(x₀, x₁) → (x₀ cos − x₁ sin, x₀ sin + x₁ cos)` with one angle per pair and token.
    func ropeInterleaved(_ inputs: [Tensor]) throws(EngineError) -> Tensor {
        try expectInputs(.ropeInterleaved, inputs, 3...3)
        let (x, cos, sin) = (inputs[0], inputs[1], inputs[2])
        guard x.rank == 4, let d = x.shape.last, d % 2 == 0, cos.shape == [x.shape[1], d / 2], sin.shape == cos.shape else {
            throw EngineError(.shapeMismatch, "rope_apply: x \(x.shape) must be [b, l, h, d] with cos and sin [l, d/2], not \(cos.shape), \(sin.shape)")
        }
        let (batches, tokens, heads) = (x.shape[0], x.shape[1], x.shape[2])
        let c = try float32(cos).floats(), s = try float32(sin).floats()
        let xf = try float32(x)
        let result = try makeFloat32(x.shape) { out in
            let src = floatPointer(xf)
            for b in 0..<batches {
                for t in 0..<tokens {
                    for h in 0..<heads {
                        let base = ((b * tokens + t) * heads + h) * d
                        for i in 0..<(d / 2) {
                            let (x0, x1) = (src[base + 2 * i], src[base + 2 * i + 1])
                            let (ci, si) = (c[t * d / 2 + i], s[t * d / 2 + i])
                            out[base + 2 * i] = x0 * ci - x1 * si
                            out[base + 2 * i + 1] = x0 * si + x1 * ci
                        }
                    }
                }
            }
        }
        return try converted(result, to: x.dtype)
    }

    /// Wan's rotary angles: the head dimension split into time, height and width parts (height and width get
    /// `2·(d/6)` each, time the rest), each part with frequencies `θ^(−2i/part)` at its own coordinate; computed in
    /// float64 as diffusers does, returned as float32 cos and sin `[frames·height·width, d/2]`.
    func ropeFrequencies3D(headDim: Int, frames: Int, height: Int, width: Int, theta: Double) throws(EngineError) -> [Tensor] {
        guard headDim > 0, headDim % 2 == 0, frames > 0, height > 0, width > 0 else {
            throw EngineError(.invalidArgument, "rope_3d_frequencies: head dim \(headDim) must be even and the grid \(frames)x\(height)x\(width) positive")
        }
        let hw = 2 * (headDim / 6)
        let parts = [headDim - 2 * hw, hw, hw]
        let half = headDim / 2
        let tokens = frames * height * width
        var cosines = [Float](repeating: 0, count: tokens * half)
        var sines = [Float](repeating: 0, count: tokens * half)
        for token in 0..<tokens {
            let coordinates = [token / (height * width), (token / width) % height, token % width]
            var column = 0
            for (axis, part) in parts.enumerated() {
                for i in 0..<(part / 2) {
                    let frequency = 1 / pow(theta, Double(2 * i) / Double(part))
                    let angle = Double(coordinates[axis]) * frequency
                    cosines[token * half + column] = Float(libmCos(angle))
                    sines[token * half + column] = Float(libmSin(angle))
                    column += 1
                }
            }
        }
        return [try Tensor(cosines, shape: [tokens, half]), try Tensor(sines, shape: [tokens, half])]
    }

    /// diffusers `get_timestep_embedding`: `[sin(t·f), cos(t·f)]` (or cos first), `f_i = exp(−ln(10000)·i/(half − shift))`,
    /// float32 throughout, zero-padded to an odd `dim`.
    func timestepEmbedding(_ inputs: [Tensor], dim: Int, flipSinToCos: Bool, shift: Float) throws(EngineError) -> Tensor {
        let t = try single(.timestepEmbedding(dim: dim, flipSinToCos: flipSinToCos, downscaleFreqShift: shift), inputs)
        guard t.rank == 1, dim > 1 else {
            throw EngineError(.shapeMismatch, "timestep_embedding: timesteps \(t.shape) must be [n] and dim \(dim) above 1")
        }
        let half = dim / 2
        let steps = try float32(t).floats()
        let frequencies = (0..<half).map { i -> Float in
            expf(-logf(10000) * Float(i) / (Float(half) - shift))
        }
        var out = [Float](repeating: 0, count: steps.count * dim)
        for (n, step) in steps.enumerated() {
            for i in 0..<half {
                let angle = step * frequencies[i]
                let (first, second) = flipSinToCos ? (cosf(angle), sinf(angle)) : (sinf(angle), cosf(angle))
                out[n * dim + i] = first
                out[n * dim + half + i] = second
            }
        }
        return try Tensor(out, shape: [steps.count, dim])
    }

    /// T5's bucketing of `key − query` offsets: exact below half the buckets, logarithmic up to `maxDistance`.
    func t5RelativeBuckets(queryLength: Int, keyLength: Int, bidirectional: Bool, buckets: Int, maxDistance: Int) throws(EngineError) -> Tensor {
        guard queryLength > 0, keyLength > 0, buckets >= 2, maxDistance > 0 else {
            throw EngineError(.invalidArgument, "t5_relative_buckets: lengths, buckets and max distance must be positive")
        }
        var out = [Int64](repeating: 0, count: queryLength * keyLength)
        let count = bidirectional ? buckets / 2 : buckets
        let exact = count / 2
        let logRange = Float(Glibc.log(Double(maxDistance) / Double(exact)))
        for q in 0..<queryLength {
            for k in 0..<keyLength {
                var relative = k - q
                var bucket = 0
                if bidirectional {
                    if relative > 0 { bucket += count }
                    relative = abs(relative)
                } else {
                    relative = -Swift.min(relative, 0)
                }
                if relative < exact {
                    bucket += relative
                } else {
                    let scaled = logf(Float(relative) / Float(exact)) / logRange * Float(count - exact)
                    bucket += Swift.min(exact + Int(scaled), count - 1)
                }
                out[q * keyLength + k] = Int64(bucket)
            }
        }
        return try Tensor(int64s: out, shape: [queryLength, keyLength])
    }
}

// Double-precision libm without Foundation.
@inline(__always) func libmCos(_ x: Double) -> Double { Glibc.cos(x) }
@inline(__always) func libmSin(_ x: Double) -> Double { Glibc.sin(x) }
