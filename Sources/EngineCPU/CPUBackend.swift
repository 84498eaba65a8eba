import EngineCore
import Parallelism

#if canImport(Glibc)
    import Glibc
#endif

/// The CPU backend: every op of the table, multi-threaded, accumulating in float32. It is the oracle the GPU
/// backends are tested against, so clarity comes before speed except in matrix products (BLAS) and convolutions.
public final class CPUBackend: Backend {
    public static let shared = CPUBackend()

    public let device = Device.cpu
    public var memoryStats: MemoryStats { CachingAllocator.host.stats }
    /// Which matrix-product implementation is in use.
    public var matrixLibrary: String { BLAS.libraryDescription }

    public init() {}

    public func supports(_ op: Op, inputTypes: [DType]) -> Bool { true }

    /// A CPU copy of a tensor from any backend (a GPU tensor is read back, which waits for its device).
    public func upload(_ tensor: Tensor) throws(EngineError) -> Tensor {
        guard tensor.device.kind == .cpu else {
            guard let owner = DeviceRegistry.backend(for: tensor.device) else {
                throw EngineError(.invalidArgument, "no open backend owns \(tensor.device) to read \(tensor) from")
            }
            return try owner.download(tensor)
        }
        return try contiguous(tensor)
    }
    public func download(_ tensor: Tensor) throws(EngineError) -> Tensor { try contiguous(tensor) }
    public func synchronize() throws(EngineError) {}

    public func run(_ op: Op, _ inputs: [Tensor]) throws(EngineError) -> [Tensor] {
        for (i, t) in inputs.enumerated() where t.device.kind != .cpu {
            throw EngineError(.invalidArgument, "\(op): input \(i) is on \(t.device); copy it to the CPU first")
        }
        switch op {
        case .linear: return [try linear(inputs)]
        case .linearFP8, .modulatedLayerNorm, .rmsNormRope, .gatedResidual, .quantizeFP8, .channelRMSNormSiLU: return try composed(op, inputs)
        case .matmul: return [try matmul(inputs)]
        case .conv2d(let stride, let padding): return [try conv2d(inputs, stride: stride, padding: padding)]
        case .patchEmbed3D(let patch): return [try patchEmbed3D(inputs, patch: patch)]
        case .layerNorm(let eps): return [try layerNorm(inputs, eps: eps)]
        case .rmsNorm(let eps): return [try rmsNorm(inputs, eps: eps)]
        case .channelRMSNorm(let eps): return [try channelRMSNorm(inputs, eps: eps)]
        case .silu: return [try unary(op, inputs) { $0 / (1 + expf(-$0)) }]
        case .geluTanh:
            return [
                try unary(op, inputs) { x in
                    0.5 * x * (1 + tanhf(0.797_884_560_802_865_4 * (x + 0.044715 * x * x * x)))
                }
            ]
        case .sigmoid: return [try unary(op, inputs) { 1 / (1 + expf(-$0)) }]
        case .exp: return [try unary(op, inputs) { expf($0) }]
        case .log: return [try unary(op, inputs) { logf($0) }]
        case .sqrt: return [try unary(op, inputs) { $0.squareRoot() }]
        case .abs: return [try unary(op, inputs) { Swift.abs($0) }]
        case .clamp(let lower, let upper): return [try unary(op, inputs) { $0.isNaN ? $0 : Swift.min(Swift.max($0, lower), upper) }]
        case .scaled(let factor): return [try unary(op, inputs) { $0 * factor }]
        case .add: return [try binary(op, inputs, +)]
        case .subtract: return [try binary(op, inputs, -)]
        case .multiply: return [try binary(op, inputs, *)]
        case .divide: return [try binary(op, inputs, /)]
        case .softmax(let axis): return [try softmax(inputs, axis: axis)]
        case .attention(let scale): return [try attention(inputs, scale: scale)]
        case .ropeInterleaved: return [try ropeInterleaved(inputs)]
        case .ropeFrequencies3D(let headDim, let frames, let height, let width, let theta):
            return try ropeFrequencies3D(headDim: headDim, frames: frames, height: height, width: width, theta: theta)
        case .timestepEmbedding(let dim, let flip, let shift):
            return [try timestepEmbedding(inputs, dim: dim, flipSinToCos: flip, shift: shift)]
        case .t5RelativeBuckets(let l, let s, let bidirectional, let buckets, let maxDistance):
            return [try t5RelativeBuckets(queryLength: l, keyLength: s, bidirectional: bidirectional, buckets: buckets, maxDistance: maxDistance)]
        case .embedding: return [try embedding(inputs)]
        case .upsampleNearest2x: return [try upsampleNearest2x(inputs)]
        case .averagePool2x2: return [try averagePool2x2(inputs)]
        case .pad(let amounts, let value): return [try pad(inputs, amounts: amounts, value: value)]
        case .concat(let axis): return [try concat(inputs, axis: axis)]
        case .split(let sizes, let axis): return try split(inputs, sizes: sizes, axis: axis)
        case .permute(let dims): return [try contiguous(try single(op, inputs).permuted(dims))]
        case .contiguous: return [try contiguous(try single(op, inputs))]
        case .sum(let axes, let keep): return [try reduce(op, inputs, axes: axes, keepDims: keep, kind: .sum)]
        case .mean(let axes, let keep): return [try reduce(op, inputs, axes: axes, keepDims: keep, kind: .mean)]
        case .max(let axes, let keep): return [try reduce(op, inputs, axes: axes, keepDims: keep, kind: .max)]
        case .variance(let axes, let keep): return [try reduce(op, inputs, axes: axes, keepDims: keep, kind: .variance)]
        case .cast(let dtype): return [try cast(try single(op, inputs), to: dtype)]
        case .randomNormal(let shape, let seed): return [try randomNormal(shape: shape, seed: seed)]
        case .full(let shape, let value, let dtype):
            guard inputs.isEmpty, shape.allSatisfy({ $0 >= 0 }) else {
                throw EngineError(.invalidArgument, "full takes no inputs and a non-negative shape, not \(shape)")
            }
            let out = try Tensor.empty(shape, dtype: dtype)
            for i in 0..<out.count { dtype.storeFloat(value, out.storage.hostPointer, i) }
            return [out]
        }
    }

