/// The op table: every operation a backend may implement, with its attributes. Inputs are listed per case; outputs
/// have the dtype of the first floating-point input unless the case says otherwise. Reductions and products
/// accumulate in float32 whatever the storage type.
public enum Op: Sendable, Equatable, CustomStringConvertible {
    /// `x[..., in] · wᵀ + b`; inputs x, weight `[out, in]`, optional bias `[out]`.
    case linear
    /// FlashWorld's FP8 linear (`flashworld-model.md` §12.1); inputs x, weight `[out, in]` in e4m3, the weight's
    /// dequantisation scale `[1]` (float32), optional bias. x is rounded to bf16 and quantised to e4m3 as
    /// `quantizeFP8` does, multiplied with the weight accumulating in
    /// float32, dequantised by both scales, biased; the output has x's dtype. The CPU reference composes it from the
    /// table's plain ops (`Backend.composed`); a GPU fuses it into two kernels and one FP8 product.
    case linearFP8
    /// Fused: `layerNorm(x) · (1 + scale) + shift` (no affine), the transformer's adaptive norm; inputs x `[..., d]`,
    /// shift and scale `[g, 1, d]` / `[g, d]` / `[d]` with `g` dividing x's rows into equal groups (the batch).
    case modulatedLayerNorm(eps: Float)
    /// Fused: T5/Wan RMS norm over the last axis with its weight, then the interleaved rotary embedding per head;
    /// inputs x `[b, l, heads·hd]`, weight `[heads·hd]`, cos and sin `[l, hd/2]`; output `[b, l, heads, hd]`.
    case rmsNormRope(eps: Float, heads: Int)
    /// Fused: `x + y · gate` with broadcasting (the gated residual); inputs x, y, gate.
    case gatedResidual
    /// Fused: FlashWorld's per-call FP8 activation quantisation (`quant.py`); input x; outputs the e4m3 tensor
    /// `e4m3(clamp(bf16(bf16(x) · s)))` with `s = bf16(448 / max(amax|bf16(x)|, 1e-12))`, and `1/s` as float32 `[1]`.
    case quantizeFP8
    /// Batched `a · b` over leading axes (broadcast); inputs a `[..., m, k]`, b `[..., k, n]`.
    case matmul
    /// NCHW convolution; inputs x, weight `[o, c, kh, kw]`, optional bias.
    case conv2d(stride: [Int], padding: [Int])
    /// Conv3d with kernel = stride = `patch` (t, h, w); inputs x `[n, c, t, h, w]`, weight, bias.
    case patchEmbed3D(patch: [Int])
    /// Over the last axis; inputs x, optional weight and bias.
    case layerNorm(eps: Float)
    /// T5's RMS norm over the last axis (no mean subtraction); inputs x, weight.
    case rmsNorm(eps: Float)
    /// The Wan VAE norm over axis 1: `x / max(‖x‖, eps) · √C · γ (+ β)`; inputs x, gamma, optional bias.
    case channelRMSNorm(eps: Float)
    /// Fused: `silu(channelRMSNorm(x))`, the VAE's norm and activation before each convolution (one pass over the
    /// activation instead of two); inputs as `channelRMSNorm`.
    case channelRMSNormSiLU(eps: Float)
    case silu
    case geluTanh
    case sigmoid
    case exp
    /// Natural logarithm (0 gives −∞, a negative input NaN).
    case log
    case sqrt
    case abs
    /// `min(max(x, lower), upper)`; NaN stays NaN.
    case clamp(min: Float, max: Float)
    /// Elementwise with broadcasting; inputs a, b.
    case add
    case subtract
    case multiply
    case divide
    /// `x · factor`.
    case scaled(by: Float)
    case softmax(axis: Int)
    /// Scaled dot-product attention; inputs q `[b, h, l, d]`, k `[b, h, s, d]`, v `[b, h, s, dv]`, optional additive
    /// bias broadcastable to `[b, h, l, s]`. `scale` defaults to `1/√d`.
    case attention(scale: Float?)
    /// Rotary embedding on interleaved pairs (x₀x₁, x₂x₃, …) of the last axis; inputs x `[b, l, h, d]`,
    /// cos and sin `[l, d/2]`.
    case ropeInterleaved
    /// Wan's 3-axis rotary frequencies for a `frames × height × width` token grid: outputs cos and sin `[l, d/2]`.
    case ropeFrequencies3D(headDim: Int, frames: Int, height: Int, width: Int, theta: Double)
    /// Sinusoidal embedding of timesteps `[n]` → `[n, dim]` (diffusers `get_timestep_embedding`).
    case timestepEmbedding(dim: Int, flipSinToCos: Bool, downscaleFreqShift: Float)
    /// T5 relative-position buckets `[queryLength, keyLength]`, int64; no inputs.
    case t5RelativeBuckets(queryLength: Int, keyLength: Int, bidirectional: Bool, buckets: Int, maxDistance: Int)
    /// Rows of weight `[v, d]` picked by integer ids; inputs weight, ids.
    case embedding
    /// NCHW (or NC…HW) nearest-neighbour ×2 on the last two axes.
    case upsampleNearest2x
    /// 2x2 average pooling, stride 2, on the last two axes (floor).
    case averagePool2x2
    /// Constant padding, PyTorch order: `[last-before, last-after, second-last-before, …]`.
    case pad(amounts: [Int], value: Float)
    /// Inputs joined along an axis.
    case concat(axis: Int)
    /// One output per size along an axis.
    case split(sizes: [Int], axis: Int)
    /// A contiguous copy with axes reordered.
    case permute([Int])
    /// A contiguous copy.
    case contiguous
    case sum(axes: [Int], keepDims: Bool)
    case mean(axes: [Int], keepDims: Bool)
    case max(axes: [Int], keepDims: Bool)
    /// Population variance (unbiased: false).
    case variance(axes: [Int], keepDims: Bool)
    /// Converts to another dtype (round to nearest even; FP8 saturates).
    case cast(DType)
    /// Standard normal samples, float32, from a seeded counter-based generator; no inputs.
    case randomNormal(shape: [Int], seed: UInt64)
    /// A tensor of one value; no inputs.
    case full(shape: [Int], value: Float, dtype: DType)

