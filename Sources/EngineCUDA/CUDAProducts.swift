import EngineCore

/// Matrix products (cuBLASLt), convolutions as products over NVRTC-built columns, and fused attention.
extension CUDABackend {
    /// One column-major operand of a cuBLASLt product: its stored rows, columns, leading dimension and batch stride.
    struct MatrixOperand {
        var address: UInt64
        var rows: Int
        var columns: Int
        var leading: Int
        var batchStride: Int
        var transposed = false
    }

    /// `C = op(A) · op(B)` (+ bias per row of C, + C itself with `accumulate`), column-major, `batch` times; A, B
    /// and C of one dtype, float32 accumulation, enqueued on the stream.
    /// With `scales` (device pointers to one float each), A and B are FP8 and dequantised by them in the epilogue;
    /// C has `outputType` (A's and B's type otherwise).
    func gemm(
        _ a: MatrixOperand, _ b: MatrixOperand, _ c: MatrixOperand, batch: Int, dtype: DType, outputType: DType? = nil, bias: Tensor? = nil,
        scales: (a: UInt64, b: UInt64)? = nil, accumulate: Bool = false
    ) throws(EngineError) {
        guard let type = CuBLASLt.dataType(dtype), let outType = CuBLASLt.dataType(outputType ?? dtype) else {
            throw EngineError(.unsupportedOp, "matrix products in \(dtype) are not supported on \(device)")
        }
        guard batch > 0, c.rows > 0, c.columns > 0 else { return }
        let needsWorkspace = try withContext { confined throws(EngineError) -> Bool in
            if confined.blas == nil {
                let blas = try CuBLASLt()
                var handle: OpaquePointer?
                guard blas.cublasLtCreate(&handle) == 0 else { throw EngineError(.device, "cublasLtCreate failed") }
                confined.blas = blas
                confined.blasHandle = handle
            }
            return confined.workspace == nil
        }
        if needsWorkspace {
            let block = try allocator.allocate(32 << 20)
            try withContext { confined throws(EngineError) in
                if confined.workspace == nil { confined.workspace = block } else { allocator.release(block) }
            }
        }
        try withContext { confined throws(EngineError) in
            let blas = confined.blas!
            var desc: OpaquePointer?
            guard blas.cublasLtMatmulDescCreate(&desc, CuBLASLt.compute32F, CuBLASLt.dataFloat32) == 0 else {
                throw EngineError(.device, "cublasLtMatmulDescCreate failed")
            }
            defer { _ = blas.cublasLtMatmulDescDestroy(desc) }
            var transA: Int32 = a.transposed ? CuBLASLt.opTranspose : 0, transB: Int32 = b.transposed ? CuBLASLt.opTranspose : 0
            _ = blas.cublasLtMatmulDescSetAttribute(desc, CuBLASLt.transposeA, &transA, 4)
            _ = blas.cublasLtMatmulDescSetAttribute(desc, CuBLASLt.transposeB, &transB, 4)
            if let bias {
                var epilogue: UInt32 = UInt32(CuBLASLt.epilogueBias)
                var pointer = Self.address(bias)
                _ = blas.cublasLtMatmulDescSetAttribute(desc, CuBLASLt.epilogue, &epilogue, 4)
                _ = blas.cublasLtMatmulDescSetAttribute(desc, CuBLASLt.biasPointer, &pointer, 8)
                if var biasType = CuBLASLt.dataType(bias.dtype) {
                    _ = blas.cublasLtMatmulDescSetAttribute(desc, CuBLASLt.biasDataType, &biasType, 4)
                }
            }
            if var (scaleA, scaleB) = scales {
                _ = blas.cublasLtMatmulDescSetAttribute(desc, CuBLASLt.aScalePointer, &scaleA, 8)
                _ = blas.cublasLtMatmulDescSetAttribute(desc, CuBLASLt.bScalePointer, &scaleB, 8)
            }
            var layouts: [OpaquePointer?] = [nil, nil, nil]
            defer { for l in layouts { _ = blas.cublasLtMatrixLayoutDestroy(l) } }
            for (i, operand) in [a, b, c].enumerated() {
                guard blas.cublasLtMatrixLayoutCreate(&layouts[i], i == 2 ? outType : type, UInt64(operand.rows), UInt64(operand.columns), Int64(operand.leading)) == 0
                else { throw EngineError(.device, "cublasLtMatrixLayoutCreate failed") }
                if batch > 1 {
                    var count = Int32(batch), stride = Int64(operand.batchStride)
                    _ = blas.cublasLtMatrixLayoutSetAttribute(layouts[i], CuBLASLt.batchCount, &count, 4)
                    _ = blas.cublasLtMatrixLayoutSetAttribute(layouts[i], CuBLASLt.stridedBatchOffset, &stride, 8)
                }
            }
            var alpha: Float = 1, beta: Float = accumulate ? 1 : 0
            let space = confined.workspace!
            // An algorithm from cuBLASLt's heuristic with our workspace and the operands' real alignment, cached per
            // shape (the implicit query allows no workspace, which excludes the fastest kernels and every FP8 one).
            func alignment(_ address: UInt64) -> UInt32 { UInt32(min(256, 1 << min(address.trailingZeroBitCount, 8))) }
            let key = "\(dtype) \(outputType ?? dtype) \([a, b, c].map { "\($0.rows)x\($0.columns)/\($0.leading)/\($0.batchStride)/\($0.transposed)" }) "
                + "\(batch) \(bias?.dtype.rawValue ?? "-") \(scales != nil) \(accumulate) \([a.address, b.address, c.address].map(alignment))"
            if confined.algorithms[key] == nil {
                var preference: OpaquePointer?
                guard blas.cublasLtMatmulPreferenceCreate(&preference) == 0 else { throw EngineError(.device, "cublasLtMatmulPreferenceCreate failed") }
                defer { _ = blas.cublasLtMatmulPreferenceDestroy(preference) }
                var bytes = UInt64(space.size)
                _ = blas.cublasLtMatmulPreferenceSetAttribute(preference, CuBLASLt.preferenceMaxWorkspace, &bytes, 8)
                for (attribute, address) in zip(CuBLASLt.preferenceMinAlignment, [a.address, b.address, c.address, c.address]) {
                    var bytes = alignment(address)
                    _ = blas.cublasLtMatmulPreferenceSetAttribute(preference, attribute, &bytes, 4)
                }
                var result = [UInt8](repeating: 0, count: CuBLASLt.heuristicResultSize)
                var returned: Int32 = 0
                let found = result.withUnsafeMutableBytes { buffer in
                    blas.cublasLtMatmulAlgoGetHeuristic(
                        confined.blasHandle, desc, layouts[0], layouts[1], layouts[2], layouts[2], preference, 1, buffer.baseAddress!, &returned)
                }
                let usable = found == 0 && returned > 0 && result.withUnsafeBytes { $0.load(fromByteOffset: 72, as: Int32.self) } == 0
                confined.algorithms[key] = usable ? Array(result.prefix(64)) : []
            }
            let chosen = confined.algorithms[key] ?? []
            if chosen.isEmpty && scales != nil {
                throw EngineError(.unsupportedOp, "cuBLASLt offers no FP8 algorithm for \(c.rows)x\(c.columns)x\(a.transposed ? a.rows : a.columns)")
            }
            func multiply(_ algorithm: UnsafeRawPointer?) -> Int32 {
                blas.cublasLtMatmul(
                    confined.blasHandle, desc, &alpha, a.address, layouts[0], b.address, layouts[1], &beta, c.address, layouts[2], c.address,
                    layouts[2], algorithm, UInt64(space.address), space.size, confined.stream)
            }
            var status = chosen.isEmpty ? multiply(nil) : chosen.withUnsafeBytes { multiply($0.baseAddress) }
            if status != 0 && !chosen.isEmpty && scales == nil {
                // The implicit query as a last resort, remembered for this shape.
                confined.algorithms[key] = []
                status = multiply(nil)
            }
            guard status == 0 else {
                throw EngineError(
                    .device, "cublasLtMatmul failed with status \(status) for \(dtype) \(c.rows)x\(c.columns)x\(a.transposed ? a.rows : a.columns) (batch \(batch))")
            }
        }
    }

