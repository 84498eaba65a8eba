import EngineCPU
import EngineCore

/// The op table on the GPU: each op validated on the host (shapes, dtypes) and enqueued as kernels.
extension CUDABackend {
    func dispatch(_ op: Op, _ inputs: [Tensor]) throws(EngineError) -> [Tensor] {
        switch op {
        case .linear: return [try linear(inputs)]
        case .linearFP8: return [try linearFP8(inputs)]
        case .quantizeFP8:
            let (quantized, inverse) = try quantizedFP8(try contiguous(try single(op, inputs)))
            return [quantized, inverse]
        case .modulatedLayerNorm(let eps): return [try modulatedLayerNorm(inputs, eps: eps)]
        case .rmsNormRope(let eps, let heads): return [try rmsNormRope(inputs, eps: eps, heads: heads)]
        case .gatedResidual: return [try gatedResidual(inputs)]
        case .matmul: return [try matmul(inputs)]
        case .conv2d(let stride, let padding): return [try conv2d(inputs, stride: stride, padding: padding)]
        case .patchEmbed3D(let patch): return [try patchEmbed3D(inputs, patch: patch)]
        case .layerNorm(let eps): return [try layerNorm(inputs, eps: eps)]
        case .rmsNorm(let eps): return [try rmsNorm(inputs, eps: eps)]
        case .channelRMSNorm(let eps): return [try channelRMSNorm(inputs, eps: eps, silu: false)]
        case .channelRMSNormSiLU(let eps): return [try channelRMSNorm(inputs, eps: eps, silu: true)]
        case .silu: return [try unary(op, inputs, code: 0)]
        case .geluTanh: return [try unary(op, inputs, code: 1)]
        case .sigmoid: return [try unary(op, inputs, code: 2)]
        case .scaled(let factor): return [try unary(op, inputs, code: 3, factor)]
        case .exp: return [try unary(op, inputs, code: 4)]
        case .log: return [try unary(op, inputs, code: 8)]
        case .sqrt: return [try unary(op, inputs, code: 5)]
        case .abs: return [try unary(op, inputs, code: 6)]
        case .clamp(let lower, let upper): return [try unary(op, inputs, code: 7, lower, upper)]
        case .add: return [try binary(op, inputs, code: 0)]
        case .subtract: return [try binary(op, inputs, code: 1)]
        case .multiply: return [try binary(op, inputs, code: 2)]
        case .divide: return [try binary(op, inputs, code: 3)]
        case .softmax(let axis): return [try softmax(inputs, axis: axis)]
        case .attention(let scale): return [try attention(inputs, scale: scale)]
        case .ropeInterleaved: return [try ropeInterleaved(inputs)]
        case .ropeFrequencies3D, .t5RelativeBuckets:
            // Input-free tables, computed once per shape on the host, copied over and kept (every transformer pass
            // asks for the same one; tensors are never written after they are made, so sharing is safe).
            // Kept by the op with its parameters (Op is Equatable; a table is only reused for the same shape).
            if let kept = hostTables.withLock({ tables in tables.first { $0.op == op }?.tensors }) { return kept }
            let made = try HostTables.compute(op).map { t throws(EngineError) in try upload(t) }
            hostTables.withLock { tables in
                tables.append((op, made))
                if tables.count > 32 { tables.removeFirst() }
            }
            return made
        case .timestepEmbedding(let dim, let flip, let shift): return [try timestepEmbedding(inputs, dim: dim, flip: flip, shift: shift)]
        case .embedding: return [try embedding(inputs)]
        case .upsampleNearest2x: return [try upsampleNearest2x(try single(op, inputs))]
        case .averagePool2x2: return [try averagePool2x2(try single(op, inputs))]
        case .pad(let amounts, let value): return [try pad(try single(op, inputs), amounts: amounts, value: value)]
        case .concat(let axis): return [try concat(inputs, axis: axis)]
        case .split(let sizes, let axis): return try split(try single(op, inputs), sizes: sizes, axis: axis)
        // A permutation that lands on contiguous memory (attention's output back to tokens) is a view, not a copy.
        case .permute(let dims): return [try contiguous(try single(op, inputs).permuted(dims))]
        case .contiguous: return [try contiguous(try single(op, inputs))]
        case .sum(let axes, let keep): return [try reduce(try single(op, inputs), axes: axes, keepDims: keep, kind: 0)]
        case .mean(let axes, let keep): return [try reduce(try single(op, inputs), axes: axes, keepDims: keep, kind: 1)]
        case .max(let axes, let keep): return [try reduce(try single(op, inputs), axes: axes, keepDims: keep, kind: 2)]
        case .variance(let axes, let keep): return [try reduce(try single(op, inputs), axes: axes, keepDims: keep, kind: 3)]
        case .cast(let dtype): return [try cast(try single(op, inputs), to: dtype)]
        case .randomNormal(let shape, let seed): return [try randomNormal(shape: shape, seed: seed)]
        case .full(let shape, let value, let dtype): return [try full(shape: shape, value: value, dtype: dtype)]
        }
    }

