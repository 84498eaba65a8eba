import EngineCore
import Parallelism

extension CPUBackend {
    /// `x · wᵀ + b`, in float32 whatever the storage types; the output takes x's dtype.
    func linear(_ inputs: [Tensor]) throws(EngineError) -> Tensor {
        try expectInputs(.linear, inputs, 2...3)
        let (x, w) = (inputs[0], inputs[1])
        guard w.rank == 2, let inFeatures = x.shape.last, inFeatures == w.shape[1] else {
            throw EngineError(.shapeMismatch, "linear: input \(x.shape) does not match weight \(w.shape) ([out, in])")
        }
        let outFeatures = w.shape[0]
        if inputs.count == 3 {
            guard inputs[2].shape == [outFeatures] else {
                throw EngineError(.shapeMismatch, "linear: bias \(inputs[2].shape) does not match \(outFeatures) outputs")
            }
        }
        let rows = x.count / Swift.max(inFeatures, 1)
        let xf = try float32(x), wf = try float32(w)
        let bias = inputs.count == 3 ? try float32(inputs[2]) : nil
        let result = try makeFloat32(Array(x.shape.dropLast()) + [outFeatures]) { out in
            BLAS.multiply(
                m: rows, n: outFeatures, k: inFeatures, a: floatPointer(xf), b: floatPointer(wf), transposeB: true, c: out)
            if let bias {
                let b = floatPointer(bias)
                for r in 0..<rows { for j in 0..<outFeatures { out[r * outFeatures + j] += b[j] } }
            }
        }
        return try converted(result, to: x.dtype)
    }

    /// Batched `a · b` with the leading axes broadcast.
    func matmul(_ inputs: [Tensor]) throws(EngineError) -> Tensor {
        try expectInputs(.matmul, inputs, 2...2)
        let (a, b) = (inputs[0], inputs[1])
        guard a.rank >= 2, b.rank >= 2, a.shape[a.rank - 1] == b.shape[b.rank - 2] else {
            throw EngineError(.shapeMismatch, "matmul: \(a.shape) · \(b.shape) do not chain")
        }
        let (m, k, n) = (a.shape[a.rank - 2], a.shape[a.rank - 1], b.shape[b.rank - 1])
        let batch = try broadcastShape(Array(a.shape.dropLast(2)), Array(b.shape.dropLast(2)), op: .matmul)
        let batches = batch.reduce(1, *)
        let af = try float32(a), bf = try float32(b)
        // Batch index of each operand: broadcast axes repeat the same matrix.
        func matrixIndex(_ t: Tensor, _ flat: Int) -> Int {
            let lead = Array(t.shape.dropLast(2))
            var index = 0, step = 1, rest = flat
            var position = [Int](repeating: 0, count: batch.count)
            for d in stride(from: batch.count - 1, through: 0, by: -1) {
                position[d] = rest % batch[d]
                rest /= batch[d]
            }
            for d in stride(from: lead.count - 1, through: 0, by: -1) {
                let p = lead[d] == 1 ? 0 : position[d + batch.count - lead.count]
                index += p * step
                step *= lead[d]
            }
            return index
        }
        let result = try makeFloat32(batch + [m, n]) { out in
            for i in 0..<batches {
                BLAS.multiply(
                    m: m, n: n, k: k, a: floatPointer(af) + matrixIndex(a, i) * m * k,
                    b: floatPointer(bf) + matrixIndex(b, i) * k * n, c: out + i * m * n)
            }
        }
        return try converted(result, to: a.dtype)
    }