    // MARK: Helpers shared by the kernels


    /// A contiguous copy in the same dtype (or the tensor itself when it already is one).
    func contiguous(_ t: Tensor) throws(EngineError) -> Tensor {
        if t.isContiguous && t.offset == 0 && t.storage.byteCount == t.byteCount { return t }
        let out = try Tensor.empty(t.shape, dtype: t.dtype)
        let size = t.dtype.byteSize
        let src = UnsafeRawPointer(t.storage.hostPointer), dst = out.storage.hostPointer
        var k = 0
        t.forEachStorageIndex { i in
            dst.advanced(by: k * size).copyMemory(from: src + i * size, byteCount: size)
            k += 1
        }
        return out
    }

    /// The tensor as float32, contiguous: its own memory when it already is, a converted copy otherwise.
    func float32(_ t: Tensor) throws(EngineError) -> Tensor {
        if t.dtype == .float32 { return try contiguous(t) }
        return try cast(t, to: .float32)
    }

    /// A new float32 tensor filled by `body` with a pointer to its elements.
    func makeFloat32(_ shape: [Int], _ body: (UnsafeMutablePointer<Float>) throws(EngineError) -> Void) throws(EngineError) -> Tensor {
        let out = try Tensor.empty(shape, dtype: .float32)
        try body(out.storage.hostPointer.assumingMemoryBound(to: Float.self))
        return out
    }

    /// `result` converted to `dtype` (float32 results stay as they are).
    func converted(_ result: Tensor, to dtype: DType) throws(EngineError) -> Tensor {
        dtype == .float32 ? result : try cast(result, to: dtype)
    }