    /// `x[..., k] · wᵀ + b`, computed in the widest of the operands' types and returned in x's (the CPU oracle's
    /// single rounding); models keep weights in their activations' type, so the fast path converts nothing.
    func linear(_ inputs: [Tensor]) throws(EngineError) -> Tensor {
        try expectInputs(.linear, inputs, 2...3)
        let x = try contiguous(inputs[0])
        guard inputs[1].rank == 2, let k = x.shape.last, k == inputs[1].shape[1] else {
            throw EngineError(.shapeMismatch, "linear: input \(x.shape) does not match weight \(inputs[1].shape)")
        }
        let n = inputs[1].shape[0], m = x.count / max(k, 1)
        guard inputs.count < 3 || inputs[2].shape == [n] else {
            throw EngineError(.shapeMismatch, "linear: bias \(inputs[2].shape) does not match \(n) outputs")
        }
        let outType = resultType(x)
        let compute = productType(inputs.map(\.dtype))
        func operand(_ t: Tensor) throws(EngineError) -> Tensor { try contiguous(t.dtype == compute ? t : try cast(t, to: compute)) }
        let input = try operand(x), weight = try operand(inputs[1])
        let bias = inputs.count == 3 ? try operand(inputs[2]) : nil
        var out = try empty(Array(x.shape.dropLast()) + [n], dtype: compute)
        if m > 0, n > 0 {
            if k == 0 {
                out = try full(shape: out.shape, value: 0, dtype: compute)
                if let bias { out = try binary(.add, [out, bias], code: 0) }
            } else {
                try gemm(
                    MatrixOperand(address: Self.address(weight), rows: k, columns: n, leading: k, batchStride: 0, transposed: true),
                    MatrixOperand(address: Self.address(input), rows: k, columns: m, leading: k, batchStride: 0),
                    MatrixOperand(address: Self.address(out), rows: n, columns: m, leading: n, batchStride: 0), batch: 1, dtype: compute, bias: bias)
            }
        }
        return out.dtype == outType ? out : try cast(out, to: outType)
    }