    // MARK: Helpers


    /// Float outputs keep a float input's type; integer inputs give float32 (the CPU oracle's rule for arithmetic
    /// and reductions; unary ops and norms keep the input's type, as there).
    func resultType(_ t: Tensor) -> DType { t.dtype.isFloatingPoint ? t.dtype : .float32 }

    /// The type a product of these operands is computed in: the widest float type among them (FP8 operands are
    /// widened to float32: cuBLASLt multiplies FP8 only in the scaled `linearFP8` form).
    func productType(_ types: [DType]) -> DType {
        let floats = types.filter(\.isFloatingPoint)
        if floats.contains(.float32) || floats.contains(.float8E4M3) || floats.contains(.float8E5M2) || floats.isEmpty { return .float32 }
        if floats.contains(.float16) && floats.contains(.bfloat16) { return .float32 }
        return floats[0]
    }

    /// A view of more than 8 axes cannot be described to a kernel: merge what is contiguous first.
    func checkRank(_ t: Tensor, _ what: String) throws(EngineError) {
        guard t.rank <= KernelArguments.maxRank else {
            throw EngineError(.invalidArgument, "\(what): tensors of more than \(KernelArguments.maxRank) axes are not supported on \(device) (\(t.shape))")
        }
    }

    /// A contiguous copy (the tensor itself when it already is contiguous).
    func contiguous(_ t: Tensor) throws(EngineError) -> Tensor {
        if t.isContiguous { return t }
        return try copy(t)
    }

    /// Always a fresh contiguous copy.
    func copy(_ t: Tensor) throws(EngineError) -> Tensor {
        let out = try empty(t.shape, dtype: t.dtype)
        try copy(t, into: out)
        return out
    }

    /// Copies `source` into the view `destination` of the same shape and dtype (the source may broadcast).
    func copy(_ source: Tensor, into destination: Tensor) throws(EngineError) {
        guard source.shape == destination.shape, source.dtype == destination.dtype else {
            throw EngineError(.shapeMismatch, "copy: \(source) does not fit \(destination)")
        }
        let (src, dst) = Self.mergedAxes(source, destination)
        try checkRank(src, "copy")
        var a = KernelArguments()
        a.operand(src)
        a.operand(dst)
        a.append(Int64(source.count))
        a.append(Int32(source.dtype.byteSize))
        try launchElementwise("copy_view", count: source.count, a)
    }

    /// The same element walk with fewer axes: neighbours that are contiguous in both views merge, size-1 axes go.
    static func mergedAxes(_ a: Tensor, _ b: Tensor) -> (Tensor, Tensor) {
        let merged = mergedAxes([a, b])
        return (merged[0], merged[1])
    }

    /// Views of one shape walked with as few axes as possible: an axis folds into the one before it when it does so
    /// in every view (strides chain, or both are broadcast), and size-1 axes go. Kernels then spend one division per
    /// remaining axis per element, so contiguous operands cost one.
    static func mergedAxes(_ views: [Tensor]) -> [Tensor] {
        guard let first = views.first else { return [] }
        var shape: [Int] = []
        var strides: [[Int]] = Array(repeating: [], count: views.count)
        for i in 0..<first.rank where first.shape[i] != 1 {
            if let last = shape.indices.last, views.indices.allSatisfy({ strides[$0][last] == views[$0].strides[i] * first.shape[i] }) {
                shape[last] *= first.shape[i]
                for v in views.indices { strides[v][last] = views[v].strides[i] }
            } else {
                shape.append(first.shape[i])
                for v in views.indices { strides[v].append(views[v].strides[i]) }
            }
        }
        if shape.isEmpty {
            shape = [1]
            strides = Array(repeating: [1], count: views.count)
        }
        return views.indices.map { v in
            Tensor(storage: views[v].storage, dtype: views[v].dtype, shape: shape, strides: strides[v], offset: views[v].offset)
        }
    }