    /// NCHW convolution by im2col and one matrix product per image.
    func conv2d(_ inputs: [Tensor], stride: [Int], padding: [Int]) throws(EngineError) -> Tensor {
        try expectInputs(.conv2d(stride: stride, padding: padding), inputs, 2...3)
        let (x, w) = (inputs[0], inputs[1])
        guard x.rank == 4, w.rank == 4, x.shape[1] == w.shape[1] else {
            throw EngineError(.shapeMismatch, "conv2d: input \(x.shape) (NCHW) does not match weight \(w.shape) ([o, c, kh, kw])")
        }
        let (sh, sw) = (stride.first ?? 1, stride.count > 1 ? stride[1] : stride.first ?? 1)
        let (ph, pw) = (padding.first ?? 0, padding.count > 1 ? padding[1] : padding.first ?? 0)
        guard sh > 0, sw > 0, ph >= 0, pw >= 0 else {
            throw EngineError(.invalidArgument, "conv2d: stride \(stride) must be positive and padding \(padding) non-negative")
        }
        let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (o, kh, kw) = (w.shape[0], w.shape[2], w.shape[3])
        let ho = (h + 2 * ph - kh) / sh + 1, wo = (wd + 2 * pw - kw) / sw + 1
        guard ho > 0 && wo > 0 else { throw EngineError(.shapeMismatch, "conv2d: kernel \(kh)x\(kw) is larger than the padded input \(h)x\(wd)") }
        let xf = try float32(x), wf = try float32(w)
        let bias = inputs.count == 3 ? try float32(inputs[2]) : nil
        let patch = c * kh * kw, pixels = ho * wo
        let direct = kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0
        if !direct && sh == 1 && sw == 1 {
            return try converted(try shiftedConvolution(x: xf, w: wf, bias: bias, padding: (ph, pw)), to: x.dtype)
        }
        // Every element is written by the im2col below, so the buffer starts uninitialised.
        var columns = [Float](unsafeUninitializedCapacity: direct ? 0 : patch * pixels) { _, count in count = direct ? 0 : patch * pixels }
        let result = try makeFloat32([n, o, ho, wo]) { out in
            for image in 0..<n {
                let src = floatPointer(xf) + image * c * h * wd
                let dst = out + image * o * pixels
                if direct {
                    BLAS.multiply(m: o, n: pixels, k: c, a: floatPointer(wf), b: src, c: dst)
                } else {
                    columns.withUnsafeMutableBufferPointer { cols in
                        let shared = UncheckedSendable((src, cols.baseAddress!))
                        parallelFor(c) { channel in
                            let (src, cols) = shared.value
                            for ky in 0..<kh {
                                for kx in 0..<kw {
                                    let row = cols + ((channel * kh + ky) * kw + kx) * pixels
                                    // Output columns whose input column lies inside the image: [first, last).
                                    let first = Swift.max(0, (pw - kx + sw - 1) / sw)
                                    let last = Swift.min(wo, Swift.max(first, (wd + pw - kx + sw - 1) / sw))
                                    for oy in 0..<ho {
                                        let iy = oy * sh - ph + ky
                                        let dst = row + oy * wo
                                        guard iy >= 0 && iy < h else {
                                            dst.update(repeating: 0, count: wo)
                                            continue
                                        }
                                        let line = src + (channel * h + iy) * wd
                                        if first > 0 { dst.update(repeating: 0, count: first) }
                                        if sw == 1 {
                                            dst.advanced(by: first).update(from: line + (first - pw + kx), count: last - first)
                                        } else {
                                            for ox in first..<last { dst[ox] = line[ox * sw - pw + kx] }
                                        }
                                        if last < wo { dst.advanced(by: last).update(repeating: 0, count: wo - last) }
                                    }
                                }
                            }
                        }
                        BLAS.multiply(m: o, n: pixels, k: patch, a: floatPointer(wf), b: cols.baseAddress!, c: dst)
                    }
                }
                if let bias {
                    let b = floatPointer(bias)
                    for channel in 0..<o { for p in 0..<pixels { dst[channel * pixels + p] += b[channel] } }
                }
            }
        }
        return try converted(result, to: x.dtype)
    }