    public var name: String {
        switch self {
        case .linear: "linear"
        case .linearFP8: "linear_fp8"
        case .matmul: "matmul"
        case .modulatedLayerNorm: "modulated_layer_norm"
        case .rmsNormRope: "rms_norm_rope"
        case .gatedResidual: "gated_residual"
        case .quantizeFP8: "quantize_fp8"
        case .conv2d: "conv2d"
        case .patchEmbed3D: "patch_embed_3d"
        case .layerNorm: "layer_norm"
        case .rmsNorm: "t5_rms_norm"
        case .channelRMSNorm: "channel_rms_norm"
        case .channelRMSNormSiLU: "channel_rms_norm_silu"
        case .silu: "silu"
        case .geluTanh: "gelu_tanh"
        case .sigmoid: "sigmoid"
        case .exp: "exp"
        case .log: "log"
        case .sqrt: "sqrt"
        case .abs: "abs"
        case .clamp: "clamp"
        case .add: "add"
        case .subtract: "subtract"
        case .multiply: "multiply"
        case .divide: "divide"
        case .scaled: "scaled"
        case .softmax: "softmax"
        case .attention: "sdpa"
        case .ropeInterleaved: "rope_apply"
        case .ropeFrequencies3D: "rope_3d_frequencies"
        case .timestepEmbedding: "timestep_embedding"
        case .t5RelativeBuckets: "t5_relative_buckets"
        case .embedding: "embedding"
        case .upsampleNearest2x: "upsample_nearest2x"
        case .averagePool2x2: "avg_pool2x2"
        case .pad: "pad"
        case .concat: "concat"
        case .split: "split"
        case .permute: "permute"
        case .contiguous: "contiguous"
        case .sum: "sum"
        case .mean: "mean"
        case .max: "max"
        case .variance: "var"
        case .cast: "cast"
        case .randomNormal: "random_normal"
        case .full: "full"
        }
    }

    public var description: String { name }
}

/// A device's implementation of the op table, plus moving tensors on and off it.
///
/// `run` enqueues work and returns tensors on this device without waiting for it (a GPU backend returns before its
/// kernels finish; the CPU backend simply computes). Nothing waits except `synchronize()` and `download`, which is the
/// one way back to host memory, so every host read is visible at its call site.
///
/// Backends are shared across tasks; one that owns a driver context confines it internally.
public protocol Backend: AnyObject, Sendable {
    var device: Device { get }
    var memoryStats: MemoryStats { get }
    /// Whether `run` implements `op` for inputs of these types.
    func supports(_ op: Op, inputTypes: [DType]) -> Bool
    func run(_ op: Op, _ inputs: [Tensor]) throws(EngineError) -> [Tensor]
    /// A copy of a tensor (from any device) on this device, in the same dtype; views are made contiguous.
    func upload(_ tensor: Tensor) throws(EngineError) -> Tensor
    /// A contiguous CPU copy of a tensor on this device. Waits for the work that produces it: a host read.
    func download(_ tensor: Tensor) throws(EngineError) -> Tensor
    /// Copies a tensor's elements (row-major) into host memory the caller owns, of exactly its byte count: a host
    /// read without an intermediate buffer (a GPU copies straight into it). Waits like `download`.
    func download(_ tensor: Tensor, into destination: UnsafeMutableRawBufferPointer) throws(EngineError)
    /// Waits until every operation enqueued so far has finished (and reports a failure of any of them).
    func synchronize() throws(EngineError)
    /// Gives memory the backend caches for reuse back to the device (after a failed or finished job).
    func trimMemory()
}

extension Backend {
    public func trimMemory() {}

    public func download(_ tensor: Tensor, into destination: UnsafeMutableRawBufferPointer) throws(EngineError) {
        guard destination.count == tensor.byteCount else {
            throw EngineError(.shapeMismatch, "download: \(destination.count) bytes cannot hold \(tensor) (\(tensor.byteCount) bytes)")
        }
        let host = try download(tensor)
        guard host.byteCount > 0, let base = destination.baseAddress else { return }
        base.copyMemory(from: UnsafeRawPointer(host.storage.hostPointer) + host.offset * host.dtype.byteSize, byteCount: host.byteCount)
    }
}
