import EngineCore

extension CPUBackend {
    enum Reduction {
        case sum, mean, max, variance
    }

    /// Reduces over `axes` (all axes when empty), accumulating in double for sums so long axes stay accurate.
    func reduce(_ op: Op, _ inputs: [Tensor], axes: [Int], keepDims: Bool, kind: Reduction) throws(EngineError) -> Tensor {
        let x = try single(op, inputs)
        var reduced = Set<Int>()
        for a in axes { reduced.insert(try x.axis(a)) }
        if axes.isEmpty { reduced = Set(0..<x.rank) }
        let kept = (0..<x.rank).filter { !reduced.contains($0) }
        let order = kept + reduced.sorted()
        let moved = try contiguous(try float32(x).permuted(order))
        let groups = kept.map { x.shape[$0] }.reduce(1, *)
        let size = reduced.map { x.shape[$0] }.reduce(1, *)
        let values = moved.floats()
        var out = [Float](repeating: 0, count: groups)
        for g in 0..<groups {
            let slice = values[(g * size)..<((g + 1) * size)]
            switch kind {
            case .sum: out[g] = Float(slice.reduce(0.0) { $0 + Double($1) })
            case .mean: out[g] = Float(slice.reduce(0.0) { $0 + Double($1) } / Double(Swift.max(size, 1)))
            case .max: out[g] = slice.max() ?? -.infinity
            case .variance:
                let mean = slice.reduce(0.0) { $0 + Double($1) } / Double(Swift.max(size, 1))
                out[g] = Float(slice.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(Swift.max(size, 1)))
            }
        }
        let shape = keepDims ? (0..<x.rank).map { reduced.contains($0) ? 1 : x.shape[$0] } : kept.map { x.shape[$0] }
        return try converted(try Tensor(out, shape: shape), to: x.dtype.isFloatingPoint ? x.dtype : .float32)
    }
}
