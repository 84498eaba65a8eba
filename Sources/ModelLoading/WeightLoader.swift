import Checkpoints
import EngineCore

/// A parameter a module expects: its dotted name, shape, and the dtype to hold it in (nil keeps the file's).
public struct ParameterSpec: Sendable, Equatable {
    public var name: String
    public var shape: [Int]
    public var dtype: DType?
    /// Other shapes a checkpoint may store it in, which the module handles too (trimmed causal kernels).
    public var alternativeShapes: [[Int]]

    public init(_ name: String, shape: [Int], dtype: DType? = nil, alternativeShapes: [[Int]] = []) {
        self.name = name
        self.shape = shape
        self.dtype = dtype
        self.alternativeShapes = alternativeShapes
    }
}

/// Everything wrong between a module's parameters and a checkpoint, all at once: missing, unexpected and mis-shaped
/// keys with their dotted paths and shapes.
public struct WeightLoadError: Error, Equatable, Sendable, CustomStringConvertible {
    public var source: String
    public var missing: [ParameterSpec] = []
    public var unexpected: [(name: String, shape: [Int])] = []
    public var mismatched: [(name: String, expected: [Int], found: [Int])] = []
    public var unreadable: [(name: String, reason: String)] = []

    public var isEmpty: Bool { missing.isEmpty && unexpected.isEmpty && mismatched.isEmpty && unreadable.isEmpty }

    public var description: String {
        var lines = ["\(source) does not match the model:"]
        func shape(_ s: [Int]) -> String { "[" + s.map(String.init).joined(separator: ", ") + "]" }
        for m in missing.prefix(20) { lines.append("  missing     \(m.name) \(shape(m.shape))") }
        for u in unexpected.prefix(20) { lines.append("  unexpected  \(u.name) \(shape(u.shape))") }
        for m in mismatched.prefix(20) { lines.append("  wrong shape \(m.name): expected \(shape(m.expected)), found \(shape(m.found))") }
        for u in unreadable.prefix(20) { lines.append("  unreadable  \(u.name): \(u.reason)") }
        let total = missing.count + unexpected.count + mismatched.count + unreadable.count
        if total > 80 { lines.append("  … \(total) problems in all") }
        return lines.joined(separator: "\n")
    }

    public static func == (a: Self, b: Self) -> Bool { a.description == b.description }
}

/// Loads module parameters from a checkpoint, strictly by default: every expected key present with its shape, and
/// (strict) no key left over under the prefix.
public enum WeightLoader {
    /// The tensors for `specs`, named as in `specs`, read from `checkpoint` entries `prefix + name`. `transform` sees
    /// each host tensor as soon as it is read (to put it on a device in the type it will be used in), so only one
    /// tensor at a time needs host memory beyond the mapped file.
    public static func load(
        _ specs: [ParameterSpec], from checkpoint: Checkpoint, prefix: String = "", strict: Bool = true, source: String,
        transform: (ParameterSpec, Tensor) throws(EngineError) -> Tensor = { $1 }
    ) throws(WeightLoadError) -> [String: Tensor] {
        var report = WeightLoadError(source: source)
        let available = Dictionary(
            checkpoint.tensors.filter { $0.name.hasPrefix(prefix) }.map { (String($0.name.dropFirst(prefix.count)), $0) },
            uniquingKeysWith: { a, _ in a })
        var loaded: [String: Tensor] = [:]
        for spec in specs {
            guard let stored = available[spec.name] else {
                report.missing.append(spec)
                continue
            }
            guard stored.shape == spec.shape || spec.alternativeShapes.contains(stored.shape) else {
                report.mismatched.append((spec.name, spec.shape, stored.shape))
                continue
            }
            do throws(EngineError) {
                loaded[spec.name] = try transform(spec, try tensor(from: stored, as: spec.dtype))
            } catch {
                report.unreadable.append((spec.name, error.message))
            }
        }
        if strict {
            let wanted = Set(specs.map(\.name))
            for (name, stored) in available.sorted(by: { $0.key < $1.key }) where !wanted.contains(name) {
                report.unexpected.append((name, stored.shape))
            }
        }
        guard report.isEmpty else { throw report }
        return loaded
    }

    /// The engine dtype a stored dtype loads as when the module does not say (wide or unsigned integers widen).
    public static func engineType(_ stored: StoredDType) -> DType {
        switch stored {
        case .F32, .F64: .float32
        case .F16: .float16
        case .BF16: .bfloat16
        case .F8_E4M3: .float8E4M3
        case .F8_E5M2: .float8E5M2
        case .I64, .U64, .U32: .int64
        case .I32, .I16, .I8, .U16, .U8: .int32
        case .BOOL: .bool
        }
    }

    /// A CPU tensor of `stored`, converted to `dtype` when given.
    public static func tensor(from stored: StoredTensor, as dtype: DType? = nil) throws(EngineError) -> Tensor {
        let natural = engineType(stored.dtype)
        let direct: StoredDType? = [.F32: .F32, .F16: .F16, .BF16: .BF16, .F8_E4M3: .F8_E4M3, .F8_E5M2: .F8_E5M2, .I64: .I64, .I32: .I32, .BOOL: .BOOL][stored.dtype]
        var tensor: Tensor
        if direct != nil {
            let result: Result<Tensor, EngineError> = stored.withContiguousBytes { bytes in
                Result { () throws(EngineError) in try Tensor(bytes: bytes, dtype: natural, shape: stored.shape) }
            }
            tensor = try result.get()
        } else {
            tensor = try Tensor.empty(stored.shape, dtype: natural)
            let out = tensor.storage.hostPointer
            stored.withContiguousBytes { bytes in
                for i in 0..<stored.count {
                    switch stored.dtype {
                    case .F64: out.storeBytes(of: Float(bytes.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)), toByteOffset: 4 * i, as: Float.self)
                    case .I16: out.storeBytes(of: Int32(bytes.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self)), toByteOffset: 4 * i, as: Int32.self)
                    case .I8: out.storeBytes(of: Int32(bytes.load(fromByteOffset: i, as: Int8.self)), toByteOffset: 4 * i, as: Int32.self)
                    case .U16: out.storeBytes(of: Int32(bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)), toByteOffset: 4 * i, as: Int32.self)
                    case .U8: out.storeBytes(of: Int32(bytes.load(fromByteOffset: i, as: UInt8.self)), toByteOffset: 4 * i, as: Int32.self)
                    case .U32: out.storeBytes(of: Int64(bytes.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)), toByteOffset: 8 * i, as: Int64.self)
                    default: out.storeBytes(of: Int64(bitPattern: bytes.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)), toByteOffset: 8 * i, as: Int64.self)
                    }
                }
            }
        }
        if let dtype, dtype != tensor.dtype {
            tensor = try convert(tensor, to: dtype)
        }
        return tensor
    }

    static func convert(_ t: Tensor, to dtype: DType) throws(EngineError) -> Tensor {
        let out = try Tensor.empty(t.shape, dtype: dtype)
        let src = UnsafeRawPointer(t.storage.hostPointer), dst = out.storage.hostPointer
        for i in 0..<t.count { dtype.storeFloat(t.dtype.loadFloat(src, i), dst, i) }
        return out
    }
}