    /// A stride-1 convolution without im2col: the input is padded once, and each kernel tap (ky, kx) adds one matrix
    /// product whose B operand is the padded planes shifted by that tap. Outputs are computed on the padded width
    /// (so every shifted operand is a plain strided matrix) and the extra columns dropped at the end.
    func shiftedConvolution(x: Tensor, w: Tensor, bias: Tensor?, padding: (Int, Int)) throws(EngineError) -> Tensor {
        let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (o, kh, kw) = (w.shape[0], w.shape[2], w.shape[3])
        let (ph, pw) = padding
        let (hp, wp) = (h + 2 * ph, wd + 2 * pw)
        let ho = hp - kh + 1, wo = wp - kw + 1
        // One spare row so the last tap's shifted run stays inside each plane.
        let plane = (hp + 1) * wp
        let span = ho * wp
        var padded = [Float](repeating: 0, count: c * plane)
        var wide = [Float](unsafeUninitializedCapacity: o * span) { _, count in count = o * span }
        // Weights regrouped per tap: [kh·kw][o][c].
        var taps = [Float](unsafeUninitializedCapacity: kh * kw * o * c) { _, count in count = kh * kw * o * c }
        let weights = floatPointer(w)
        for t in 0..<(kh * kw) {
            for oc in 0..<o { for ic in 0..<c { taps[(t * o + oc) * c + ic] = weights[((oc * c + ic) * kh * kw) + t] } }
        }
        let b = bias.map { $0.floats() }
        return try makeFloat32([n, o, ho, wo]) { out in
            let src = floatPointer(x)
            for image in 0..<n {
                padded.withUnsafeMutableBufferPointer { p in
                    for ch in 0..<c {
                        for y in 0..<h {
                            (p.baseAddress! + ch * plane + (y + ph) * wp + pw).update(from: src + ((image * c + ch) * h + y) * wd, count: wd)
                        }
                    }
                }
                padded.withUnsafeBufferPointer { p in
                    taps.withUnsafeBufferPointer { tapWeights in
                        wide.withUnsafeMutableBufferPointer { result in
                            for t in 0..<(kh * kw) {
                                let (ky, kx) = (t / kw, t % kw)
                                BLAS.multiply(
                                    m: o, n: span, k: c, a: tapWeights.baseAddress! + t * o * c, b: p.baseAddress! + ky * wp + kx,
                                    ldb: plane, c: result.baseAddress!, accumulate: t > 0)
                            }
                        }
                    }
                }
                for oc in 0..<o {
                    let add = b?[oc] ?? 0
                    for y in 0..<ho {
                        let row = out + ((image * o + oc) * ho + y) * wo
                        for xx in 0..<wo { row[xx] = wide[oc * span + y * wp + xx] + add }
                    }
                }
            }
        }
    }

    /// Conv3d whose kernel equals its stride: each patch is one row of a matrix product.
    func patchEmbed3D(_ inputs: [Tensor], patch: [Int]) throws(EngineError) -> Tensor {
        try expectInputs(.patchEmbed3D(patch: patch), inputs, 2...3)
        let (x, w) = (inputs[0], inputs[1])
        // Like Conv3d with stride = kernel, a remainder that does not fill a patch is dropped.
        guard patch.count == 3, x.rank == 5, w.rank == 5, w.shape[1] == x.shape[1], Array(w.shape[2...]) == patch,
            patch.allSatisfy({ $0 > 0 }), x.shape[2] >= patch[0], x.shape[3] >= patch[1], x.shape[4] >= patch[2]
        else {
            throw EngineError(.shapeMismatch, "patch_embed_3d: input \(x.shape), weight \(w.shape) and patch \(patch) do not fit")
        }
        let (n, c, t, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3], x.shape[4])
        let (pt, ph, pw) = (patch[0], patch[1], patch[2])
        let (tt, hh, ww) = (t / pt, h / ph, wd / pw)
        let o = w.shape[0], k = c * pt * ph * pw, tokens = tt * hh * ww
        let xf = try float32(x), wf = try float32(w)
        var rows = [Float](repeating: 0, count: tokens * k)
        var products = [Float](repeating: 0, count: tokens * o)
        let b = inputs.count == 3 ? try float32(inputs[2]).floats() : [Float](repeating: 0, count: o)
        let result = try makeFloat32([n, o, tt, hh, ww]) { out in
            let src = floatPointer(xf)
            for image in 0..<n {
                for token in 0..<tokens {
                    let (zt, zh, zw) = (token / (hh * ww), (token / ww) % hh, token % ww)
                    var col = 0
                    for ch in 0..<c {
                        for dt in 0..<pt {
                            for dy in 0..<ph {
                                for dx in 0..<pw {
                                    let index = (((image * c + ch) * t + zt * pt + dt) * h + zh * ph + dy) * wd + zw * pw + dx
                                    rows[token * k + col] = src[index]
                                    col += 1
                                }
                            }
                        }
                    }
                }
                rows.withUnsafeBufferPointer { r in
                    products.withUnsafeMutableBufferPointer { p in
                        BLAS.multiply(m: tokens, n: o, k: k, a: r.baseAddress!, b: floatPointer(wf), transposeB: true, c: p.baseAddress!)
                    }
                }
                for channel in 0..<o {
                    for token in 0..<tokens { out[(image * o + channel) * tokens + token] = products[token * o + channel] + b[channel] }
                }
            }
        }
        return try converted(result, to: x.dtype)
    }
}
