/// An n-dimensional array: a view (shape, strides and offset, in elements) of typed storage on a device.
///
/// Views share storage (`reshaped`, `permuted`, `transposed`, `narrowed`); ops produce new storage. Ops take
/// any layout and make it contiguous where they need to.
public struct Tensor: Sendable, CustomStringConvertible {
    public let storage: TensorStorage
    public let dtype: DType
    public let shape: [Int]
    public let strides: [Int]
    public let offset: Int

    public init(storage: TensorStorage, dtype: DType, shape: [Int], strides: [Int]? = nil, offset: Int = 0) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.storage = storage
        self.dtype = dtype
        self.shape = shape
        self.strides = strides ?? Tensor.contiguousStrides(shape)
        self.offset = offset
    }

    public var device: Device { storage.device }
    public var rank: Int { shape.count }
    public var count: Int { shape.reduce(1, *) }
    public var byteCount: Int { count * dtype.byteSize }

    public static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var running = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[i] = running
            running *= max(shape[i], 1)
        }
        return strides
    }

    /// Row-major and dense (size-1 dimensions may have any stride).
    public var isContiguous: Bool {
        var expected = 1
        for i in stride(from: rank - 1, through: 0, by: -1) where shape[i] != 1 {
            if strides[i] != expected { return false }
            expected *= shape[i]
        }
        return true
    }

    public var description: String { "Tensor(\(dtype), \(shape), \(device))" }

    /// An axis that may be negative (counted from the end), checked.
    public func axis(_ a: Int) throws(EngineError) -> Int {
        let resolved = a < 0 ? a + rank : a
        guard (0..<max(rank, 1)).contains(resolved) else {
            throw EngineError(.invalidArgument, "axis \(a) is out of range for a tensor of rank \(rank)")
        }
        return resolved
    }

    // MARK: Views

    /// The same elements in a new shape (one dimension may be -1); needs a contiguous tensor.
    public func reshaped(_ newShape: [Int]) throws(EngineError) -> Tensor {
        var newShape = newShape
        let known = newShape.filter { $0 != -1 }.reduce(1, *)
        if let unknown = newShape.firstIndex(of: -1) {
            guard newShape.filter({ $0 == -1 }).count == 1, known > 0, count % known == 0 else {
                throw EngineError(.shapeMismatch, "cannot reshape \(shape) to \(newShape)")
            }
            newShape[unknown] = count / known
        }
        guard newShape.reduce(1, *) == count, newShape.allSatisfy({ $0 >= 0 }) else {
            throw EngineError(.shapeMismatch, "cannot reshape \(shape) (\(count) elements) to \(newShape)")
        }
        guard isContiguous else {
            throw EngineError(.invalidArgument, "reshape needs a contiguous tensor; call contiguous() on this \(shape) view first")
        }
        return Tensor(storage: storage, dtype: dtype, shape: newShape, offset: offset)
    }

    /// The axes reordered: `result.shape[i] == shape[dims[i]]`.
    public func permuted(_ dims: [Int]) throws(EngineError) -> Tensor {
        guard dims.count == rank, Set(dims) == Set(0..<rank) else {
            throw EngineError(.invalidArgument, "permutation \(dims) does not reorder the \(rank) axes of \(shape)")
        }
        return Tensor(
            storage: storage, dtype: dtype, shape: dims.map { shape[$0] }, strides: dims.map { strides[$0] }, offset: offset)
    }

    public func transposed(_ a: Int, _ b: Int) throws(EngineError) -> Tensor {
        var dims = Array(0..<rank)
        dims.swapAt(try axis(a), try axis(b))
        return try permuted(dims)
    }

    /// `length` elements of axis `dim` starting at `start`.
    public func narrowed(_ dim: Int, start: Int, length: Int) throws(EngineError) -> Tensor {
        let d = try axis(dim)
        guard start >= 0, length >= 0, start + length <= shape[d] else {
            throw EngineError(.invalidArgument, "cannot take \(start)..<\(start + length) of axis \(dim) (size \(shape[d]))")
        }
        var newShape = shape
        newShape[d] = length
        return Tensor(storage: storage, dtype: dtype, shape: newShape, strides: strides, offset: offset + start * strides[d])
    }
}