    /// FlashWorld's FP8 linear fused: one amax kernel, one quantisation kernel, one e4m3 x e4m3 cuBLASLt product whose
    /// epilogue dequantises by both scales and adds the bias. Shapes cuBLASLt's FP8 path cannot take (dimensions not
    /// multiples of 16) and GPUs before sm_89 run the composed reference instead.
    func linearFP8(_ inputs: [Tensor]) throws(EngineError) -> Tensor {
        guard (3...4).contains(inputs.count), inputs[1].dtype == .float8E4M3, inputs[1].rank == 2, inputs[2].count == 1,
            let k = inputs[0].shape.last, k == inputs[1].shape[1]
        else {
            throw EngineError(.invalidArgument, "linear_fp8 takes x [..., k], an e4m3 weight [n, k], its scale [1] and an optional bias [n]")
        }
        let outType = resultType(inputs[0])
        let n = inputs[1].shape[0], m = inputs[0].count / max(k, 1)
        guard architecture >= 89, k % 16 == 0, n % 16 == 0, m > 0, outType == .bfloat16 || outType == .float32 else {
            return try composed(.linearFP8, inputs)[0]
        }
        let x = try contiguous(inputs[0]), weight = try contiguous(inputs[1])
        let weightScale = try contiguous(inputs[2].dtype == .float32 ? inputs[2] : try cast(inputs[2], to: .float32))
        let (quantized, inverse) = try quantizedFP8(x)
        var bias: Tensor?
        if inputs.count == 4 {
            guard inputs[3].count == n else { throw EngineError(.shapeMismatch, "linear_fp8: bias \(inputs[3].shape) does not match \(n) outputs") }
            bias = try contiguous(inputs[3].dtype == .bfloat16 ? inputs[3] : try cast(inputs[3], to: .bfloat16))
        }
        let out = try empty(Array(x.shape.dropLast()) + [n], dtype: outType)
        func product(bias: Tensor?) throws(EngineError) {
            try gemm(
                MatrixOperand(address: Self.address(weight), rows: k, columns: n, leading: k, batchStride: 0, transposed: true),
                MatrixOperand(address: Self.address(quantized), rows: k, columns: m, leading: k, batchStride: 0),
                MatrixOperand(address: Self.address(out), rows: n, columns: m, leading: n, batchStride: 0), batch: 1, dtype: .float8E4M3,
                outputType: outType, bias: bias, scales: (Self.address(weightScale), Self.address(inverse)))
        }
        // The fused bias epilogue first; without it (bias added after) where cuBLASLt declines; the composed
        // reference where it takes no FP8 product of this shape (remembered per shape, so a refusal is paid once).
        let shape = "\(m)x\(n)x\(k)"
        let refused = fp8Refusals.withLock { state in
            state.calls += 1
            return state.byShape[shape] ?? 0
        }
        func refuse(_ level: Int, _ error: EngineError) {
            fp8Refusals.withLock { state in
                state.byShape[shape] = level
                state.lastError = "\(shape): \(error.message)"
            }
        }
        if refused == 0 {
            do {
                try product(bias: bias)
                return out
            } catch {
                refuse(1, error)
            }
        }
        if refused <= 1 {
            do {
                try product(bias: nil)
                guard let bias else { return out }
                return try binary(.add, [out, bias], code: 0)
            } catch {
                refuse(2, error)
            }
        }
        return try composed(.linearFP8, inputs)[0]
    }