    // MARK: Making tensors

    func full(shape: [Int], value: Float, dtype: DType) throws(EngineError) -> Tensor {
        guard shape.allSatisfy({ $0 >= 0 }) else { throw EngineError(.invalidArgument, "full: shape \(shape) is negative") }
        let out = try empty(shape, dtype: dtype)
        var a = KernelArguments()
        a.pointer(out)
        a.append(dtype.kernelCode)
        a.append(Int64(out.count))
        a.append(value)
        try launchElementwise("fill", count: out.count, a)
        return out
    }

    func randomNormal(shape: [Int], seed: UInt64) throws(EngineError) -> Tensor {
        guard shape.allSatisfy({ $0 >= 0 }) else { throw EngineError(.invalidArgument, "random_normal: shape \(shape) is negative") }
        let out = try empty(shape, dtype: .float32)
        var a = KernelArguments()
        a.pointer(out)
        a.append(Int64(out.count))
        a.append(seed)
        try launchElementwise("random_normal", count: (out.count + 1) / 2, a)
        return out
    }

    func cast(_ input: Tensor, to dtype: DType) throws(EngineError) -> Tensor {
        let out = try empty(input.shape, dtype: dtype)
        let x = Self.mergedAxes([input, out])[0]
        try checkRank(x, "cast")
        var a = KernelArguments()
        a.operand(x)
        a.pointer(out)
        a.append(dtype.kernelCode)
        a.append(Int64(x.count))
        try launchElementwise("cast_view", count: x.count, a)
        return out
    }

    // MARK: Elementwise

    func unary(_ op: Op, _ inputs: [Tensor], code: Int32, _ first: Float = 0, _ second: Float = 0) throws(EngineError) -> Tensor {
        let input = try single(op, inputs)
        let out = try empty(input.shape, dtype: input.dtype)
        if Self.takesEightWide([input], out) {
            var a = KernelArguments()
            a.pointer(input)
            a.pointer(out)
            a.append(Int64(out.count / 8))
            a.append(code)
            a.append(first)
            a.append(second)
            try launchElementwise("unary_bf16x8", count: out.count / 8, a)
            return out
        }
        let x = Self.mergedAxes([input, out])[0]
        try checkRank(x, op.name)
        var a = KernelArguments()
        a.operand(x)
        a.typed(out)
        a.append(Int64(x.count))
        a.append(code)
        a.append(first)
        a.append(second)
        try launchElementwise("unary", count: x.count, a)
        return out
    }

    /// Whether the eight-wide bf16 kernels take these: every tensor bf16 and contiguous, a multiple of eight values,
    /// 16-byte aligned (the sizes and layouts of the VAE's and the decoder's activations).
    static func takesEightWide(_ inputs: [Tensor], _ out: Tensor) -> Bool {
        let all = inputs + [out]
        return out.count > 0 && out.count % 8 == 0
            && all.allSatisfy { $0.dtype == .bfloat16 && $0.isContiguous && $0.count == out.count && address($0) % 16 == 0 }
    }

    /// Threads a block of the register-row kernels (`*_bf16x8` norms): four 16-byte words each, rows up to 4,096.
    static let rowWordThreads = 128

    /// Whether the register-row norm kernels take rows of `width`: bf16 in and out, contiguous, 16-byte aligned.
    static func takesRowWords(_ x: Tensor, _ out: Tensor, width: Int) -> Bool {
        x.dtype == .bfloat16 && out.dtype == .bfloat16 && x.isContiguous && out.isContiguous && width > 0 && width % 8 == 0
            && width / 8 <= 4 * rowWordThreads && address(x) % 16 == 0 && address(out) % 16 == 0
    }

    func broadcastShape(_ a: [Int], _ b: [Int], op: Op) throws(EngineError) -> [Int] {
        let rank = max(a.count, b.count)
        var shape = [Int](repeating: 1, count: rank)
        for i in 0..<rank {
            let da = i < rank - a.count ? 1 : a[i - (rank - a.count)]
            let db = i < rank - b.count ? 1 : b[i - (rank - b.count)]
            guard da == db || da == 1 || db == 1 else {
                throw EngineError(.shapeMismatch, "\(op): shapes \(a) and \(b) do not broadcast")
            }
            shape[i] = max(da, db)
        }
        return shape
    }

