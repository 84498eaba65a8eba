import EngineCore
import Synchronization

/// A minimal CUDA backend: proves that the engine's core needs no redesign for a GPU. It holds the primary context
/// of one device, a caching allocator over `cuMemAlloc`, NVRTC-compiled kernels for an elementwise op and a row
/// reduction, and cuBLASLt for matrix products. Everything is loaded with dlopen; no CUDA toolkit is needed to build.
///
/// The driver context is confined: every call into the driver happens under one lock, after making the context
/// current on the calling thread, so the backend can be shared across tasks while the C handles stay put.
public final class CUDABackend: Backend {
    public let device: Device
    public let name: String
    /// Compute capability as `major·10 + minor`, e.g. 90 for Hopper.
    public let architecture: Int
    let driver: CUDADriver
    let allocator: CachingAllocator
    private let state: Mutex<Confined>

    /// The handles only the lock holder touches.
    struct Confined: @unchecked Sendable {
        var context: OpaquePointer?
        var kernels: [String: OpaquePointer?] = [:]
        var nvrtc: NVRTC?
        var blas: CuBLASLt?
        var blasHandle: OpaquePointer?
        var workspace: MemoryBlock?
    }

    /// Opens device `ordinal`, or throws a `.device` error that says what is missing (driver, device, library).
    public init(ordinal: Int = 0) throws(EngineError) {
        let driver = try CUDADriver()
        try driver.check(driver.cuInit(0), "cuInit")
        var count: Int32 = 0
        try driver.check(driver.cuDeviceGetCount(&count), "cuDeviceGetCount")
        guard ordinal < Int(count) else { throw EngineError(.device, "CUDA device \(ordinal) does not exist (\(count) found)") }
        var handle: Int32 = 0
        try driver.check(driver.cuDeviceGet(&handle, Int32(ordinal)), "cuDeviceGet")
        var nameBuffer = [CChar](repeating: 0, count: 256)
        try driver.check(driver.cuDeviceGetName(&nameBuffer, 256, handle), "cuDeviceGetName")
        var major: Int32 = 0, minor: Int32 = 0
        try driver.check(driver.cuDeviceGetAttribute(&major, 75, handle), "cuDeviceGetAttribute(major)")
        try driver.check(driver.cuDeviceGetAttribute(&minor, 76, handle), "cuDeviceGetAttribute(minor)")
        var context: OpaquePointer?
        try driver.check(driver.cuDevicePrimaryCtxRetain(&context, handle), "cuDevicePrimaryCtxRetain")
        try driver.check(driver.cuCtxSetCurrent(context), "cuCtxSetCurrent")
        var free = 0, total = 0
        try driver.check(driver.cuMemGetInfo(&free, &total), "cuMemGetInfo")
        self.driver = driver
        device = .cuda(ordinal)
        name = String(cString: nameBuffer)
        architecture = Int(major) * 10 + Int(minor)
        allocator = CachingAllocator(
            device: .cuda(ordinal), raw: DeviceMemory(driver: driver, context: UncheckedContext(context)), limit: total / 10 * 8)
        state = Mutex(Confined(context: context))
    }

    /// Whether a CUDA device can be opened here (false, not an error, on machines without one).
    public static var isAvailable: Bool { (try? CUDABackend()) != nil }

    public var memoryStats: MemoryStats { allocator.stats }

    /// Runs `body` holding the context, current on this thread.
    func withContext<R>(_ body: (inout Confined) throws(EngineError) -> R) throws(EngineError) -> R {
        let result: Result<R, EngineError> = state.withLock { confined in
            do throws(EngineError) {
                try driver.check(driver.cuCtxSetCurrent(confined.context), "cuCtxSetCurrent")
                return .success(try body(&confined))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    func empty(_ shape: [Int], dtype: DType) throws(EngineError) -> Tensor {
        let storage = try TensorStorage(allocator: allocator, byteCount: shape.reduce(1, *) * dtype.byteSize)
        return Tensor(storage: storage, dtype: dtype, shape: shape)
    }

    public func upload(_ tensor: Tensor) throws(EngineError) -> Tensor {
        let host = try tensor.device.kind == .cpu ? hostContiguous(tensor) : tensor
        let out = try empty(tensor.shape, dtype: tensor.dtype)
        try withContext { _ throws(EngineError) in
            try driver.check(
                driver.cuMemcpyHtoD(UInt64(out.storage.address), host.storage.hostPointer, out.byteCount), "cuMemcpyHtoD")
        }
        return out
    }

    public func download(_ tensor: Tensor) throws(EngineError) -> Tensor {
        guard tensor.device == device, tensor.isContiguous else {
            throw EngineError(.invalidArgument, "download takes a contiguous tensor on \(device), not \(tensor)")
        }
        let out = try Tensor.empty(tensor.shape, dtype: tensor.dtype)
        try withContext { _ throws(EngineError) in
            try driver.check(
                driver.cuMemcpyDtoH(
                    out.storage.hostPointer, UInt64(tensor.storage.address) + UInt64(tensor.offset * tensor.dtype.byteSize),
                    out.byteCount),
                "cuMemcpyDtoH")
        }
        return out
    }

    private func hostContiguous(_ t: Tensor) throws(EngineError) -> Tensor {
        if t.isContiguous && t.offset == 0 { return t }
        return try Tensor(bytes: t.contiguousBytes().withUnsafeBytes { $0 }, dtype: t.dtype, shape: t.shape)
    }

    public func supports(_ op: Op, inputTypes: [DType]) -> Bool {
        switch op {
        case .silu, .geluTanh: return inputTypes == [.float32]
        case .sum(let axes, _): return inputTypes == [.float32] && (axes == [-1])
        case .linear:
            guard inputTypes.count == 2, let first = inputTypes.first, CuBLASLt.dataType(first) != nil else { return false }
            return inputTypes.allSatisfy { $0 == first }
        default: return false
        }
    }

    public func run(_ op: Op, _ inputs: [Tensor]) throws(EngineError) -> [Tensor] {
        guard supports(op, inputTypes: inputs.map(\.dtype)) else {
            throw EngineError(.unsupportedOp, "\(op) on \(inputs.map(\.dtype)) is not implemented on \(device); run it on the CPU")
        }
        for (i, t) in inputs.enumerated() where t.device != device || !t.isContiguous {
            throw EngineError(.invalidArgument, "\(op): input \(i) must be a contiguous tensor on \(device), not \(t)")
        }
        switch op {
        case .silu, .geluTanh: return [try elementwise(op, inputs[0])]
        case .sum: return [try rowSum(inputs[0])]
        case .linear: return [try linear(inputs[0], inputs[1])]
        default: throw EngineError(.unsupportedOp, "\(op) is not implemented on \(device)")
        }
    }
}

/// A context handle that may cross threads (the backend's lock serialises its use).
struct UncheckedContext: @unchecked Sendable {
    let value: OpaquePointer?
    init(_ value: OpaquePointer?) { self.value = value }
}

/// Device memory through the driver; frees make the context current first, as they may run on any thread.
struct DeviceMemory: RawMemory {
    let driver: CUDADriver
    let context: UncheckedContext

    func allocate(byteCount: Int) -> UInt? {
        guard driver.cuCtxSetCurrent(context.value) == 0 else { return nil }
        var pointer: UInt64 = 0
        return driver.cuMemAlloc(&pointer, byteCount) == 0 ? UInt(pointer) : nil
    }

    func free(_ address: UInt, byteCount: Int) {
        _ = driver.cuCtxSetCurrent(context.value)
        _ = driver.cuMemFree(UInt64(address))
    }
}