    func cast(_ t: Tensor, to dtype: DType) throws(EngineError) -> Tensor {
        let out = try Tensor.empty(t.shape, dtype: dtype)
        let src = UnsafeRawPointer(t.storage.hostPointer), dst = out.storage.hostPointer
        let from = t.dtype
        if from == .int64 && dtype == .int32 || from == .int32 && dtype == .int64 || from == .int64 && dtype == .int64 {
            let values = t.int64s()
            for (k, v) in values.enumerated() {
                if dtype == .int32 { dst.storeBytes(of: Int32(truncatingIfNeeded: v), toByteOffset: 4 * k, as: Int32.self) }
                else { dst.storeBytes(of: v, toByteOffset: 8 * k, as: Int64.self) }
            }
            return out
        }
        if t.isContiguous {
            // Converting weights is on the hot path of reduced-precision products: split it across cores.
            let n = t.count, base = t.offset
            let shared = UncheckedSendable((src, dst))
            let parts = ranges(of: n, parts: activeProcessorCount * 4, minimum: 1 << 16)
            parallelFor(parts.count) { part in
                let (src, dst) = shared.value
                for k in parts[part] { dtype.storeFloat(from.loadFloat(src, base + k), dst, k) }
            }
            return out
        }
        var k = 0
        t.forEachStorageIndex { i in
            dtype.storeFloat(from.loadFloat(src, i), dst, k)
            k += 1
        }
        return out
    }

    func floatPointer(_ t: Tensor) -> UnsafeMutablePointer<Float> {
        t.storage.hostPointer.assumingMemoryBound(to: Float.self) + t.offset
    }

    func unary(_ op: Op, _ inputs: [Tensor], _ f: @escaping @Sendable (Float) -> Float) throws(EngineError) -> Tensor {
        let x = try float32(try single(op, inputs))
        let n = x.count
        let result = try makeFloat32(x.shape) { out in
            let shared = UncheckedSendable((floatPointer(x), out))
            let parts = ranges(of: n, parts: activeProcessorCount * 4, minimum: 1 << 14)
            parallelFor(parts.count) { part in
                let (src, dst) = shared.value
                for i in parts[part] { dst[i] = f(src[i]) }
            }
        }
        return try converted(result, to: inputs[0].dtype)
    }

    /// Elementwise with NumPy broadcasting.
    func binary(_ op: Op, _ inputs: [Tensor], _ f: (Float, Float) -> Float) throws(EngineError) -> Tensor {
        guard inputs.count == 2 else { throw EngineError(.invalidArgument, "\(op) takes two inputs") }
        let (a, b) = (inputs[0], inputs[1])
        let shape = try broadcastShape(a.shape, b.shape, op: op)
        let aStrides = broadcastStrides(a, to: shape), bStrides = broadcastStrides(b, to: shape)
        let (pa, pb) = (UnsafeRawPointer(a.storage.hostPointer), UnsafeRawPointer(b.storage.hostPointer))
        let result = try makeFloat32(shape) { out in
            var index = [Int](repeating: 0, count: shape.count)
            var oa = a.offset, ob = b.offset
            for k in 0..<shape.reduce(1, *) {
                out[k] = f(a.dtype.loadFloat(pa, oa), b.dtype.loadFloat(pb, ob))
                var d = shape.count - 1
                while d >= 0 {
                    index[d] += 1
                    oa += aStrides[d]
                    ob += bStrides[d]
                    if index[d] < shape[d] { break }
                    oa -= aStrides[d] * shape[d]
                    ob -= bStrides[d] * shape[d]
                    index[d] = 0
                    d -= 1
                }
            }
        }
        return try converted(result, to: a.dtype.isFloatingPoint ? a.dtype : .float32)
    }

    func broadcastShape(_ a: [Int], _ b: [Int], op: Op) throws(EngineError) -> [Int] {
        let rank = Swift.max(a.count, b.count)
        var shape = [Int](repeating: 1, count: rank)
        for i in 0..<rank {
            let da = i < rank - a.count ? 1 : a[i - (rank - a.count)]
            let db = i < rank - b.count ? 1 : b[i - (rank - b.count)]
            guard da == db || da == 1 || db == 1 else {
                throw EngineError(.shapeMismatch, "\(op): shapes \(a) and \(b) do not broadcast")
            }
            shape[i] = Swift.max(da, db)
        }
        return shape
    }

    /// Strides that walk `t` as if it had `shape` (0 along broadcast axes).
    func broadcastStrides(_ t: Tensor, to shape: [Int]) -> [Int] {
        let pad = shape.count - t.rank
        return (0..<shape.count).map { i in i < pad || t.shape[i - pad] == 1 ? 0 : t.strides[i - pad] }
    }
}
