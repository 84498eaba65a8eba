/// The op table as functions, for model code: `backend.linear(x, w, b)` rather than `backend.run(.linear, …)[0]`.
extension Backend {
    /// The one input of `op`, or a typed error (for backends' argument checks).
    public func single(_ op: Op, _ inputs: [Tensor]) throws(EngineError) -> Tensor {
        guard inputs.count == 1 else { throw EngineError(.invalidArgument, "\(op) takes one input, not \(inputs.count)") }
        return inputs[0]
    }

    /// Checks `op` got an input count in `range` (for backends' argument checks).
    public func expectInputs(_ op: Op, _ inputs: [Tensor], _ range: ClosedRange<Int>) throws(EngineError) {
        guard range.contains(inputs.count) else {
            throw EngineError(.invalidArgument, "\(op) takes \(range.lowerBound)...\(range.upperBound) inputs, not \(inputs.count)")
        }
    }

    public func linear(_ x: Tensor, _ weight: Tensor, _ bias: Tensor? = nil) throws(EngineError) -> Tensor {
        try run(.linear, [x, weight] + (bias.map { [$0] } ?? []))[0]
    }
    /// A fused op from the table's plain ops: the reference each backend's fused kernel is checked against (the CPU
    /// backend runs exactly this).
    public func composed(_ op: Op, _ inputs: [Tensor]) throws(EngineError) -> [Tensor] {
        switch op {
        case .modulatedLayerNorm(let eps):
            guard inputs.count == 3 else { throw EngineError(.invalidArgument, "modulated_layer_norm takes x, shift and scale") }
            let normed = try layerNorm(inputs[0], eps: eps)
            return [try add(try multiply(normed, try add(inputs[2], try full([1], value: 1))), inputs[1])]
        case .rmsNormRope(let eps, let heads):
            guard inputs.count == 4, inputs[0].rank == 3, heads > 0, inputs[0].shape[2] % heads == 0 else {
                throw EngineError(.invalidArgument, "rms_norm_rope takes x [b, l, heads·hd], a weight, cos and sin")
            }
            let x = inputs[0]
            let normed = try rmsNorm(x, weight: inputs[1], eps: eps).reshaped([x.shape[0], x.shape[1], heads, x.shape[2] / heads])
            return try run(.ropeInterleaved, [normed, inputs[2], inputs[3]])
        case .channelRMSNormSiLU(let eps):
            return [try silu(try run(.channelRMSNorm(eps: eps), inputs)[0])]
        case .gatedResidual:
            guard inputs.count == 3 else { throw EngineError(.invalidArgument, "gated_residual takes x, y and gate") }
            return [try add(inputs[0], try multiply(inputs[1], inputs[2]))]
        case .quantizeFP8:
            guard inputs.count == 1 else { throw EngineError(.invalidArgument, "quantize_fp8 takes one input") }
            // As quant.py on a bf16 activation: the scale is itself bf16, and so is the scaled product.
            let activation = try cast(inputs[0], to: .bfloat16)
            let amax = try cast(try run(.max(axes: [], keepDims: false), [try run(.abs, [activation])[0]])[0].reshaped([1]), to: .float32)
            let scale = try cast(try cast(try divide(try full([1], value: 448), try clamped(amax, min: 1e-12)), to: .bfloat16), to: .float32)
            let quantized = try cast(try clamped(try multiply(activation, scale), min: -448, max: 448), to: .float8E4M3)
            return [quantized, try divide(try full([1], value: 1), scale)]
        case .linearFP8:
            guard (3...4).contains(inputs.count), inputs[1].dtype == .float8E4M3, inputs[2].count == 1 else {
                throw EngineError(.invalidArgument, "linear_fp8 takes x, an e4m3 weight, its scale [1] and an optional bias")
            }
            let (x, weight, weightScale) = (inputs[0], inputs[1], inputs[2])
            let quantized = try run(.quantizeFP8, [x])
            let product = try linear(try cast(quantized[0], to: .float32), try cast(weight, to: .float32))
            var out = try multiply(product, try multiply(try cast(weightScale, to: .float32).reshaped([1]), quantized[1]))
            if inputs.count == 4 { out = try add(out, inputs[3]) }
            return [try cast(out, to: x.dtype.isFloatingPoint ? x.dtype : .float32)]
        default:
            throw EngineError(.unsupportedOp, "\(op) is not a fused op")
        }
    }