    /// `t` seen with `shape` (stride 0 along broadcast axes).
    func broadcast(_ t: Tensor, to shape: [Int]) -> Tensor {
        let pad = shape.count - t.rank
        let strides = (0..<shape.count).map { i in i < pad || t.shape[i - pad] == 1 ? 0 : t.strides[i - pad] }
        return Tensor(storage: t.storage, dtype: t.dtype, shape: shape, strides: strides, offset: t.offset)
    }

    func binary(_ op: Op, _ inputs: [Tensor], code: Int32) throws(EngineError) -> Tensor {
        guard inputs.count == 2 else { throw EngineError(.invalidArgument, "\(op) takes two inputs") }
        let shape = try broadcastShape(inputs[0].shape, inputs[1].shape, op: op)
        guard shape.count <= KernelArguments.maxRank else {
            throw EngineError(.invalidArgument, "\(op): more than \(KernelArguments.maxRank) axes (\(shape))")
        }
        let out = try empty(shape, dtype: resultType(inputs[0]))
        if inputs.allSatisfy({ $0.shape == shape }), Self.takesEightWide(inputs, out) {
            var a = KernelArguments()
            a.pointer(inputs[0])
            a.pointer(inputs[1])
            a.pointer(out)
            a.append(Int64(out.count / 8))
            a.append(code)
            try launchElementwise("binary_bf16x8", count: out.count / 8, a)
            return out
        }
        // As few axes as the three walks allow: each costs a division per element per operand.
        let walks = Self.mergedAxes([broadcast(inputs[0], to: shape), broadcast(inputs[1], to: shape), out])
        var a = KernelArguments()
        a.operand(walks[0])
        a.operand(walks[1])
        a.typed(out)
        a.append(Int64(out.count))
        a.append(code)
        try launchElementwise("binary", count: out.count, a)
        return out
    }

    // MARK: Norms and reductions

    func layerNorm(_ inputs: [Tensor], eps: Float) throws(EngineError) -> Tensor {
        try expectInputs(.layerNorm(eps: eps), inputs, 1...3)
        let x = try contiguous(inputs[0]), width = x.shape.last ?? 0
        for p in inputs.dropFirst() where p.shape != [width] {
            throw EngineError(.shapeMismatch, "layer_norm: parameter \(p.shape) does not match the last axis of \(x.shape)")
        }
        let weight = inputs.count > 1 ? try contiguous(inputs[1]) : x, bias = inputs.count > 2 ? try contiguous(inputs[2]) : x
        let out = try empty(x.shape, dtype: x.dtype)
        let rows = x.count / max(width, 1)
        let vectorized = Self.takesRowWords(x, out, width: width)
        var a = KernelArguments()
        if vectorized { a.pointer(x) } else { a.typed(x) }
        a.typed(weight)
        a.typed(bias)
        if vectorized { a.pointer(out) } else { a.typed(out) }
        a.append(Int64(rows))
        a.append(Int32(width))
        a.append(eps)
        a.append(Int32(inputs.count > 1 ? 1 : 0))
        a.append(Int32(inputs.count > 2 ? 1 : 0))
        if vectorized {
            try launch("layer_norm_bf16x8", grid: (min(rows, 1 << 20), 1, 1), block: Self.rowWordThreads, a)
        } else {
            try launchRows("layer_norm", rows: rows, a)
        }
        return out
    }

    func rmsNorm(_ inputs: [Tensor], eps: Float) throws(EngineError) -> Tensor {
        try expectInputs(.rmsNorm(eps: eps), inputs, 2...2)
        let x = try contiguous(inputs[0]), width = x.shape.last ?? 0
        guard inputs[1].shape == [width] else {
            throw EngineError(.shapeMismatch, "t5_rms_norm: weight \(inputs[1].shape) does not match the last axis of \(x.shape)")
        }
        let weight = try contiguous(inputs[1])
        let out = try empty(x.shape, dtype: x.dtype)
        let rows = x.count / max(width, 1)
        let vectorized = Self.takesRowWords(x, out, width: width)
        var a = KernelArguments()
        if vectorized { a.pointer(x) } else { a.typed(x) }
        a.typed(weight)
        if vectorized { a.pointer(out) } else { a.typed(out) }
        a.append(Int64(rows))
        a.append(Int32(width))
        a.append(eps)
        if vectorized {
            try launch("rms_norm_bf16x8", grid: (min(rows, 1 << 20), 1, 1), block: Self.rowWordThreads, a)
        } else {
            try launchRows("rms_norm", rows: rows, a)
        }
        return out
    }