    /// FlashWorld's activation quantisation in two kernels: the amax of the bf16-rounded input (one atomic per
    /// warp), then the e4m3 values and the dequantisation factor. Returns the e4m3 tensor and `[1]` float32.
    func quantizedFP8(_ x: Tensor) throws(EngineError) -> (Tensor, Tensor) {
        // The amax first and the dequantisation factor 256 bytes on: cuBLASLt refuses FP8 scale pointers that are
        // not 16-byte aligned (status 15), so the factor cannot sit right after the amax.
        let scalars = try full(shape: [65], value: 0, dtype: .float32)
        let quantized = try empty(x.shape, dtype: .float8E4M3)
        let inverse = try scalars.narrowed(0, start: 64, length: 1)
        if Self.takesEightWide([x], x), Self.address(quantized) % 8 == 0 {
            var a = KernelArguments()
            a.pointer(x)
            a.append(Int64(x.count / 8))
            a.pointer(scalars)
            try launchElementwise("amax_bf16x8", count: x.count / 8, a)
            a = KernelArguments()
            a.pointer(x)
            a.append(Int64(x.count / 8))
            a.pointer(scalars)
            a.pointer(quantized)
            a.pointer(inverse)
            try launchElementwise("quantize_fp8_bf16x8", count: x.count / 8, a)
            return (quantized, inverse)
        }
        var a = KernelArguments()
        a.typed(x)
        a.append(Int64(x.count))
        a.pointer(scalars)
        try launchElementwise("amax_bf16", count: x.count, a)
        a = KernelArguments()
        a.typed(x)
        a.append(Int64(x.count))
        a.pointer(scalars)
        a.pointer(quantized)
        a.pointer(inverse)
        try launchElementwise("quantize_fp8", count: x.count, a)
        return (quantized, inverse)
    }