    public func add(_ a: Tensor, _ b: Tensor) throws(EngineError) -> Tensor { try run(.add, [a, b])[0] }
    public func multiply(_ a: Tensor, _ b: Tensor) throws(EngineError) -> Tensor { try run(.multiply, [a, b])[0] }
    public func scaled(_ x: Tensor, by factor: Float) throws(EngineError) -> Tensor { try run(.scaled(by: factor), [x])[0] }
    public func silu(_ x: Tensor) throws(EngineError) -> Tensor { try run(.silu, [x])[0] }
    public func geluTanh(_ x: Tensor) throws(EngineError) -> Tensor { try run(.geluTanh, [x])[0] }
    public func layerNorm(_ x: Tensor, eps: Float, weight: Tensor? = nil, bias: Tensor? = nil) throws(EngineError) -> Tensor {
        try run(.layerNorm(eps: eps), [x] + [weight, bias].compactMap { $0 })[0]
    }
    public func rmsNorm(_ x: Tensor, weight: Tensor, eps: Float) throws(EngineError) -> Tensor {
        try run(.rmsNorm(eps: eps), [x, weight])[0]
    }
    public func attention(_ q: Tensor, _ k: Tensor, _ v: Tensor, bias: Tensor? = nil, scale: Float? = nil) throws(EngineError) -> Tensor {
        try run(.attention(scale: scale), [q, k, v] + (bias.map { [$0] } ?? []))[0]
    }
    public func permuted(_ x: Tensor, _ dims: [Int]) throws(EngineError) -> Tensor { try run(.permute(dims), [x])[0] }
    public func contiguous(_ x: Tensor) throws(EngineError) -> Tensor { try run(.contiguous, [x])[0] }
    public func split(_ x: Tensor, sizes: [Int], axis: Int) throws(EngineError) -> [Tensor] { try run(.split(sizes: sizes, axis: axis), [x]) }
    public func concat(_ parts: [Tensor], axis: Int) throws(EngineError) -> Tensor { try run(.concat(axis: axis), parts)[0] }
    public func embedding(_ weight: Tensor, ids: Tensor) throws(EngineError) -> Tensor { try run(.embedding, [weight, ids])[0] }
    public func subtract(_ a: Tensor, _ b: Tensor) throws(EngineError) -> Tensor { try run(.subtract, [a, b])[0] }
    public func divide(_ a: Tensor, _ b: Tensor) throws(EngineError) -> Tensor { try run(.divide, [a, b])[0] }
    public func sigmoid(_ x: Tensor) throws(EngineError) -> Tensor { try run(.sigmoid, [x])[0] }
    public func exp(_ x: Tensor) throws(EngineError) -> Tensor { try run(.exp, [x])[0] }
    public func log(_ x: Tensor) throws(EngineError) -> Tensor { try run(.log, [x])[0] }
    public func sqrt(_ x: Tensor) throws(EngineError) -> Tensor { try run(.sqrt, [x])[0] }
    public func clamped(_ x: Tensor, min lower: Float = -.infinity, max upper: Float = .infinity) throws(EngineError) -> Tensor {
        try run(.clamp(min: lower, max: upper), [x])[0]
    }
    public func cast(_ x: Tensor, to dtype: DType) throws(EngineError) -> Tensor {
        x.dtype == dtype ? x : try run(.cast(dtype), [x])[0]
    }
    public func sum(_ x: Tensor, axes: [Int], keepDims: Bool = false) throws(EngineError) -> Tensor {
        try run(.sum(axes: axes, keepDims: keepDims), [x])[0]
    }
    public func conv2d(_ x: Tensor, _ weight: Tensor, _ bias: Tensor? = nil, stride: Int = 1, padding: Int = 0) throws(EngineError) -> Tensor {
        try run(.conv2d(stride: [stride], padding: [padding]), [x, weight] + (bias.map { [$0] } ?? []))[0]
    }

    // MARK: Making tensors on this device

    /// A tensor of one value, made on this device.
    public func full(_ shape: [Int], value: Float, dtype: DType = .float32) throws(EngineError) -> Tensor {
        try run(.full(shape: shape, value: value, dtype: dtype), [])[0]
    }
    public func zeros(_ shape: [Int], dtype: DType = .float32) throws(EngineError) -> Tensor {
        try full(shape, value: 0, dtype: dtype)
    }
    /// Host values (a camera's constants, a schedule's timestep) copied to this device as `dtype`.
    public func constant(_ values: [Float], shape: [Int], dtype: DType = .float32) throws(EngineError) -> Tensor {
        try upload(try Tensor(values, shape: shape, dtype: dtype))
    }
    /// Standard normal float32 samples for `seed`: the same numbers on every backend (up to each device's
    /// transcendental functions' last bit).
    public func randomNormal(_ shape: [Int], seed: UInt64) throws(EngineError) -> Tensor {
        try run(.randomNormal(shape: shape, seed: seed), [])[0]
    }
    /// The elements as floats on the host: waits for the device (a visible host read).
    public func readFloats(_ x: Tensor) throws(EngineError) -> [Float] { try download(x).floats() }
}
