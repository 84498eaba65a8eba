import EngineCore
import Foundation

/// The op table's PyTorch fixtures: `tools/engine/make_op_fixtures.py` ran each case through torch (and diffusers or
/// transformers where the op is theirs) and wrote inputs, outputs and a tolerance with its reason. The tests and
/// `diorama engine selftest` both run them, on any backend.
public struct OpFixtures: Sendable {
    public struct TensorFile: Decodable, Sendable {
        public var file: String
        public var dtype: String
        public var shape: [Int]
    }
    public struct Tolerance: Decodable, Sendable {
        public var metric: String
        public var value: Double
        public init(metric: String, value: Double) {
            self.metric = metric
            self.value = value
        }
    }
    public struct Case: Decodable, Sendable, CustomStringConvertible {
        public var name: String
        public var op: String
        public var attrs: [String: JSONValue]
        public var inputs: [TensorFile]
        public var outputs: [TensorFile]
        public var tolerance: Tolerance
        public var description: String { name }
    }
    public struct Manifest: Decodable, Sendable {
        public var cases: [Case]
    }

    public let folder: URL
    public let manifest: Manifest

    /// Reads `folder/manifest.json`.
    public init(folder: URL) throws {
        self.folder = folder
        manifest = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: folder.appendingPathComponent("manifest.json")))
    }

    public func load(_ t: TensorFile) throws -> Tensor {
        let data = try Data(contentsOf: folder.appendingPathComponent(t.file))
        guard let dtype = DType(rawValue: t.dtype) else { throw EngineError(.invalidArgument, "\(t.file): unknown dtype \(t.dtype)") }
        return try data.withUnsafeBytes { try Tensor(bytes: $0, dtype: dtype, shape: t.shape) }
    }
}

/// Just enough JSON for the fixtures' attributes.
public enum JSONValue: Decodable, Sendable {
    case number(Double), bool(Bool), string(String), array([JSONValue]), null, object

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let n = try? c.decode(Double.self) { self = .number(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object }
    }

    public var int: Int? { if case .number(let n) = self { Int(n) } else { nil } }
    public var double: Double? { if case .number(let n) = self { n } else { nil } }
    public var bool: Bool? { if case .bool(let b) = self { b } else { nil } }
    public var string: String? { if case .string(let s) = self { s } else { nil } }
    public var ints: [Int]? {
        switch self {
        case .array(let a): a.compactMap(\.int)
        case .number(let n): [Int(n)]
        default: nil
        }
    }
}

/// Runs one fixture case on a backend: the fixture's host inputs copied to the backend, its op and attributes mapped
/// onto the op table, the outputs read back to the host.
public func runCase(_ c: OpFixtures.Case, inputs hostInputs: [Tensor], on backend: any Backend) throws -> [Tensor] {
    var host = hostInputs
    if c.op == "rope_apply" {
        // Diorama keeps one angle per pair, [l, d/2]; diffusers repeats each, [1, l, 1, d].
        host = [host[0], try everyOther(host[1], from: 0), try everyOther(host[2], from: 1)]
    }
    let inputs = try host.map { try backend.upload($0) }
    var outputs = try runMapped(c, inputs: inputs, on: backend).map { try backend.download($0) }
    if c.op == "rope_3d_frequencies" { outputs = try outputs.map { try repeatedPairs($0) } }
    return outputs
}