    /// Batched `a · b` over broadcast leading axes (an operand broadcast along the batch is read with stride 0).
    func matmul(_ inputs: [Tensor]) throws(EngineError) -> Tensor {
        try expectInputs(.matmul, inputs, 2...2)
        var (a, b) = (inputs[0], inputs[1])
        guard a.rank >= 2, b.rank >= 2, a.shape[a.rank - 1] == b.shape[b.rank - 2] else {
            throw EngineError(.shapeMismatch, "matmul: \(a.shape) and \(b.shape) do not chain")
        }
        let outType = resultType(a)
        let compute = productType([a.dtype, b.dtype])
        if a.dtype != compute { a = try cast(a, to: compute) }
        if b.dtype != compute { b = try cast(b, to: compute) }
        let (m, k, n) = (a.shape[a.rank - 2], a.shape[a.rank - 1], b.shape[b.rank - 1])
        let lead = try broadcastShape(Array(a.shape.dropLast(2)), Array(b.shape.dropLast(2)), op: .matmul)
        let batch = lead.reduce(1, *)
        /// One matrix repeated (stride 0) when the operand has no batch of its own, else every batch laid out.
        func batched(_ t: Tensor, _ rows: Int, _ columns: Int) throws(EngineError) -> (Tensor, Int) {
            if t.count == rows * columns { return (try contiguous(t), 0) }
            return (try contiguous(broadcast(t, to: lead + [rows, columns])), rows * columns)
        }
        let (left, leftStride) = try batched(a, m, k), (right, rightStride) = try batched(b, k, n)
        var out = try empty(lead + [m, n], dtype: compute)
        if m > 0, n > 0, batch > 0 {
            if k == 0 {
                out = try full(shape: out.shape, value: 0, dtype: compute)
            } else {
                try gemm(
                    MatrixOperand(address: Self.address(right), rows: n, columns: k, leading: n, batchStride: rightStride),
                    MatrixOperand(address: Self.address(left), rows: k, columns: m, leading: k, batchStride: leftStride),
                    MatrixOperand(address: Self.address(out), rows: n, columns: m, leading: n, batchStride: m * n), batch: batch, dtype: compute)
            }
        }
        return out.dtype == outType ? out : try cast(out, to: outType)
    }