    func channelRMSNorm(_ inputs: [Tensor], eps: Float, silu: Bool) throws(EngineError) -> Tensor {
        let op: Op = silu ? .channelRMSNormSiLU(eps: eps) : .channelRMSNorm(eps: eps)
        try expectInputs(op, inputs, 2...3)
        let x = try contiguous(inputs[0])
        guard x.rank >= 2 else { throw EngineError(.shapeMismatch, "\(op.name): input \(x.shape) has no channel axis") }
        let channels = x.shape[1]
        guard inputs[1].count == channels, inputs.count < 3 || inputs[2].count == channels else {
            throw EngineError(.shapeMismatch, "\(op.name): gamma \(inputs[1].shape) does not hold one value per channel of \(x.shape)")
        }
        let gamma = try contiguous(inputs[1]), beta = inputs.count == 3 ? try contiguous(inputs[2]) : gamma
        let spatial = x.shape.dropFirst(2).reduce(1, *)
        let out = try empty(x.shape, dtype: x.dtype)
        let paired = x.dtype == .bfloat16 && spatial % 2 == 0 && Self.address(x) % 4 == 0 && Self.address(out) % 4 == 0
        var a = KernelArguments()
        a.typed(x)
        a.typed(gamma)
        a.typed(beta)
        a.typed(out)
        a.append(Int64(x.shape[0]))
        a.append(Int32(channels))
        a.append(Int64(spatial))
        a.append(eps)
        a.append(Int32(inputs.count == 3 ? 1 : 0))
        a.append(Int32(silu ? 1 : 0))
        a.append(Int32(paired ? 1 : 0))
        let tiles = x.shape[0] * ((spatial + 63) / 64)
        guard tiles > 0 else { return out }
        try launch("channel_rms_norm", grid: (min(tiles, multiprocessors * 16), 1, 1), block: 256, a)
        return out
    }

    func softmax(_ inputs: [Tensor], axis: Int) throws(EngineError) -> Tensor {
        let x = try single(.softmax(axis: axis), inputs)
        let d = try x.axis(axis)
        var order = Array(0..<x.rank)
        order.remove(at: d)
        order.append(d)
        let moved = try contiguous(try x.permuted(order))
        let width = x.rank == 0 ? 1 : x.shape[d]
        let out = try empty(moved.shape, dtype: x.dtype)
        let rows = moved.count / max(width, 1)
        var a = KernelArguments()
        a.typed(moved)
        a.typed(out)
        a.append(Int64(rows))
        a.append(Int32(width))
        try launchRows("softmax_rows", rows: rows, a)
        var inverse = [Int](repeating: 0, count: x.rank)
        for (i, axis) in order.enumerated() { inverse[axis] = i }
        return try contiguous(try out.permuted(inverse))
    }

    /// kind: 0 sum, 1 mean, 2 max, 3 variance (population).
    func reduce(_ x: Tensor, axes: [Int], keepDims: Bool, kind: Int32) throws(EngineError) -> Tensor {
        var reduced = Set<Int>()
        for axis in axes { reduced.insert(try x.axis(axis)) }
        if axes.isEmpty { reduced = Set(0..<x.rank) }
        let kept = (0..<x.rank).filter { !reduced.contains($0) }
        let moved = try contiguous(try x.permuted(kept + reduced.sorted()))
        let rows = kept.map { x.shape[$0] }.reduce(1, *)
        let width = reduced.map { x.shape[$0] }.reduce(1, *)
        let shape = keepDims ? (0..<x.rank).map { reduced.contains($0) ? 1 : x.shape[$0] } : kept.map { x.shape[$0] }
        let out = try empty(shape, dtype: resultType(x))
        var a = KernelArguments()
        a.typed(moved)
        a.typed(out)
        a.append(Int64(rows))
        a.append(Int64(width))
        a.append(kind)
        // Many short rows (AvgDown3D's groups of 2-8): one thread per row; a block per row would idle 250 threads.
        if width <= 64 && rows >= 4096 {
            try launchElementwise("reduce_rows_narrow", count: rows, a)
        } else {
            try launchRows("reduce_rows", rows: rows, a)
        }
        return out
    }

    // MARK: Fused