func runMapped(_ c: OpFixtures.Case, inputs: [Tensor], on backend: any Backend) throws -> [Tensor] {
    let a = c.attrs
    func axes() -> [Int] { a["dim"]?.ints ?? [] }
    let keep = a["keepdim"]?.bool ?? false
    switch c.op {
    case "linear": return try backend.run(.linear, inputs)
    case "linear_fp8": return try backend.run(.linearFP8, inputs)
    case "quantize_fp8": return try backend.run(.quantizeFP8, inputs)
    case "gated_residual": return try backend.run(.gatedResidual, inputs)
    case "modulated_layer_norm": return try backend.run(.modulatedLayerNorm(eps: Float(a["eps"]!.double!)), inputs)
    case "rms_norm_rope": return try backend.run(.rmsNormRope(eps: Float(a["eps"]!.double!), heads: a["heads"]!.int!), inputs)
    case "matmul": return try backend.run(.matmul, inputs)
    case "conv2d":
        var x = inputs[0]
        if let prePad = a["pre_pad"]?.ints { x = try backend.run(.pad(amounts: prePad, value: 0), [x])[0] }
        let stride = a["stride"]?.ints ?? [1], padding = a["padding"]?.ints ?? [0]
        return try backend.run(.conv2d(stride: stride, padding: padding), [x] + inputs.dropFirst())
    case "patch_embed_3d": return try backend.run(.patchEmbed3D(patch: a["patch_size"]!.ints!), inputs)
    case "layer_norm": return try backend.run(.layerNorm(eps: Float(a["eps"]!.double!)), inputs)
    case "t5_rms_norm": return try backend.run(.rmsNorm(eps: Float(a["eps"]!.double!)), inputs)
    case "channel_rms_norm": return try backend.run(.channelRMSNorm(eps: Float(a["eps"]!.double!)), inputs)
    case "channel_rms_norm_silu": return try backend.run(.channelRMSNormSiLU(eps: Float(a["eps"]!.double!)), inputs)
    case "silu": return try backend.run(.silu, inputs)
    case "gelu_tanh": return try backend.run(.geluTanh, inputs)
    case "sigmoid": return try backend.run(.sigmoid, inputs)
    case "log": return try backend.run(.log, inputs)
    case "softmax": return try backend.run(.softmax(axis: a["dim"]?.int ?? -1), inputs)
    case "sdpa": return try backend.run(.attention(scale: a["scale"]?.double.map { Float($0) }), inputs)
    case "rope_3d_frequencies":
        return try backend.run(
            .ropeFrequencies3D(
                headDim: a["head_dim"]!.int!, frames: a["frames"]!.int!, height: a["height"]!.int! / 2,
                width: a["width"]!.int! / 2, theta: a["theta"]!.double!), [])
    case "rope_apply": return try backend.run(.ropeInterleaved, inputs)
    case "timestep_embedding":
        return try backend.run(
            .timestepEmbedding(
                dim: a["embedding_dim"]!.int!, flipSinToCos: a["flip_sin_to_cos"]!.bool!,
                downscaleFreqShift: Float(a["downscale_freq_shift"]!.double!)), inputs)
    case "t5_relative_buckets":
        return try backend.run(
            .t5RelativeBuckets(
                queryLength: a["query_length"]!.int!, keyLength: a["key_length"]!.int!,
                bidirectional: a["bidirectional"]!.bool!, buckets: a["num_buckets"]!.int!, maxDistance: a["max_distance"]!.int!), [])
    case "embedding": return try backend.run(.embedding, inputs)
    case "upsample_nearest2x": return try backend.run(.upsampleNearest2x, inputs)
    case "avg_pool2x2": return try backend.run(.averagePool2x2, inputs)
    case "pad": return try backend.run(.pad(amounts: a["pad"]!.ints!, value: Float(a["value"]!.double!)), inputs)
    case "concat": return try backend.run(.concat(axis: a["dim"]!.int!), inputs)
    case "split": return try backend.run(.split(sizes: a["sizes"]!.ints!, axis: a["dim"]!.int!), inputs)
    case "permute": return try backend.run(.permute(a["dims"]!.ints!), inputs)
    case "transpose":
        var x = inputs[0]
        if let start = a["flatten_start"]?.int { x = try x.reshaped(Array(x.shape[..<start]) + [-1]) }
        return try backend.run(.contiguous, [try x.transposed(a["dim0"]!.int!, a["dim1"]!.int!)])
    case "reshape": return [try inputs[0].reshaped(a["shape"]!.ints!)]
    case "sum": return try backend.run(.sum(axes: axes(), keepDims: keep), inputs)
    case "mean": return try backend.run(.mean(axes: axes(), keepDims: keep), inputs)
    case "var": return try backend.run(.variance(axes: axes(), keepDims: keep), inputs)
    case "max": return try backend.run(.max(axes: axes(), keepDims: keep), inputs)
    case "cast": return try backend.run(.cast(DType(rawValue: a["to"]!.string!)!), inputs)
    default: throw EngineError(.unsupportedOp, "no mapping for fixture op \(c.op)")
    }
}

