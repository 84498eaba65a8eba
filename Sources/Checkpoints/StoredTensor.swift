#if canImport(Glibc)
    import Glibc
#endif

/// Element types as checkpoint files name them (safetensors spelling).
public enum StoredDType: String, Sendable, CaseIterable, Hashable {
    case F64, F32, F16, BF16, F8_E4M3, F8_E5M2, I64, I32, I16, I8, U64, U32, U16, U8, BOOL

    public var byteSize: Int {
        switch self {
        case .F64, .I64, .U64: 8
        case .F32, .I32, .U32: 4
        case .F16, .BF16, .I16, .U16: 2
        case .F8_E4M3, .F8_E5M2, .I8, .U8, .BOOL: 1
        }
    }
}

/// A read-only memory map of a whole file; unmapped when the last user lets go.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let size: Int
    public let bytes: UnsafeRawPointer

    public init(path: String) throws(CheckpointError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CheckpointError(.io, file: path, "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw CheckpointError(.io, file: path, "cannot stat: \(String(cString: strerror(errno)))") }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw CheckpointError(.io, file: path, "is not a regular file") }
        self.path = path
        size = Int(info.st_size)
        if size == 0 {
            bytes = UnsafeRawPointer(bitPattern: 1)!
            return
        }
        guard let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), mapped != MAP_FAILED else {
            throw CheckpointError(.io, file: path, "cannot map: \(String(cString: strerror(errno)))")
        }
        bytes = UnsafeRawPointer(mapped)
    }

    deinit { if size > 0 { munmap(UnsafeMutableRawPointer(mutating: bytes), size) } }

    /// `count` bytes at `offset`, checked.
    func slice(_ offset: Int, _ count: Int) throws(CheckpointError) -> UnsafeRawBufferPointer {
        guard offset >= 0, count >= 0, offset <= size, count <= size - offset else {
            throw CheckpointError(.truncated, file: path, offset: offset, "needs \(count) bytes here but the file has \(size)")
        }
        return UnsafeRawBufferPointer(start: bytes + offset, count: count)
    }
}

/// One tensor in a checkpoint: its type, shape and where its elements are, without reading them. Safetensors data is
/// dense; PyTorch tensors may be strided views into a larger storage.
public struct StoredTensor: Sendable {
    public let name: String
    public let dtype: StoredDType
    public let shape: [Int]
    /// Element strides; dense row-major for safetensors.
    public let strides: [Int]
    /// Where element 0 of the storage is in the file.
    let storageOffset: Int
    /// The view's first element, in elements from the storage start.
    let elementOffset: Int
    let file: MappedFile

    public var count: Int { shape.reduce(1, *) }
    public var byteCount: Int { count * dtype.byteSize }

    /// The same tensor under another name.
    public func renamed(_ newName: String) -> StoredTensor {
        StoredTensor(
            name: newName, dtype: dtype, shape: shape, strides: strides, storageOffset: storageOffset, elementOffset: elementOffset,
            file: file)
    }
    public var path: String { file.path }

    public var isDense: Bool {
        var expected = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) where shape[i] != 1 {
            if strides[i] != expected { return false }
            expected *= shape[i]
        }
        return true
    }

    /// The elements, row-major and little-endian: a zero-copy view for dense tensors.
    public func withContiguousBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let size = dtype.byteSize
        let start = file.bytes + storageOffset + elementOffset * size
        if isDense { return try body(UnsafeRawBufferPointer(start: start, count: byteCount)) }
        var out = [UInt8](repeating: 0, count: byteCount)
        out.withUnsafeMutableBytes { dst in
            var index = [Int](repeating: 0, count: shape.count)
            var position = 0
            for k in 0..<count {
                dst.baseAddress!.advanced(by: k * size).copyMemory(from: start + position * size, byteCount: size)
                var d = shape.count - 1
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
        return try out.withUnsafeBytes(body)
    }
}

/// The tensors of a checkpoint in file order, with the file-level metadata.
public struct Checkpoint: Sendable {
    public enum Format: String, Sendable {
        case safetensors
        case shardedSafetensors = "sharded safetensors"
        case pytorchZip = "PyTorch zip"
    }

    public var format: Format
    public var tensors: [StoredTensor]
    public var metadata: [String: String]
    /// Entries that are not tensors (numbers, strings) in PyTorch checkpoints, by dotted path.
    public var otherEntries: [String]

    public func tensor(named name: String) -> StoredTensor? { tensors.first { $0.name == name } }
}

extension Int {
    /// The product of `dims` if it fits, else nil.
    static func checkedProduct(_ dims: [Int]) -> Int? {
        var product = 1
        for d in dims {
            guard d >= 0 else { return nil }
            let (p, overflow) = product.multipliedReportingOverflow(by: d)
            if overflow { return nil }
            product = p
        }
        return product
    }
}