    func modulatedLayerNorm(_ inputs: [Tensor], eps: Float) throws(EngineError) -> Tensor {
        try expectInputs(.modulatedLayerNorm(eps: eps), inputs, 3...3)
        let x = try contiguous(inputs[0]), width = x.shape.last ?? 0
        let rows = x.count / max(width, 1)
        // The modulation holds one row per leading group of x ([g, 1, d], [g, d] or [d] with g = x.shape[0] or 1);
        // any other broadcast takes the composed path.
        let leading = Array(inputs[1].shape.dropLast()).filter { $0 != 1 }
        let groups = leading.reduce(1, *)
        guard width > 0, inputs[1].shape.last == width, inputs[2].shape == inputs[1].shape, leading.count <= 1,
            groups == 1 || (x.rank >= 2 && groups == x.shape[0] && inputs[1].shape.count >= 2 && inputs[1].shape.first == groups)
        else { return try composed(.modulatedLayerNorm(eps: eps), inputs)[0] }
        var shift = try contiguous(inputs[1]), scale = try contiguous(inputs[2])
        if shift.dtype != scale.dtype { (shift, scale) = (try cast(shift, to: .float32), try cast(scale, to: .float32)) }
        let out = try empty(x.shape, dtype: x.dtype)
        let vectorized = Self.takesRowWords(x, out, width: width)
        var a = KernelArguments()
        if vectorized { a.pointer(x) } else { a.typed(x) }
        a.pointer(shift)
        a.pointer(scale)
        a.append(shift.dtype.kernelCode)
        a.pointer(out)
        a.append(Int64(rows))
        a.append(Int32(width))
        a.append(Int64(rows / groups))
        a.append(eps)
        if vectorized {
            try launch("modulated_layer_norm_bf16x8", grid: (min(rows, 1 << 20), 1, 1), block: Self.rowWordThreads, a)
        } else {
            try launchRows("modulated_layer_norm", rows: rows, a)
        }
        return out
    }

    func rmsNormRope(_ inputs: [Tensor], eps: Float, heads: Int) throws(EngineError) -> Tensor {
        try expectInputs(.rmsNormRope(eps: eps, heads: heads), inputs, 4...4)
        let x = try contiguous(inputs[0])
        guard x.rank == 3, heads > 0, x.shape[2] % heads == 0, (x.shape[2] / heads) % 2 == 0, inputs[1].count == x.shape[2],
            inputs[2].shape == [x.shape[1], x.shape[2] / heads / 2], inputs[3].shape == inputs[2].shape
        else {
            throw EngineError(
                .shapeMismatch, "rms_norm_rope: x \(x.shape) must be [b, l, \(heads)·hd] with a weight [d] and cos, sin [l, hd/2], not \(inputs[2].shape)")
        }
        let weight = try contiguous(inputs[1]), cos = try contiguous(inputs[2])
        var sin = try contiguous(inputs[3])
        if sin.dtype != cos.dtype { sin = try cast(sin, to: cos.dtype) }
        let (batch, tokens, width) = (x.shape[0], x.shape[1], x.shape[2])
        let out = try empty([batch, tokens, heads, width / heads], dtype: x.dtype)
        let vectorized = Self.takesRowWords(x, out, width: width) && (width / heads) % 8 == 0
        var a = KernelArguments()
        if vectorized { a.pointer(x) } else { a.typed(x) }
        a.typed(weight)
        a.pointer(cos)
        a.pointer(sin)
        a.append(cos.dtype.kernelCode)
        a.pointer(out)
        a.append(Int64(batch * tokens))
        a.append(Int32(width))
        a.append(Int32(width / heads))
        a.append(Int64(tokens))
        a.append(eps)
        if vectorized {
            try launch("rms_norm_rope_bf16x8", grid: (min(batch * tokens, 1 << 20), 1, 1), block: Self.rowWordThreads, a)
        } else {
            try launchRows("rms_norm_rope", rows: batch * tokens, a)
        }
        return out
    }

