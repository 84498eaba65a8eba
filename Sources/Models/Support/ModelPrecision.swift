import EngineCore

/// The element types a FlashWorld model runs in, decided once at load time: weights are converted (on the device)
/// to these types and activations flow in them. The CPU oracle runs everything in float32; a GPU runs bfloat16 with
/// the transformer's 300 block linears in FP8 e4m3 as the reference quantises them (`flashworld-model.md` §12).
public struct ModelPrecision: Sendable, Equatable, CustomStringConvertible {
    public var textEncoder: DType
    /// `.float8E4M3`: the text encoder's linears stored in e4m3 with a per-tensor scale and widened to `textEncoder`
    /// for each product (weights only: its activations stay as they are); else the same as `textEncoder`.
    public var textEncoderLinears: DType
    public var transformer: DType
    /// `.float8E4M3`: the block linears (q, k, v, out of both attentions and the two FFN linears) stored in e4m3 with
    /// a per-tensor scale, their activations quantised per call (`Op.linearFP8`).
    public var transformerBlockLinears: DType
    public var vaeEncoder: DType
    public var decoder: DType
    public var name: String

    public static let float32 = ModelPrecision(
        textEncoder: .float32, transformer: .float32, transformerBlockLinears: .float32, vaeEncoder: .float32, decoder: .float32, name: "fp32")
    public static let bfloat16 = ModelPrecision(
        textEncoder: .bfloat16, transformer: .bfloat16, transformerBlockLinears: .bfloat16, vaeEncoder: .bfloat16, decoder: .bfloat16,
        name: "bf16")
    /// The reference's fast path: bf16 everywhere, FP8 block linears.
    public static let fp8 = ModelPrecision(
        textEncoder: .bfloat16, transformer: .bfloat16, transformerBlockLinears: .float8E4M3, vaeEncoder: .bfloat16, decoder: .bfloat16,
        name: "fp8")

    /// `fp8` with the text encoder's linears in e4m3 too: one byte a parameter instead of two for them.
    public static let fp8Lean: ModelPrecision = {
        var lean = fp8
        lean.textEncoderLinears = .float8E4M3
        lean.name = "fp8-lean"
        return lean
    }()

    /// The precisions every check runs; `fp8Lean` is `fp8` with a leaner text encoder.
    public static let all = [float32, bfloat16, fp8]
    public static let names = (all + [fp8Lean]).map(\.name)

    public init(textEncoder: DType, transformer: DType, transformerBlockLinears: DType, vaeEncoder: DType, decoder: DType, name: String) {
        self.textEncoder = textEncoder
        self.textEncoderLinears = textEncoder
        self.transformer = transformer
        self.transformerBlockLinears = transformerBlockLinears
        self.vaeEncoder = vaeEncoder
        self.decoder = decoder
        self.name = name
    }

    /// `fp32`, `bf16`, `fp8` or `fp8-lean`.
    public init?(name: String) {
        guard let found = (Self.all + [Self.fp8Lean]).first(where: { $0.name == name }) else { return nil }
        self = found
    }

    public var description: String { name }

    /// Every weight on `backend`, floating-point ones converted to `dtype` there (integers as stored).
    public func converted(_ weights: ModelWeights, to dtype: DType, on backend: any Backend) throws -> ModelWeights {
        var tensors: [String: Tensor] = [:]
        for (name, tensor) in weights.tensors {
            let here = tensor.device == backend.device ? tensor : try backend.upload(tensor)
            tensors[name] = here.dtype.isFloatingPoint ? try backend.cast(here, to: dtype) : here
        }
        return ModelWeights(tensors, source: weights.source)
    }

    /// Whether `name` is one of the transformer's block linears FlashWorld quantises (every `nn.Linear` under
    /// `blocks.`).
    public static func isBlockLinearWeight(_ name: String) -> Bool {
        guard name.hasPrefix("blocks."), name.hasSuffix(".weight") else { return false }
        return [".to_q.weight", ".to_k.weight", ".to_v.weight", ".to_out.0.weight", ".ffn.net.0.proj.weight", ".ffn.net.2.weight"]
            .contains { name.hasSuffix($0) }
    }

