import EngineCore

#if canImport(Glibc)
    import Glibc
#endif

extension CPUBackend {
    /// `softmax(q kᵀ · scale + bias) v` per batch and head, scores in float32.
    func attention(_ inputs: [Tensor], scale: Float?) throws(EngineError) -> Tensor {
        try expectInputs(.attention(scale: scale), inputs, 3...4)
        let (q, k, v) = (inputs[0], inputs[1], inputs[2])
        guard q.rank == 4, k.rank == 4, v.rank == 4, q.shape[0] == k.shape[0], q.shape[1] == k.shape[1],
            q.shape[3] == k.shape[3], k.shape[0] == v.shape[0], k.shape[1] == v.shape[1], k.shape[2] == v.shape[2]
        else {
            throw EngineError(.shapeMismatch, "sdpa: q \(q.shape), k \(k.shape), v \(v.shape) must be [b, h, l, d], [b, h, s, d], [b, h, s, dv]")
        }
        let (batches, heads, l, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        let (s, dv) = (k.shape[2], v.shape[3])
        let factor = scale ?? 1 / Float(d).squareRoot()
        let qf = try float32(q), kf = try float32(k), vf = try float32(v)
        var biasValues: [Float]?
        var biasStrides = [0, 0, 0, 0]
        if inputs.count == 4 {
            let bias = inputs[3]
            let shape = try broadcastShape(bias.shape, [batches, heads, l, s], op: .attention(scale: scale))
            guard shape == [batches, heads, l, s] else {
                throw EngineError(.shapeMismatch, "sdpa: bias \(bias.shape) does not broadcast to [\(batches), \(heads), \(l), \(s)]")
            }
            let bf = try float32(bias)
            biasValues = bf.floats()
            biasStrides = broadcastStrides(bf, to: shape)
        }
        var scores = [Float](repeating: 0, count: l * s)
        let result = try makeFloat32([batches, heads, l, dv]) { out in
            for b in 0..<batches {
                for h in 0..<heads {
                    let head = b * heads + h
                    scores.withUnsafeMutableBufferPointer { sc in
                        let p = sc.baseAddress!
                        BLAS.multiply(m: l, n: s, k: d, a: floatPointer(qf) + head * l * d, b: floatPointer(kf) + head * s * d, transposeB: true, c: p)
                        for i in 0..<l {
                            let row = p + i * s
                            var top = -Float.infinity
                            for j in 0..<s {
                                var value = row[j] * factor
                                if let biasValues {
                                    value += biasValues[b * biasStrides[0] + h * biasStrides[1] + i * biasStrides[2] + j * biasStrides[3]]
                                }
                                row[j] = value
                                top = Swift.max(top, value)
                            }
                            var sum: Float = 0
                            for j in 0..<s {
                                row[j] = expf(row[j] - top)
                                sum += row[j]
                            }
                            for j in 0..<s { row[j] /= sum }
                        }
                        BLAS.multiply(m: l, n: dv, k: s, a: p, b: floatPointer(vf) + head * s * dv, c: out + head * l * dv)
                    }
                }
            }
        }
        return try converted(result, to: q.dtype)
    }
}