    /// NCHW convolution: cuDNN's implicit GEMM where cuDNN is loaded, else products of the weight with im2col columns
    /// in chunks of images that bound the columns' memory (a 1x1 stride-1 convolution uses the input itself). The
    /// bias is laid into the output first and the product accumulated onto it, so the sum is rounded once.
    func conv2d(_ inputs: [Tensor], stride: [Int], padding: [Int]) throws(EngineError) -> Tensor {
        try expectInputs(.conv2d(stride: stride, padding: padding), inputs, 2...3)
        guard inputs[0].rank == 4, inputs[1].rank == 4, inputs[1].shape[1] == inputs[0].shape[1] else {
            throw EngineError(.shapeMismatch, "conv2d: input \(inputs[0].shape) and weight \(inputs[1].shape) must be [n, c, h, w] and [o, c, kh, kw]")
        }
        let outType = resultType(inputs[0])
        let compute = productType(inputs.map(\.dtype))
        func operand(_ t: Tensor) throws(EngineError) -> Tensor { try contiguous(t.dtype == compute ? t : try cast(t, to: compute)) }
        let input = try operand(inputs[0]), w = try operand(inputs[1])
        let (batch, channels, height, width) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        let (outChannels, kh, kw) = (w.shape[0], w.shape[2], w.shape[3])
        let sh = stride.first ?? 1, sw = stride.count > 1 ? stride[1] : sh
        let ph = padding.first ?? 0, pw = padding.count > 1 ? padding[1] : ph
        guard sh > 0, sw > 0, ph >= 0, pw >= 0 else { throw EngineError(.invalidArgument, "conv2d: stride \(stride) and padding \(padding) are invalid") }
        guard height + 2 * ph >= kh, width + 2 * pw >= kw, kh > 0, kw > 0 else {
            throw EngineError(.shapeMismatch, "conv2d: kernel \(kh)x\(kw) does not fit input \(input.shape) with padding \(padding)")
        }
        let oh = (height + 2 * ph - kh) / sh + 1, ow = (width + 2 * pw - kw) / sw + 1
        let out: Tensor
        if inputs.count == 3 {
            guard inputs[2].count == outChannels else { throw EngineError(.shapeMismatch, "conv2d: bias \(inputs[2].shape) does not match \(outChannels) outputs") }
            out = try empty([batch, outChannels, oh, ow], dtype: compute)
            let bias = try operand(inputs[2]).reshaped([1, outChannels, 1, 1])
            try copy(broadcast(bias, to: out.shape), into: out)
        } else {
            out = try full(shape: [batch, outChannels, oh, ow], value: 0, dtype: compute)
        }
        let kSize = channels * kh * kw, pixels = oh * ow
        guard batch > 0, outChannels > 0, pixels > 0, kSize > 0 else { return out.dtype == outType ? out : try cast(out, to: outType) }
        if try cudnnConvolution(input, w, into: out, stride: (sh, sw), padding: (ph, pw)) {
            return out.dtype == outType ? out : try cast(out, to: outType)
        }
        let direct = kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0
        let perImage = kSize * pixels * compute.byteSize
        let chunk = direct ? batch : max(1, min(batch, (1 << 30) / max(perImage, 1)))
        let columns = direct ? nil : try empty([chunk, kSize, pixels], dtype: compute)
        var start = 0
        while start < batch {
            let count = min(chunk, batch - start)
            let source = try input.narrowed(0, start: start, length: count)
            var columnAddress = Self.address(source)
            if let columns {
                var a = KernelArguments()
                a.pointer(source)
                a.pointer(columns)
                a.append(Int32(compute.byteSize))
                for v in [count, channels, height, width] { a.append(Int64(v)) }
                for v in [kh, kw, sh, sw, ph, pw] { a.append(Int32(v)) }
                a.append(Int64(oh))
                a.append(Int64(ow))
                try launchElementwise("im2col", count: count * kSize * pixels, a)
                columnAddress = Self.address(columns)
            }
            let target = try out.narrowed(0, start: start, length: count)
            try gemm(
                MatrixOperand(address: columnAddress, rows: pixels, columns: kSize, leading: pixels, batchStride: kSize * pixels),
                MatrixOperand(address: Self.address(w), rows: kSize, columns: outChannels, leading: kSize, batchStride: 0),
                MatrixOperand(address: Self.address(target), rows: pixels, columns: outChannels, leading: pixels, batchStride: outChannels * pixels),
                batch: count, dtype: compute, accumulate: true)
            start += count
        }
        return out.dtype == outType ? out : try cast(out, to: outType)
    }

    /// A Conv3d whose kernel equals its stride: patches gathered by one strided copy, then one product.
    func patchEmbed3D(_ inputs: [Tensor], patch: [Int]) throws(EngineError) -> Tensor {
        try expectInputs(.patchEmbed3D(patch: patch), inputs, 2...3)
        let (x, w) = (inputs[0], inputs[1])
        guard x.rank == 5, w.rank == 5, patch.count == 3, Array(w.shape[2...]) == patch, w.shape[1] == x.shape[1] else {
            throw EngineError(.shapeMismatch, "patch_embed_3d: input \(x.shape), weight \(w.shape) and patch \(patch) do not fit")
        }
        guard patch.allSatisfy({ $0 > 0 }), (0..<3).allSatisfy({ x.shape[2 + $0] >= patch[$0] }) else {
            throw EngineError(.shapeMismatch, "patch_embed_3d: patch \(patch) must be positive and fit input \(x.shape)")
        }
        let (n, c) = (x.shape[0], x.shape[1])
        let (t, h, wd) = (x.shape[2] / patch[0], x.shape[3] / patch[1], x.shape[4] / patch[2])
        let d = w.shape[0], k = c * patch.reduce(1, *)
        // Whole patches only (Conv3d floors).
        let cropped = try x.narrowed(2, start: 0, length: t * patch[0]).narrowed(3, start: 0, length: h * patch[1]).narrowed(4, start: 0, length: wd * patch[2])
        let dense = try contiguous(cropped)
        let grid = try dense.reshaped([n, c, t, patch[0], h, patch[1], wd, patch[2]]).permuted([0, 2, 4, 6, 1, 3, 5, 7])
        let patches = try copy(grid).reshaped([n * t * h * wd, k])
        let tokens = try linear([patches, try contiguous(w).reshaped([d, k])] + inputs.dropFirst(2))
        return try copy(try tokens.reshaped([n, t * h * wd, d]).permuted([0, 2, 1])).reshaped([n, d, t, h, wd])
    }

