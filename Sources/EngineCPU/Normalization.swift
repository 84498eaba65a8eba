import EngineCore
import Parallelism

#if canImport(Glibc)
    import Glibc
#endif

extension CPUBackend {
    /// Rows of the last axis, each normalised by `body(row, count, out)` in parallel.
    func rowwise(_ x: Tensor, _ body: @escaping (UnsafePointer<Float>, Int, UnsafeMutablePointer<Float>) -> Void) throws(EngineError) -> Tensor {
        let xf = try float32(x)
        let width = x.shape.last ?? 1
        let rows = x.count / Swift.max(width, 1)
        return try makeFloat32(x.shape) { out in
            let shared = UncheckedSendable((floatPointer(xf), out, body))
            let parts = ranges(of: rows, parts: activeProcessorCount * 4, minimum: 16)
            parallelFor(parts.count) { part in
                let (src, dst, body) = shared.value
                for r in parts[part] { body(src + r * width, width, dst + r * width) }
            }
        }
    }

    func layerNorm(_ inputs: [Tensor], eps: Float) throws(EngineError) -> Tensor {
        try expectInputs(.layerNorm(eps: eps), inputs, 1...3)
        let x = inputs[0], width = x.shape.last ?? 0
        for p in inputs.dropFirst() where p.shape != [width] {
            throw EngineError(.shapeMismatch, "layer_norm: parameter \(p.shape) does not match the last axis of \(x.shape)")
        }
        let weight = inputs.count > 1 ? try float32(inputs[1]).floats() : nil
        let bias = inputs.count > 2 ? try float32(inputs[2]).floats() : nil
        let result = try rowwise(x) { row, n, out in
            var mean: Float = 0
            for i in 0..<n { mean += row[i] }
            mean /= Float(n)
            var variance: Float = 0
            for i in 0..<n { variance += (row[i] - mean) * (row[i] - mean) }
            variance /= Float(n)
            let inverse = 1 / (variance + eps).squareRoot()
            for i in 0..<n {
                var v = (row[i] - mean) * inverse
                if let weight { v *= weight[i] }
                if let bias { v += bias[i] }
                out[i] = v
            }
        }
        return try converted(result, to: x.dtype)
    }

    /// T5's norm: `x / √(mean(x²) + eps) · w`, no mean subtraction, no bias.
    func rmsNorm(_ inputs: [Tensor], eps: Float) throws(EngineError) -> Tensor {
        try expectInputs(.rmsNorm(eps: eps), inputs, 2...2)
        let x = inputs[0], width = x.shape.last ?? 0
        guard inputs[1].shape == [width] else {
            throw EngineError(.shapeMismatch, "t5_rms_norm: weight \(inputs[1].shape) does not match the last axis of \(x.shape)")
        }
        let weight = try float32(inputs[1]).floats()
        let result = try rowwise(x) { row, n, out in
            var squares: Float = 0
            for i in 0..<n { squares += row[i] * row[i] }
            let inverse = 1 / (squares / Float(n) + eps).squareRoot()
            for i in 0..<n { out[i] = weight[i] * (row[i] * inverse) }
        }
        return try converted(result, to: x.dtype)
    }

    /// The Wan VAE norm over axis 1: `x / max(‖x‖₂, eps) · √C · γ (+ β)`, γ and β holding one value per channel.
    func channelRMSNorm(_ inputs: [Tensor], eps: Float) throws(EngineError) -> Tensor {
        try expectInputs(.channelRMSNorm(eps: eps), inputs, 2...3)
        let x = inputs[0]
        guard x.rank >= 2 else { throw EngineError(.shapeMismatch, "channel_rms_norm: input \(x.shape) has no channel axis") }
        let channels = x.shape[1]
        let gamma = try float32(inputs[1]).floats()
        let bias = inputs.count == 3 ? try float32(inputs[2]).floats() : nil
        guard gamma.count == channels, bias == nil || bias!.count == channels else {
            throw EngineError(.shapeMismatch, "channel_rms_norm: gamma \(inputs[1].shape) does not hold one value per channel of \(x.shape)")
        }
        let spatial = x.shape.dropFirst(2).reduce(1, *), batches = x.shape[0]
        let scale = Float(channels).squareRoot()
        let xf = try float32(x)
        let result = try makeFloat32(x.shape) { out in
            let src = floatPointer(xf)
            for b in 0..<batches {
                for p in 0..<spatial {
                    var squares: Float = 0
                    for ch in 0..<channels {
                        let v = src[(b * channels + ch) * spatial + p]
                        squares += v * v
                    }
                    let inverse = 1 / Swift.max(squares.squareRoot(), eps)
                    for ch in 0..<channels {
                        let i = (b * channels + ch) * spatial + p
                        out[i] = src[i] * inverse * scale * gamma[ch] + (bias?[ch] ?? 0)
                    }
                }
            }
        }
        return try converted(result, to: x.dtype)
    }

    func softmax(_ inputs: [Tensor], axis: Int) throws(EngineError) -> Tensor {
        let x = try single(.softmax(axis: axis), inputs)
        let a = try x.axis(axis)
        // Move the axis last, normalise rows, move it back.
        var order = Array(0..<x.rank)
        order.remove(at: a)
        order.append(a)
        let moved = try contiguous(try x.permuted(order))
        let result = try rowwise(moved) { row, n, out in
            var top = -Float.infinity
            for i in 0..<n { top = Swift.max(top, row[i]) }
            var sum: Float = 0
            for i in 0..<n {
                out[i] = expf(row[i] - top)
                sum += out[i]
            }
            for i in 0..<n { out[i] /= sum }
        }
        var inverse = [Int](repeating: 0, count: x.rank)
        for (i, d) in order.enumerated() { inverse[d] = i }
        return try converted(try contiguous(try result.permuted(inverse)), to: x.dtype)
    }
}