    func gatedResidual(_ inputs: [Tensor]) throws(EngineError) -> Tensor {
        try expectInputs(.gatedResidual, inputs, 3...3)
        let shape = try broadcastShape(try broadcastShape(inputs[0].shape, inputs[1].shape, op: .gatedResidual), inputs[2].shape, op: .gatedResidual)
        guard shape.count <= KernelArguments.maxRank else { throw EngineError(.invalidArgument, "gated_residual: more than 8 axes (\(shape))") }
        // The kernel stores in x's type, so an integer x takes the composed path.
        guard inputs[0].dtype.isFloatingPoint else { return try composed(.gatedResidual, inputs)[0] }
        let out = try empty(shape, dtype: inputs[0].dtype)
        // The transformer's case: x and y of the output's shape, the gate one row for all or one per leading group.
        let (x, y, gate) = (inputs[0], inputs[1], inputs[2])
        let width = shape.last ?? 0
        let gateRows = width > 0 ? gate.count / width : 0
        let gateFits =
            gateRows > 0 && gate.isContiguous && gate.shape.last == width && gateRows * width == gate.count
            && (gateRows == 1
                ? gate.shape.dropLast().allSatisfy { $0 == 1 }
                : gate.rank == shape.count && gate.shape[0] == shape[0] && gate.shape.dropFirst().dropLast().allSatisfy { $0 == 1 })
        if x.shape == shape, y.shape == shape, width % 8 == 0, gateFits, Self.takesEightWide([x, y], out) {
            var a = KernelArguments()
            a.pointer(x)
            a.pointer(y)
            a.typed(gate)
            a.pointer(out)
            a.append(Int64(out.count / 8))
            a.append(Int32(width))
            a.append(Int64(out.count / gateRows))
            try launchElementwise("gated_residual_bf16x8", count: out.count / 8, a)
            return out
        }
        var a = KernelArguments()
        for t in Self.mergedAxes(inputs.map { broadcast($0, to: shape) } + [out]).dropLast() { a.operand(t) }
        a.pointer(out)
        a.append(Int64(out.count))
        try launchElementwise("gated_residual", count: out.count, a)
        return out
    }

    // MARK: Positional

    func ropeInterleaved(_ inputs: [Tensor]) throws(EngineError) -> Tensor {
        try expectInputs(.ropeInterleaved, inputs, 3...3)
        let x = inputs[0]
        guard x.rank == 4, let d = x.shape.last, d % 2 == 0, inputs[1].shape == [x.shape[1], d / 2], inputs[2].shape == inputs[1].shape else {
            throw EngineError(
                .shapeMismatch, "rope_apply: x \(x.shape) must be [b, l, h, d] with cos and sin [l, d/2], not \(inputs[1].shape), \(inputs[2].shape)")
        }
        let cos = try contiguous(inputs[1])
        var sin = try contiguous(inputs[2])
        if sin.dtype != cos.dtype { sin = try cast(sin, to: cos.dtype) }
        let out = try empty(x.shape, dtype: x.dtype)
        var a = KernelArguments()
        a.operand(x)
        a.pointer(cos)
        a.pointer(sin)
        a.append(cos.dtype.kernelCode)
        a.typed(out)
        try launchElementwise("rope_interleaved", count: x.count / 2, a)
        return out
    }

    func timestepEmbedding(_ inputs: [Tensor], dim: Int, flip: Bool, shift: Float) throws(EngineError) -> Tensor {
        let t = try contiguous(try single(.timestepEmbedding(dim: dim, flipSinToCos: flip, downscaleFreqShift: shift), inputs))
        guard t.rank == 1, dim > 1 else {
            throw EngineError(.shapeMismatch, "timestep_embedding: timesteps \(t.shape) must be [n] and dim \(dim) above 1")
        }
        let out = try empty([t.count, dim], dtype: .float32)
        var a = KernelArguments()
        a.typed(t)
        a.pointer(out)
        a.append(Int32(t.count))
        a.append(Int32(dim))
        a.append(Int32(flip ? 1 : 0))
        a.append(shift)
        try launchElementwise("timestep_embedding", count: out.count, a)
        return out
    }

    // MARK: Layout

    /// Ids outside the vocabulary give zero rows (a GPU cannot throw without waiting; the CPU oracle refuses them).
    func embedding(_ inputs: [Tensor]) throws(EngineError) -> Tensor {
        try expectInputs(.embedding, inputs, 2...2)
        let weight = try contiguous(inputs[0]), ids = try contiguous(inputs[1])
        guard weight.rank == 2, !ids.dtype.isFloatingPoint else {
            throw EngineError(.shapeMismatch, "embedding: weight \(weight.shape) must be [vocabulary, dim] and ids integers, not \(ids.dtype)")
        }
        let out = try empty(ids.shape + [weight.shape[1]], dtype: weight.dtype)
        var a = KernelArguments()
        a.pointer(weight)
        a.append(Int64(weight.shape[0]))
        a.append(Int64(weight.shape[1]))
        a.typed(ids)
        a.pointer(out)
        a.append(Int64(ids.count))
        a.append(Int32(weight.dtype.byteSize))
        try launchElementwise("embedding", count: out.count, a)
        return out
    }