    /// Scaled dot-product attention on strided q, k, v (and an optional additive bias broadcast to [b, h, l, s]).
    func attention(_ inputs: [Tensor], scale: Float?) throws(EngineError) -> Tensor {
        try expectInputs(.attention(scale: scale), inputs, 3...4)
        let (q, k, v) = (inputs[0], inputs[1], inputs[2])
        guard q.rank == 4, k.rank == 4, v.rank == 4, k.shape[0] == q.shape[0], v.shape[0] == q.shape[0], k.shape[1] == q.shape[1],
            v.shape[1] == q.shape[1], k.shape[3] == q.shape[3], v.shape[2] == k.shape[2]
        else {
            throw EngineError(.shapeMismatch, "sdpa: q \(q.shape), k \(k.shape), v \(v.shape) must be [b, h, l, d], [b, h, s, d], [b, h, s, dv]")
        }
        let (batch, heads, length, dim) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        let (keys, valueDim) = (k.shape[2], v.shape[3])
        let widest = max(dim, valueDim)
        guard let chunks = [2, 4, 8, 16, 32].first(where: { 32 * $0 >= widest }) else {
            throw EngineError(.unsupportedOp, "sdpa: head dimensions above 1024 (\(dim), \(valueDim)) are not supported on \(device)")
        }
        guard batch * heads <= 65535 else { throw EngineError(.unsupportedOp, "sdpa: \(batch * heads) batch x heads exceed a grid of 65535") }
        let full = [batch, heads, length, keys]
        var bias: Tensor?
        if inputs.count == 4 {
            guard inputs[3].rank <= 4 else { throw EngineError(.shapeMismatch, "sdpa: bias \(inputs[3].shape) has more than 4 axes") }
            guard try broadcastShape(inputs[3].shape, full, op: .attention(scale: scale)) == full else {
                throw EngineError(.shapeMismatch, "sdpa: bias \(inputs[3].shape) does not broadcast to [b, h, l, s] = \(full)")
            }
            bias = broadcast(inputs[3], to: full)
        }
        guard length > 0, keys > 0, dim + valueDim > 0 else { return try self.full(shape: [batch, heads, length, valueDim], value: 0, dtype: q.dtype) }
        if let product = try productAttention(q, k, v, bias: bias, scale: scale ?? 1 / Float(dim).squareRoot(), outType: q.dtype) {
            return product
        }
        if bias == nil, let out = try flashAttention(q, k, v, scale: scale ?? 1 / Float(dim).squareRoot()) { return out }
        let out = try empty([batch, heads, length, valueDim], dtype: q.dtype)
        let budget = maxSharedMemory > 48 << 10 ? min(maxSharedMemory, 96 << 10) : 48 << 10
        let tile = max(1, min(64, budget / ((dim + valueDim) * 4)))
        var a = KernelArguments()
        a.operand(q)
        a.operand(k)
        a.operand(v)
        a.operand(bias ?? q)
        a.append(Int32(bias == nil ? 0 : 1))
        a.typed(out)
        a.append(scale ?? 1 / Float(dim).squareRoot())
        a.append(Int32(tile))
        let warps = 8
        try launch(
            "attention_rows_\(chunks)", grid: ((length + warps - 1) / warps, batch * heads, 1), block: 32 * warps,
            sharedBytes: tile * (dim + valueDim) * 4, a)
        return out
    }