/// `[l, d/2]` → `[1, l, 1, d]` with each value twice, diffusers' layout.
func repeatedPairs(_ t: Tensor) throws -> Tensor {
    let values = t.floats()
    return try Tensor(values.flatMap { [$0, $0] }, shape: [1, t.shape[0], 1, 2 * t.shape[1]])
}

/// Entries `from, from + 2, …` of the last axis of `[1, l, 1, d]` as `[l, d/2]`.
func everyOther(_ t: Tensor, from start: Int) throws -> Tensor {
    let d = t.shape.last!, l = t.count / d
    let values = t.floats()
    return try Tensor((0..<l).flatMap { row in stride(from: start, to: d, by: 2).map { values[row * d + $0] } }, shape: [l, d / 2])
}

/// Whether `actual` meets the case's tolerance; the message says by how much it misses.
public func compare(_ actual: Tensor, _ expected: Tensor, _ tolerance: OpFixtures.Tolerance) -> (Bool, String) {
    guard actual.shape == expected.shape else { return (false, "shape \(actual.shape) vs \(expected.shape)") }
    if !expected.dtype.isFloatingPoint {
        let same = actual.int64s() == expected.int64s()
        return (same, same ? "exact" : "integer values differ")
    }
    guard actual.dtype == expected.dtype else { return (false, "dtype \(actual.dtype) vs \(expected.dtype)") }
    let a = actual.floats(), e = expected.floats()
    var worst = 0.0
    let scale = e.filter(\.isFinite).map { abs(Double($0)) }.max() ?? 1
    var squared = 0.0, reference = 0.0
    for (x, y) in zip(a, e) {
        if y.isNaN { if !x.isNaN { return (false, "NaN expected, got \(x)") } else { continue } }
        if !y.isFinite { if x != y { return (false, "\(y) expected, got \(x)") } else { continue } }
        let difference = abs(Double(x) - Double(y))
        switch tolerance.metric {
        case "exact": if x.bitPattern != y.bitPattern { return (false, "value \(x) differs from \(y) (bit-exact expected)") }
        case "max_rel": worst = max(worst, difference / max(abs(Double(y)), 1e-6 * scale))
        default: worst = max(worst, difference)
        }
        squared += difference * difference
        reference += Double(y) * Double(y)
    }
    if tolerance.metric == "nmse" { worst = reference > 0 ? squared / reference : squared }
    if tolerance.metric == "exact" { return (true, "exact") }
    return (worst <= tolerance.value, "\(tolerance.metric) \(worst) (allowed \(tolerance.value))")
}


/// Largest |a − b| over the largest |b| (host tensors of one size): the relative error model parity is held to.
public func relativeError(_ a: Tensor, _ b: Tensor) -> Double {
    let (x, y) = (a.floats(), b.floats())
    precondition(x.count == y.count, "\(a.shape) vs \(b.shape)")
    let scale = y.map { abs(Double($0)) }.max() ?? 1
    var worst = 0.0
    for (p, q) in zip(x, y) {
        if p.isNaN != q.isNaN { return .infinity }
        worst = max(worst, abs(Double(p) - Double(q)))
    }
    return worst / max(scale, 1e-30)
}