    /// Nearest ×2 as one strided copy: the source read with stride 0 along two inserted axes.
    func upsampleNearest2x(_ x: Tensor) throws(EngineError) -> Tensor {
        guard x.rank >= 3 else { throw EngineError(.shapeMismatch, "upsample_nearest2x: input \(x.shape) needs height and width axes") }
        let lead = Array(x.shape.dropLast(2)), (h, w) = (x.shape[x.rank - 2], x.shape[x.rank - 1])
        let out = try empty(lead + [2 * h, 2 * w], dtype: x.dtype)
        let expandedShape = lead + [h, 2, w, 2]
        let source = Tensor(
            storage: x.storage, dtype: x.dtype, shape: expandedShape,
            strides: Array(x.strides.dropLast(2)) + [x.strides[x.rank - 2], 0, x.strides[x.rank - 1], 0], offset: x.offset)
        try copy(source, into: try out.reshaped(expandedShape))
        return out
    }

    func averagePool2x2(_ input: Tensor) throws(EngineError) -> Tensor {
        guard input.rank >= 3 else { throw EngineError(.shapeMismatch, "avg_pool2x2: input \(input.shape) needs height and width axes") }
        let x = try contiguous(input)
        let (h, w) = (x.shape[x.rank - 2], x.shape[x.rank - 1])
        let outer = x.count / max(h * w, 1)
        let out = try empty(Array(x.shape.dropLast(2)) + [h / 2, w / 2], dtype: x.dtype)
        var a = KernelArguments()
        a.typed(x)
        a.typed(out)
        a.append(Int64(outer))
        a.append(Int64(h))
        a.append(Int64(w))
        try launchElementwise("avg_pool2x2", count: out.count, a)
        return out
    }

    func pad(_ x: Tensor, amounts: [Int], value: Float) throws(EngineError) -> Tensor {
        guard amounts.count % 2 == 0, amounts.count / 2 <= x.rank, amounts.allSatisfy({ $0 >= 0 }) else {
            throw EngineError(.invalidArgument, "pad: amounts \(amounts) must be non-negative pairs for at most \(x.rank) axes")
        }
        var shape = x.shape
        var interior: [(axis: Int, start: Int)] = []
        for pair in 0..<(amounts.count / 2) {
            let axis = x.rank - 1 - pair
            shape[axis] += amounts[2 * pair] + amounts[2 * pair + 1]
            interior.append((axis, amounts[2 * pair]))
        }
        let out = try full(shape: shape, value: value, dtype: x.dtype)
        var target = out
        for (axis, start) in interior { target = try target.narrowed(axis, start: start, length: x.shape[axis]) }
        try copy(x, into: target)
        return out
    }

    func concat(_ inputs: [Tensor], axis: Int) throws(EngineError) -> Tensor {
        guard let first = inputs.first else { throw EngineError(.invalidArgument, "concat needs at least one input") }
        let d = try first.axis(axis)
        for t in inputs where t.rank != first.rank || t.dtype != first.dtype
            || (0..<first.rank).contains(where: { $0 != d && t.shape[$0] != first.shape[$0] })
        {
            throw EngineError(.shapeMismatch, "concat: \(t.shape) (\(t.dtype)) does not fit \(first.shape) (\(first.dtype)) along axis \(axis)")
        }
        var shape = first.shape
        shape[d] = inputs.map { $0.shape[d] }.reduce(0, +)
        let out = try empty(shape, dtype: first.dtype)
        var start = 0
        for t in inputs {
            if t.shape[d] > 0 { try copy(t, into: try out.narrowed(d, start: start, length: t.shape[d])) }
            start += t.shape[d]
        }
        return out
    }

    func split(_ x: Tensor, sizes: [Int], axis: Int) throws(EngineError) -> [Tensor] {
        let d = try x.axis(axis)
        guard sizes.allSatisfy({ $0 >= 0 }), sizes.reduce(0, +) == x.shape[d] else {
            throw EngineError(.shapeMismatch, "split: sizes \(sizes) do not add up to axis \(axis) of \(x.shape)")
        }
        var start = 0
        var parts: [Tensor] = []
        for size in sizes {
            parts.append(try copy(try x.narrowed(d, start: start, length: size)))
            start += size
        }
        return parts
    }
}

/// Input-free tables (rotary angles, T5 buckets) from the CPU oracle's own formulas.
enum HostTables {
    static func compute(_ op: Op) throws(EngineError) -> [Tensor] { try CPUBackend.shared.run(op, []) }
}
