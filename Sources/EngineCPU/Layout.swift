import EngineCore

extension CPUBackend {
    func embedding(_ inputs: [Tensor]) throws(EngineError) -> Tensor {
        try expectInputs(.embedding, inputs, 2...2)
        let (weight, ids) = (inputs[0], inputs[1])
        guard weight.rank == 2, !ids.dtype.isFloatingPoint else {
            throw EngineError(.shapeMismatch, "embedding: weight \(weight.shape) must be [vocabulary, dim] and ids integers, not \(ids.dtype)")
        }
        let (vocabulary, dim) = (weight.shape[0], weight.shape[1])
        let indices = ids.int64s()
        if let bad = indices.first(where: { $0 < 0 || $0 >= vocabulary }) {
            throw EngineError(.invalidArgument, "embedding: id \(bad) is outside the vocabulary of \(vocabulary)")
        }
        let table = try contiguous(weight)
        let out = try Tensor.empty(ids.shape + [dim], dtype: weight.dtype)
        let row = dim * weight.dtype.byteSize
        let src = UnsafeRawPointer(table.storage.hostPointer), dst = out.storage.hostPointer
        for (k, id) in indices.enumerated() { dst.advanced(by: k * row).copyMemory(from: src + Int(id) * row, byteCount: row) }
        return out
    }

    /// Every pixel of the last two axes repeated 2x2.
    func upsampleNearest2x(_ inputs: [Tensor]) throws(EngineError) -> Tensor {
        let x = try single(.upsampleNearest2x, inputs)
        guard x.rank >= 3 else { throw EngineError(.shapeMismatch, "upsample_nearest2x: input \(x.shape) needs height and width axes") }
        let (h, w) = (x.shape[x.rank - 2], x.shape[x.rank - 1])
        let planes = x.count / Swift.max(h * w, 1)
        let xf = try float32(x)
        let result = try makeFloat32(Array(x.shape.dropLast(2)) + [2 * h, 2 * w]) { out in
            let src = floatPointer(xf)
            for p in 0..<planes {
                for y in 0..<(2 * h) {
                    for xx in 0..<(2 * w) { out[(p * 2 * h + y) * 2 * w + xx] = src[(p * h + y / 2) * w + xx / 2] }
                }
            }
        }
        return try converted(result, to: x.dtype)
    }

    func averagePool2x2(_ inputs: [Tensor]) throws(EngineError) -> Tensor {
        let x = try single(.averagePool2x2, inputs)
        guard x.rank >= 3 else { throw EngineError(.shapeMismatch, "avg_pool2x2: input \(x.shape) needs height and width axes") }
        let (h, w) = (x.shape[x.rank - 2], x.shape[x.rank - 1])
        let (ho, wo) = (h / 2, w / 2)
        let planes = x.count / Swift.max(h * w, 1)
        let xf = try float32(x)
        let result = try makeFloat32(Array(x.shape.dropLast(2)) + [ho, wo]) { out in
            let src = floatPointer(xf)
            for p in 0..<planes {
                for y in 0..<ho {
                    for xx in 0..<wo {
                        let base = (p * h + 2 * y) * w + 2 * xx
                        out[(p * ho + y) * wo + xx] = (src[base] + src[base + 1] + src[base + w] + src[base + w + 1]) / 4
                    }
                }
            }
        }
        return try converted(result, to: x.dtype)
    }

    /// Constant padding; `amounts` pairs start at the last axis, as in `torch.nn.functional.pad`.
    func pad(_ inputs: [Tensor], amounts: [Int], value: Float) throws(EngineError) -> Tensor {
        let x = try single(.pad(amounts: amounts, value: value), inputs)
        guard amounts.count % 2 == 0, amounts.count / 2 <= x.rank, amounts.allSatisfy({ $0 >= 0 }) else {
            throw EngineError(.invalidArgument, "pad: amounts \(amounts) must be non-negative pairs for at most \(x.rank) axes")
        }
        var before = [Int](repeating: 0, count: x.rank), after = before
        for pair in 0..<(amounts.count / 2) {
            before[x.rank - 1 - pair] = amounts[2 * pair]
            after[x.rank - 1 - pair] = amounts[2 * pair + 1]
        }
        let shape = (0..<x.rank).map { x.shape[$0] + before[$0] + after[$0] }
        let values = try float32(x).floats()
        let outStrides = Tensor.contiguousStrides(shape)
        let result = try makeFloat32(shape) { out in
            out.update(repeating: value, count: shape.reduce(1, *))
            var index = [Int](repeating: 0, count: x.rank)
            for v in values {
                var position = 0
                for d in 0..<x.rank { position += (index[d] + before[d]) * outStrides[d] }
                out[position] = v
                var d = x.rank - 1
                while d >= 0 {
                    index[d] += 1
                    if index[d] < x.shape[d] { break }
                    index[d] = 0
                    d -= 1
                }
            }
        }
        return try converted(result, to: x.dtype)
    }

    func concat(_ inputs: [Tensor], axis: Int) throws(EngineError) -> Tensor {
        guard let first = inputs.first else { throw EngineError(.invalidArgument, "concat needs at least one input") }
        let a = try first.axis(axis)
        for t in inputs where t.rank != first.rank || t.dtype != first.dtype
            || (0..<t.rank).contains(where: { $0 != a && t.shape[$0] != first.shape[$0] })
        {
            throw EngineError(.shapeMismatch, "concat: \(t.shape) (\(t.dtype)) does not fit \(first.shape) (\(first.dtype)) along axis \(axis)")
        }
        var shape = first.shape
        shape[a] = inputs.reduce(0) { $0 + $1.shape[a] }
        let out = try Tensor.empty(shape, dtype: first.dtype)
        let outer = first.shape[..<a].reduce(1, *)
        let inner = first.shape[(a + 1)...].reduce(1, *) * first.dtype.byteSize
        let dst = out.storage.hostPointer
        var column = 0
        for t in inputs {
            let c = try contiguous(t)
            let chunk = t.shape[a] * inner
            let src = UnsafeRawPointer(c.storage.hostPointer)
            for o in 0..<outer {
                dst.advanced(by: o * shape[a] * inner + column).copyMemory(from: src + o * chunk, byteCount: chunk)
            }
            column += chunk
        }
        return out
    }

    func split(_ inputs: [Tensor], sizes: [Int], axis: Int) throws(EngineError) -> [Tensor] {
        let x = try single(.split(sizes: sizes, axis: axis), inputs)
        let a = try x.axis(axis)
        guard sizes.reduce(0, +) == x.shape[a], sizes.allSatisfy({ $0 >= 0 }) else {
            throw EngineError(.shapeMismatch, "split: sizes \(sizes) do not add up to axis \(axis) of \(x.shape)")
        }
        var start = 0
        var parts: [Tensor] = []
        for size in sizes {
            parts.append(try contiguous(try x.narrowed(a, start: start, length: size)))
            start += size
        }
        return parts
    }
}
