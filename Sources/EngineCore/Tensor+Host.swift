/// Creating CPU tensors and reading them back: conversions from and to float for every element type.
extension DType {
    /// Element `index` of a buffer of this type, as float (integers and bools converted).
    @inlinable public func loadFloat(_ base: UnsafeRawPointer, _ index: Int) -> Float {
        switch self {
        case .float32: return base.loadUnaligned(fromByteOffset: 4 * index, as: Float.self)
        case .float16: return Float(base.loadUnaligned(fromByteOffset: 2 * index, as: Float16.self))
        case .bfloat16: return BFloat16(bitPattern: base.loadUnaligned(fromByteOffset: 2 * index, as: UInt16.self)).float
        case .float8E4M3: return Float8Format.e4m3.decode(base.load(fromByteOffset: index, as: UInt8.self))
        case .float8E5M2: return Float8Format.e5m2.decode(base.load(fromByteOffset: index, as: UInt8.self))
        case .int32: return Float(base.loadUnaligned(fromByteOffset: 4 * index, as: Int32.self))
        case .int64: return Float(base.loadUnaligned(fromByteOffset: 8 * index, as: Int64.self))
        case .bool: return base.load(fromByteOffset: index, as: UInt8.self) != 0 ? 1 : 0
        }
    }

    /// Stores `value` as element `index`: rounded to nearest even for narrow floats, saturating for FP8, truncated
    /// toward zero for integers.
    @inlinable public func storeFloat(_ value: Float, _ base: UnsafeMutableRawPointer, _ index: Int) {
        switch self {
        case .float32: base.storeBytes(of: value, toByteOffset: 4 * index, as: Float.self)
        case .float16: base.storeBytes(of: Float16(value), toByteOffset: 2 * index, as: Float16.self)
        case .bfloat16: base.storeBytes(of: BFloat16(value).bitPattern, toByteOffset: 2 * index, as: UInt16.self)
        case .float8E4M3: base.storeBytes(of: Float8Format.e4m3.encode(value), toByteOffset: index, as: UInt8.self)
        case .float8E5M2: base.storeBytes(of: Float8Format.e5m2.encode(value), toByteOffset: index, as: UInt8.self)
        case .int32: base.storeBytes(of: value.isFinite ? Int32(clamping: Int64(value)) : 0, toByteOffset: 4 * index, as: Int32.self)
        case .int64: base.storeBytes(of: value.isFinite ? Int64(value) : 0, toByteOffset: 8 * index, as: Int64.self)
        case .bool: base.storeBytes(of: value != 0 ? 1 : 0, toByteOffset: index, as: UInt8.self)
        }
    }
}

extension Tensor {
    /// Uninitialised CPU storage for `shape`.
    public static func empty(_ shape: [Int], dtype: DType = .float32) throws(EngineError) -> Tensor {
        let count = shape.reduce(1, *)
        let storage = try TensorStorage(allocator: .host, byteCount: count * dtype.byteSize)
        return Tensor(storage: storage, dtype: dtype, shape: shape)
    }

    public static func zeros(_ shape: [Int], dtype: DType = .float32) throws(EngineError) -> Tensor {
        let t = try empty(shape, dtype: dtype)
        t.storage.hostPointer.initializeMemory(as: UInt8.self, repeating: 0, count: t.byteCount)
        return t
    }

    /// A CPU tensor of `dtype` from float values (converted as `storeFloat` does).
    public init(_ values: [Float], shape: [Int], dtype: DType = .float32) throws(EngineError) {
        guard values.count == shape.reduce(1, *) else {
            throw EngineError(.shapeMismatch, "\(values.count) values cannot fill shape \(shape)")
        }
        self = try Tensor.empty(shape, dtype: dtype)
        let base = storage.hostPointer
        if dtype == .float32 {
            values.withUnsafeBytes { base.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        } else {
            for (i, v) in values.enumerated() { dtype.storeFloat(v, base, i) }
        }
    }

    /// A CPU tensor of 64-bit integers.
    public init(int64s values: [Int64], shape: [Int]) throws(EngineError) {
        guard values.count == shape.reduce(1, *) else {
            throw EngineError(.shapeMismatch, "\(values.count) values cannot fill shape \(shape)")
        }
        self = try Tensor.empty(shape, dtype: .int64)
        let base = storage.hostPointer
        values.withUnsafeBytes { if $0.count > 0 { base.copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
    }

    /// A CPU tensor whose elements are `bytes` (little-endian, row-major).
    public init(bytes: UnsafeRawBufferPointer, dtype: DType, shape: [Int]) throws(EngineError) {
        let needed = shape.reduce(1, *) * dtype.byteSize
        guard bytes.count == needed else {
            throw EngineError(.shapeMismatch, "\(bytes.count) bytes for a \(dtype) tensor of shape \(shape), which needs \(needed)")
        }
        self = try Tensor.empty(shape, dtype: dtype)
        if needed > 0 { storage.hostPointer.copyMemory(from: bytes.baseAddress!, byteCount: needed) }
    }

    /// Calls `body` with the storage index of every element in row-major order.
    @inlinable public func forEachStorageIndex(_ body: (Int) -> Void) {
        let n = count
        guard n > 0 else { return }
        if isContiguous {
            for i in 0..<n { body(offset + i) }
            return
        }
        var index = [Int](repeating: 0, count: rank)
        var position = offset
        for _ in 0..<n {
            body(position)
            var d = rank - 1
            while d >= 0 {
                index[d] += 1
                position += strides[d]
                if index[d] < shape[d] { break }
                position -= strides[d] * shape[d]
                index[d] = 0
                d -= 1
            }
        }
    }

    /// The elements as floats, row-major (CPU tensors only).
    public func floats() -> [Float] {
        precondition(device.kind == .cpu, "floats() reads CPU tensors; copy \(device) tensors to the CPU first")
        let base = UnsafeRawPointer(storage.hostPointer)
        if dtype == .float32 && isContiguous {
            return Array(UnsafeBufferPointer(start: base.assumingMemoryBound(to: Float.self) + offset, count: count))
        }
        var out: [Float] = []
        out.reserveCapacity(count)
        forEachStorageIndex { out.append(dtype.loadFloat(base, $0)) }
        return out
    }

    /// The elements as 64-bit integers, row-major (CPU integer or bool tensors).
    public func int64s() -> [Int64] {
        precondition(device.kind == .cpu, "int64s() reads CPU tensors")
        let base = UnsafeRawPointer(storage.hostPointer)
        var out: [Int64] = []
        out.reserveCapacity(count)
        forEachStorageIndex { i in
            switch dtype {
            case .int64: out.append(base.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))
            case .int32: out.append(Int64(base.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)))
            default: out.append(Int64(dtype.loadFloat(base, i)))
            }
        }
        return out
    }

    /// The raw little-endian bytes, row-major (CPU tensors).
    public func contiguousBytes() -> [UInt8] {
        precondition(device.kind == .cpu, "contiguousBytes() reads CPU tensors")
        let base = UnsafeRawPointer(storage.hostPointer)
        let size = dtype.byteSize
        var out = [UInt8](repeating: 0, count: byteCount)
        var k = 0
        out.withUnsafeMutableBytes { dst in
            forEachStorageIndex { i in
                dst.baseAddress!.advanced(by: k * size).copyMemory(from: base + i * size, byteCount: size)
                k += 1
            }
        }
        return out
    }
}