    /// Attention as two batched products around a softmax, for wide heads the flash kernel does not take (the VAE's
    /// and the reconstruction decoder's single 640- and 1024-wide heads over 1,320 pixels): both products on tensor
    /// cores, the scores and the softmax in float32. Nil (nothing enqueued) when the score matrix would pass 256 MiB
    /// or the heads are narrow enough for the row kernel.
    func productAttention(_ q: Tensor, _ k: Tensor, _ v: Tensor, bias: Tensor?, scale: Float, outType: DType) throws(EngineError) -> Tensor? {
        let (batch, heads, length, dim) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        let (keys, valueDim) = (k.shape[2], v.shape[3])
        let groups = batch * heads
        // The scores, logits, probabilities and their narrowed copy coexist: about 3.5x the float32 score matrix.
        guard max(dim, valueDim) >= 256, groups * length * keys * 4 <= 256 << 20 else { return nil }
        let compute = productType([q.dtype, k.dtype, v.dtype])
        func packed(_ t: Tensor, _ rows: Int, _ columns: Int) throws(EngineError) -> Tensor {
            try contiguous(t.dtype == compute ? t : try cast(t, to: compute)).reshaped([groups, rows, columns])
        }
        let (queries, keyRows, values) = (try packed(q, length, dim), try packed(k, keys, dim), try packed(v, keys, valueDim))
        // scores[g] = q[g] · k[g]ᵀ, as column-major (keys × length) = K (keys × dim, stored transposed) · Qᵀ.
        let scores = try empty([batch, heads, length, keys], dtype: .float32)
        try gemm(
            MatrixOperand(address: Self.address(keyRows), rows: dim, columns: keys, leading: dim, batchStride: keys * dim, transposed: true),
            MatrixOperand(address: Self.address(queries), rows: dim, columns: length, leading: dim, batchStride: length * dim),
            MatrixOperand(address: Self.address(scores), rows: keys, columns: length, leading: keys, batchStride: length * keys), batch: groups,
            dtype: compute, outputType: .float32)
        var logits = try binary(.multiply, [scores, try full(shape: [1], value: scale, dtype: .float32)], code: 2)
        if let bias { logits = try binary(.add, [logits, bias], code: 0) }
        let weights = try softmax([logits], axis: 3)
        let probabilities = try (compute == .float32 ? weights : try cast(weights, to: compute)).reshaped([groups, length, keys])
        let out = try matmul([probabilities, values]).reshaped([batch, heads, length, valueDim])
        return out.dtype == outType ? out : try cast(out, to: outType)
    }

    /// The tensor-core kernel for what the transformer's attention is: bf16, head dimension 128, no bias, the last axis
    /// contiguous and rows 16-byte aligned, on sm_80 or newer; nil (nothing enqueued) for anything else. The bf16
    /// output is written as [b, l, h, 128] behind a [b, h, l, 128] view, so the callers' permute back to tokens is free.
    func flashAttention(_ q: Tensor, _ k: Tensor, _ v: Tensor, scale: Float) throws(EngineError) -> Tensor? {
        let operands = [q, k, v]
        guard architecture >= 80, operands.allSatisfy({ $0.dtype == .bfloat16 && $0.shape[3] == 128 && $0.strides[3] == 1 }),
            v.shape[3] == 128,
            operands.allSatisfy({ t in t.strides.dropLast().allSatisfy { $0 % 8 == 0 } && Self.address(t) % 16 == 0 })
        else { return nil }
        let (batch, heads, length) = (q.shape[0], q.shape[1], q.shape[2])
        let out = try empty([batch, length, heads, 128], dtype: .bfloat16).permuted([0, 2, 1, 3])
        if preferredAttention.withLock({ $0 }) == .cudnn, try cudnnAttention(q, k, v, into: out, scale: scale) { return out }
        attentionCounts.withLock { $0.own += 1 }
        var a = KernelArguments()
        a.operand(q)
        a.operand(k)
        a.operand(v)
        a.operand(out)
        a.append(scale * 1.442_695_040_888_963_4)  // log2(e): the kernel exponentiates in base 2
        try launch("flash_attention_bf16_d128", grid: ((length + 127) / 128, batch * heads, 1), block: 256, a)
        return out
    }
}