    /// The transformer's weights on `backend`: block linears in `transformerBlockLinears` (FP8 with a
    /// `….weight_scale` entry beside each; weights already quantised stay as they are), the rest in `transformer`.
    public func transformerWeights(_ weights: ModelWeights, on backend: any Backend) throws -> ModelWeights {
        var converted: [String: Tensor] = [:]
        for (name, tensor) in weights.tensors {
            let here = tensor.device == backend.device ? tensor : try backend.upload(tensor)
            if name.hasSuffix(".weight_scale") || here.dtype == .float8E4M3 || !here.dtype.isFloatingPoint {
                converted[name] = here
            } else if Self.isBlockLinearWeight(name) && transformerBlockLinears == .float8E4M3 {
                let (quantized, scale) = try Self.quantizedFP8(here, on: backend)
                converted[name] = quantized
                converted[Self.scaleName(name)] = scale
            } else {
                converted[name] = try backend.cast(here, to: Self.isBlockLinearWeight(name) ? transformerBlockLinears : transformer)
            }
        }
        return ModelWeights(converted, source: weights.source)
    }

    /// Whether `name` is one of UMT5's linear weights (attention q, k, v, o and the gated FFN's three).
    public static func isTextEncoderLinearWeight(_ name: String) -> Bool {
        guard name.hasPrefix("encoder.block.") else { return false }
        return [".SelfAttention.q.weight", ".SelfAttention.k.weight", ".SelfAttention.v.weight", ".SelfAttention.o.weight",
                ".DenseReluDense.wi_0.weight", ".DenseReluDense.wi_1.weight", ".DenseReluDense.wo.weight"]
            .contains { name.hasSuffix($0) }
    }

    /// The text encoder's weights on `backend`: its linears in `textEncoderLinears` (e4m3 with a `….weight_scale`
    /// beside each, quantised as the transformer's are), the rest in `textEncoder`.
    public func textEncoderWeights(_ weights: ModelWeights, on backend: any Backend) throws -> ModelWeights {
        guard textEncoderLinears == .float8E4M3 else { return try converted(weights, to: textEncoder, on: backend) }
        var converted: [String: Tensor] = [:]
        for (name, tensor) in weights.tensors {
            let here = tensor.device == backend.device ? tensor : try backend.upload(tensor)
            if name.hasSuffix(".weight_scale") || here.dtype == .float8E4M3 || !here.dtype.isFloatingPoint {
                converted[name] = here
            } else if Self.isTextEncoderLinearWeight(name) {
                let (quantized, scale) = try Self.quantizedFP8(here, on: backend)
                converted[name] = quantized
                converted[Self.scaleName(name)] = scale
            } else {
                converted[name] = try backend.cast(here, to: textEncoder)
            }
        }
        return ModelWeights(converted, source: weights.source)
    }

    /// Where a quantised weight's dequantisation scale is kept: `….weight` → `….weight_scale`.
    public static func scaleName(_ weightName: String) -> String { String(weightName.dropLast("weight".count)) + "weight_scale" }

    /// FlashWorld's weight quantisation (`quant.py`, `flashworld-model.md` §12.1): `s = 448 / max(amax|W|, 1e-12)` in
    /// the weight's type, `Wq = e4m3(clamp(W·s))`, stored scale `1/s` as float32; all on the device.
    public static func quantizedFP8(_ weight: Tensor, on backend: any Backend) throws(EngineError) -> (weight: Tensor, scale: Tensor) {
        let amax = try backend.run(.max(axes: [], keepDims: false), [try backend.run(.abs, [weight])[0]])[0].reshaped([1])
        let scale = try backend.cast(
            try backend.divide(try backend.full([1], value: 448), try backend.clamped(try backend.cast(amax, to: .float32), min: 1e-12)),
            to: weight.dtype)
        let quantized = try backend.cast(try backend.clamped(try backend.multiply(weight, scale), min: -448, max: 448), to: .float8E4M3)
        return (quantized, try backend.divide(try backend.full([1], value: 1), try backend.cast(scale, to: .float32)))
    }
}

extension ModelWeights {
    /// Causal 3D convolution kernels `[o, i, t, kh, kw]` cut to their last temporal tap `[o, i, kh, kw]` (exact for
    /// single frames, `flashworld-model.md` §3.1), once at load rather than per call.
    public static func lastTapConvolutions(_ weights: ModelWeights, on backend: any Backend) throws(EngineError) -> ModelWeights {
        var tensors = weights.tensors
        for (name, weight) in weights.tensors where weight.rank == 5 && name.hasSuffix(".weight") {
            let taps = weight.shape[2]
            let last = try backend.contiguous(try weight.narrowed(2, start: taps - 1, length: 1))
            tensors[name] = try last.reshaped([weight.shape[0], weight.shape[1], weight.shape[3], weight.shape[4]])
        }
        return ModelWeights(tensors, source: weights.source)
    }
}
