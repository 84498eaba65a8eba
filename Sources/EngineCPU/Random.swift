import EngineCore

#if canImport(Glibc)
    import Glibc
#endif

extension CPUBackend {
    /// Standard normal samples from Philox-4x32-10 (counter = element pair, key = seed) through Box-Muller: the
    /// same numbers for a seed on every machine, thread count and backend.
    func randomNormal(shape: [Int], seed: UInt64) throws(EngineError) -> Tensor {
        guard shape.allSatisfy({ $0 >= 0 }) else { throw EngineError(.invalidArgument, "random_normal: shape \(shape) is negative") }
        let n = shape.reduce(1, *)
        return try makeFloat32(shape) { out in
            for pair in 0..<((n + 1) / 2) {
                let r = Philox.block(counter: UInt64(pair), key: seed)
                // Uniforms in (0, 1]: never log(0).
                let u1 = (Float(r.0 >> 8) + 1) / 16_777_216
                let u2 = Float(r.1 >> 8) / 16_777_216
                let radius = (-2 * logf(u1)).squareRoot()
                let angle = 2 * Float.pi * u2
                out[2 * pair] = radius * cosf(angle)
                if 2 * pair + 1 < n { out[2 * pair + 1] = radius * sinf(angle) }
            }
        }
    }
}

/// Philox-4x32 with 10 rounds (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3").
enum Philox {
    static func block(counter: UInt64, key: UInt64) -> (UInt32, UInt32, UInt32, UInt32) {
        var c = (UInt32(truncatingIfNeeded: counter), UInt32(truncatingIfNeeded: counter >> 32), UInt32(0), UInt32(0))
        var k = (UInt32(truncatingIfNeeded: key), UInt32(truncatingIfNeeded: key >> 32))
        for _ in 0..<10 {
            let p0 = UInt64(0xD251_1F53) &* UInt64(c.0)
            let p1 = UInt64(0xCD9E_8D57) &* UInt64(c.2)
            c = (
                UInt32(truncatingIfNeeded: p1 >> 32) ^ c.1 ^ k.0, UInt32(truncatingIfNeeded: p1),
                UInt32(truncatingIfNeeded: p0 >> 32) ^ c.3 ^ k.1, UInt32(truncatingIfNeeded: p0)
            )
            k = (k.0 &+ 0x9E37_79B9, k.1 &+ 0xBB67_AE85)
        }
        return c
    }
}
