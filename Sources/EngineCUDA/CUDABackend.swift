import EngineCore
import Parallelism
import Synchronization

/// The CUDA backend: every op of the table on one NVIDIA GPU, enqueued on one stream without waiting.
///
/// `run` launches NVRTC-compiled kernels and cuBLASLt products on the backend's stream and returns device tensors at
/// once; nothing waits for the GPU except `synchronize()` and `download` (the host read). Allocation is stream-ordered
/// by construction: a freed block goes back to the caching allocator and is only handed to work enqueued later on the
/// same stream, which runs after everything that used it. Everything is loaded with dlopen; no CUDA toolkit is needed
/// to build.
///
/// The driver context is confined: every driver call happens under one lock, after making the context current on the
/// calling thread, so the backend can be shared across tasks while the C handles stay put. One backend per device
/// (`CUDABackend.open`), registered so CPU code can read its tensors back.
public final class CUDABackend: Backend {
    public let device: Device
    public let name: String
    /// Compute capability as `major·10 + minor`, e.g. 90 for Hopper.
    public let architecture: Int
    public let multiprocessors: Int
    public let totalMemory: Int
    /// The driver's CUDA version as `major·1000 + minor·10`.
    public let driverVersion: Int
    public let driverPath: String
    let driver: CUDADriver
    let allocator: CachingAllocator
    let maxSharedMemory: Int
    private let state: Mutex<Confined>
    /// What cuBLASLt declined for FP8 products, per shape (`m×n×k`): 1 the bias epilogue, 2 any product (the
    /// composed path), with the last refusal's message. One odd shape never slows the others down.
    struct FP8Refusals {
        var byShape: [String: Int] = [:]
        var calls = 0
        var lastError: String?
    }
    let fp8Refusals = Mutex(FP8Refusals())
    /// Which kernel bf16 head-128 attention asks for first (`DIORAMA_ATTENTION`), and how often each ran.
    public let preferredAttention = Mutex(AttentionKernel.fromEnvironment)
    struct AttentionCounts {
        var cudnn = 0, own = 0, declined = 0
        var lastDecline: String?
    }
    let attentionCounts = Mutex(AttentionCounts())
    /// Input-free tables (RoPE angles, T5 buckets) already on the device, by op.
    let hostTables = Mutex<[(op: Op, tensors: [Tensor])]>([])
    /// Per-op device time while profiling (`startOpProfile`), nil otherwise.
    let opProfile = Mutex<[String: (count: Int, milliseconds: Double)]?>(nil)

    /// How `linear_fp8` has run here: the cuBLASLt e4m3 path, and the shapes that fell back and why.
    public var fp8Path: String {
        fp8Refusals.withLock { state in
            guard state.calls > 0 else { return "not run yet" }
            let epilogue = state.byShape.filter { $0.value == 1 }.keys.sorted(), composed = state.byShape.filter { $0.value == 2 }.keys.sorted()
            var text = "cuBLASLt e4m3 products with the bias epilogue"
            if !epilogue.isEmpty { text += "; bias added after for \(epilogue.joined(separator: ", "))" }
            if !composed.isEmpty { text += "; composed (dequantised) reference for \(composed.joined(separator: ", "))" }
            if let last = state.lastError { text += " (last refusal: \(last))" }
            return text
        }
    }

    /// The handles only the lock holder touches.
    struct Confined: @unchecked Sendable {
        var context: OpaquePointer?
        var stream: OpaquePointer?
        var module: OpaquePointer?
        var functions: [String: OpaquePointer] = [:]
        var kernelsFromCache: Bool?
        var blas: CuBLASLt?
        var blasHandle: OpaquePointer?
        var workspace: MemoryBlock?
        /// cuBLASLt's algorithm per product shape (its 64 bytes), empty where the implicit query is used.
        var algorithms: [String: [UInt8]] = [:]
        var cudnnState = CuDNNState.untried
        var cudnn: CuDNN?
        var cudnnHandle: OpaquePointer?
        /// Per convolution shape: cuDNN's plan, or nil where it declined (the im2col path runs).
        var cudnnPlans: [String: CuDNN.Plan?] = [:]
        /// Per attention shape: cuDNN's SDPA plan, or nil where it declined (the own kernel runs).
        var cudnnAttentionPlans: [CuDNNGraph.AttentionShape: CuDNNGraph.AttentionPlan?] = [:]
        /// Two pinned host buffers of `stagingBytes` for large downloads, made on the first one and kept.
        var staging: [UnsafeMutableRawPointer] = []
    }

    /// Downloads of more than this go through the pinned buffers, in chunks of this size.
    static let stagingBytes = 32 << 20

    enum CuDNNState { case untried, unavailable, ready }

    private static let opened = Mutex<[Int: CUDABackend]>([:])

    /// The backend of device `ordinal`, opened on first use; throws a `.device` error that says what is missing
    /// (driver, device, library).
    public static func open(ordinal: Int = 0) throws(EngineError) -> CUDABackend {
        let result: Result<CUDABackend, EngineError> = opened.withLock { backends in
            if let existing = backends[ordinal] { return .success(existing) }
            do throws(EngineError) {
                let backend = try CUDABackend(ordinal: ordinal)
                backends[ordinal] = backend
                DeviceRegistry.register(backend)
                return .success(backend)
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    private init(ordinal: Int) throws(EngineError) {
        let driver = try CUDADriver()
        try driver.check(driver.cuInit(0), "cuInit")
        var count: Int32 = 0
        try driver.check(driver.cuDeviceGetCount(&count), "cuDeviceGetCount")
        guard ordinal >= 0, ordinal < Int(count) else {
            throw EngineError(.device, count == 0 ? "no CUDA device found" : "CUDA device \(ordinal) does not exist (\(count) found)")
        }
        var handle: Int32 = 0
        try driver.check(driver.cuDeviceGet(&handle, Int32(ordinal)), "cuDeviceGet")
        var nameBuffer = [CChar](repeating: 0, count: 256)
        try driver.check(driver.cuDeviceGetName(&nameBuffer, 256, handle), "cuDeviceGetName")
        var version: Int32 = 0
        _ = driver.cuDriverGetVersion(&version)
        var context: OpaquePointer?
        try driver.check(driver.cuDevicePrimaryCtxRetain(&context, handle), "cuDevicePrimaryCtxRetain")
        try driver.check(driver.cuCtxSetCurrent(context), "cuCtxSetCurrent")
        var free = 0, total = 0
        try driver.check(driver.cuMemGetInfo(&free, &total), "cuMemGetInfo")
        var stream: OpaquePointer?
        try driver.check(driver.cuStreamCreate(&stream, 1), "cuStreamCreate")  // CU_STREAM_NON_BLOCKING
        self.driver = driver
        device = .cuda(ordinal)
        name = String(cString: nameBuffer)
        architecture = driver.attribute(.computeCapabilityMajor, device: handle) * 10 + driver.attribute(.computeCapabilityMinor, device: handle)
        multiprocessors = max(driver.attribute(.multiprocessorCount, device: handle), 1)
        maxSharedMemory = driver.attribute(.maxSharedMemoryPerBlockOptin, device: handle)
        totalMemory = total
        driverVersion = Int(version)
        driverPath = driver.library.path
        // What other processes hold is not ours to take; leave headroom for the driver and libraries.
        allocator = CachingAllocator(
            device: .cuda(ordinal), raw: DeviceMemory(driver: driver, context: UncheckedContext(context)),
            limit: max(free - (512 << 20), 0) / 20 * 19)
        state = Mutex(Confined(context: context, stream: stream))
    }

    /// Whether a CUDA device can be opened here (false, not an error, on machines without one).
    public static var isAvailable: Bool { (try? open()) != nil }

    public var memoryStats: MemoryStats { allocator.stats }

    /// Starts a new memory peak from what is live now.
    public func resetPeakMemory() { allocator.resetPeak() }

    /// Gives cached blocks back to the driver (between jobs, or before a phase that needs the room).
    public func trimMemory() { allocator.clearCache() }

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

    /// Fresh uninitialised device storage.
    func empty(_ shape: [Int], dtype: DType) throws(EngineError) -> Tensor {
        let storage = try TensorStorage(allocator: allocator, byteCount: shape.reduce(1, *) * dtype.byteSize)
        return Tensor(storage: storage, dtype: dtype, shape: shape)
    }

    /// The device address of a tensor's first element.
    static func address(_ t: Tensor) -> UInt64 { UInt64(t.storage.address) + UInt64(t.offset * t.dtype.byteSize) }

    public func upload(_ tensor: Tensor) throws(EngineError) -> Tensor {
        if tensor.device == device { return try contiguous(tensor) }
        let host: Tensor
        if tensor.device.kind == .cpu {
            host = tensor.isContiguous ? tensor : try Tensor(bytes: tensor.contiguousBytes().withUnsafeBytes { $0 }, dtype: tensor.dtype, shape: tensor.shape)
        } else {
            guard let owner = DeviceRegistry.backend(for: tensor.device) else {
                throw EngineError(.invalidArgument, "no open backend owns \(tensor.device) to copy \(tensor) from")
            }
            host = try owner.download(tensor)
        }
        let out = try empty(tensor.shape, dtype: tensor.dtype)
        guard out.byteCount > 0 else { return out }
        try withContext { confined throws(EngineError) in
            // From pageable memory the driver stages the bytes before returning, so the host tensor may go at once.
            let source = UnsafeRawPointer(host.storage.hostPointer) + host.offset * host.dtype.byteSize
            try driver.check(driver.cuMemcpyHtoDAsync(Self.address(out), source, out.byteCount, confined.stream), "cuMemcpyHtoDAsync")
        }
        return out
    }

    public func download(_ tensor: Tensor) throws(EngineError) -> Tensor {
        let out = try Tensor.empty(tensor.shape, dtype: tensor.dtype)
        try download(tensor, into: UnsafeMutableRawBufferPointer(start: out.storage.hostPointer, count: out.byteCount))
        return out
    }

    /// Straight into the caller's memory. Past `stagingBytes` the copy goes through two pinned buffers in turn: the
    /// GPU fills one at full PCIe rate while the host's cores copy the other out (a copy into pageable memory the
    /// driver stages itself ran at about 1 GB/s for the 616 MB of a final scene).
    public func download(_ tensor: Tensor, into destination: UnsafeMutableRawBufferPointer) throws(EngineError) {
        guard tensor.device == device else {
            throw EngineError(.invalidArgument, "download takes a tensor on \(device), not \(tensor)")
        }
        guard destination.count == tensor.byteCount else {
            throw EngineError(.shapeMismatch, "download: \(destination.count) bytes cannot hold \(tensor) (\(tensor.byteCount) bytes)")
        }
        let source = try contiguous(tensor)
        guard source.byteCount > 0, let base = destination.baseAddress else { return }
        let total = source.byteCount, chunk = Self.stagingBytes
        try withContext { confined throws(EngineError) in
            let stream = confined.stream
            func wait() throws(EngineError) {
                try driver.check(driver.cuStreamSynchronize(stream), "waiting for the GPU (an earlier kernel may have failed)")
            }
            if total <= chunk || confined.staging.count < 2 && !allocateStaging(&confined) {
                try driver.check(driver.cuMemcpyDtoHAsync(base, Self.address(source), total, stream), "cuMemcpyDtoHAsync")
                try wait()
                return
            }
            let buffers = confined.staging
            func enqueue(_ k: Int) throws(EngineError) {
                let start = k * chunk
                try driver.check(
                    driver.cuMemcpyDtoHAsync(buffers[k % 2], Self.address(source) + UInt64(start), min(chunk, total - start), stream),
                    "cuMemcpyDtoHAsync")
            }
            let chunks = (total + chunk - 1) / chunk
            try enqueue(0)
            for k in 0..<chunks {
                try wait()
                if k + 1 < chunks { try enqueue(k + 1) }
                let start = k * chunk, length = min(chunk, total - start)
                Self.parallelCopy(base + start, from: UnsafeRawPointer(buffers[k % 2]), length)
            }
        }
    }

    /// Pinned staging for large downloads; false (and nothing kept) where the driver refuses pinned memory.
    private func allocateStaging(_ confined: inout Confined) -> Bool {
        var made: [UnsafeMutableRawPointer] = []
        for _ in 0..<2 {
            var pointer: UnsafeMutableRawPointer?
            guard driver.cuMemHostAlloc(&pointer, Self.stagingBytes, 0) == 0, let pointer else {
                for p in made { _ = driver.cuMemFreeHost(p) }
                return false
            }
            made.append(pointer)
        }
        confined.staging = made
        return true
    }

    /// A large host copy spread over the cores (first touches of fresh pages are most of its cost).
    static func parallelCopy(_ destination: UnsafeMutableRawPointer, from source: UnsafeRawPointer, _ count: Int) {
        let parts = ranges(of: count, parts: activeProcessorCount, minimum: 1 << 20)
        let pointers = UncheckedSendable((destination, source))
        parallelFor(parts.count) { p in
            let (destination, source) = pointers.value
            (destination + parts[p].lowerBound).copyMemory(from: source + parts[p].lowerBound, byteCount: parts[p].count)
        }
    }

    public func synchronize() throws(EngineError) {
        try withContext { confined throws(EngineError) in
            try driver.check(driver.cuStreamSynchronize(confined.stream), "waiting for the GPU (an earlier kernel may have failed)")
        }
    }

    /// Milliseconds of GPU time the work `body` enqueues takes, measured with events on the stream (waits for it).
    public func measure(_ body: () throws -> Void) throws -> Double {
        var events: (OpaquePointer?, OpaquePointer?) = (nil, nil)
        try withContext { confined throws(EngineError) in
            try driver.check(driver.cuEventCreate(&events.0, 0), "cuEventCreate")
            try driver.check(driver.cuEventCreate(&events.1, 0), "cuEventCreate")
            try driver.check(driver.cuEventRecord(events.0, confined.stream), "cuEventRecord")
        }
        defer { _ = try? withContext { _ throws(EngineError) in _ = driver.cuEventDestroy(events.0); _ = driver.cuEventDestroy(events.1) } }
        try body()
        return try withContext { confined throws(EngineError) in
            try driver.check(driver.cuEventRecord(events.1, confined.stream), "cuEventRecord")
            try driver.check(driver.cuEventSynchronize(events.1), "waiting for the GPU (an earlier kernel may have failed)")
            var milliseconds: Float = 0
            try driver.check(driver.cuEventElapsedTime(&milliseconds, events.0, events.1), "cuEventElapsedTime")
            return Double(milliseconds)
        }
    }

    /// Whether the kernels came from the on-disk cache (nil before the first launch).
    public var kernelsFromCache: Bool? { state.withLock { $0.kernelsFromCache } }

    /// The kernel `name`, loading the module (cached cubin or a fresh NVRTC compilation) on first use.
    func function(_ name: String, _ confined: inout Confined) throws(EngineError) -> OpaquePointer {
        if let cached = confined.functions[name] { return cached }
        if confined.module == nil {
            let (cubin, fromCache) = try KernelCache.cubin(arch: architecture)
            var module: OpaquePointer?
            let status = cubin.withUnsafeBytes { driver.cuModuleLoadData(&module, $0.baseAddress!) }
            try driver.check(status, "cuModuleLoadData")
            confined.module = module
            confined.kernelsFromCache = fromCache
        }
        var handle: OpaquePointer?
        try driver.check(driver.cuModuleGetFunction(&handle, confined.module, name), "cuModuleGetFunction(\(name))")
        guard let handle else { throw EngineError(.device, "kernel \(name) is missing from the module") }
        if maxSharedMemory > 48 << 10 {
            // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES: let tiled kernels use what the device offers.
            _ = driver.cuFuncSetAttribute(handle, 8, Int32(maxSharedMemory))
        }
        confined.functions[name] = handle
        return handle
    }

    /// Enqueues kernel `name` on the stream.
    func launch(
        _ name: String, grid: (x: Int, y: Int, z: Int), block: Int, sharedBytes: Int = 0, _ arguments: KernelArguments
    ) throws(EngineError) {
        guard grid.x > 0, grid.y > 0, grid.z > 0 else { return }
        try withContext { confined throws(EngineError) in
            let function = try function(name, &confined)
            var bytes = arguments.bytes
            var size = bytes.count
            let status = bytes.withUnsafeMutableBytes { buffer in
                withUnsafeMutablePointer(to: &size) { sizePointer in
                    // CU_LAUNCH_PARAM_BUFFER_POINTER, CU_LAUNCH_PARAM_BUFFER_SIZE, CU_LAUNCH_PARAM_END
                    var extra: [UnsafeMutableRawPointer?] = [
                        UnsafeMutableRawPointer(bitPattern: 1), buffer.baseAddress, UnsafeMutableRawPointer(bitPattern: 2),
                        UnsafeMutableRawPointer(sizePointer), nil,
                    ]
                    return driver.cuLaunchKernel(
                        function, UInt32(grid.x), UInt32(grid.y), UInt32(grid.z), UInt32(block), 1, 1, UInt32(sharedBytes), confined.stream,
                        nil, &extra)
                }
            }
            try driver.check(status, "launching \(name)")
        }
    }

    /// A 1D launch over `count` elements with a grid-stride loop.
    func launchElementwise(_ name: String, count: Int, _ arguments: KernelArguments) throws(EngineError) {
        guard count > 0 else { return }
        let blocks = min((count + 255) / 256, multiprocessors * 32)
        try launch(name, grid: (blocks, 1, 1), block: 256, arguments)
    }

    /// One block per row (grid-stride over rows).
    func launchRows(_ name: String, rows: Int, _ arguments: KernelArguments) throws(EngineError) {
        guard rows > 0 else { return }
        try launch(name, grid: (min(rows, 1 << 20), 1, 1), block: 256, arguments)
    }

    public func supports(_ op: Op, inputTypes: [DType]) -> Bool {
        switch op {
        case .linear, .matmul, .conv2d, .patchEmbed3D:
            return inputTypes.prefix(2).allSatisfy { CuBLASLt.dataType($0) != nil }
        default:
            return true
        }
    }

    public func run(_ op: Op, _ inputs: [Tensor]) throws(EngineError) -> [Tensor] {
        for (i, t) in inputs.enumerated() where t.device != device {
            throw EngineError(
                .invalidArgument, "\(op): input \(i) is on \(t.device), not \(device); create it on this backend or upload it first")
        }
        guard opProfile.withLock({ $0 != nil }) else { return try dispatch(op, inputs) }
        // Profiling: each op timed alone with events (the stream waits after every op, so only for diagnosis).
        var outputs: [Tensor] = []
        let milliseconds: Double
        do {
            milliseconds = try measure { outputs = try dispatch(op, inputs) }
        } catch let error as EngineError {
            throw error
        } catch {
            throw EngineError(.device, "\(error)")
        }
        let key = "\(op.name) \(inputs.first.map { "\($0.dtype) \($0.shape)" } ?? "")"
        opProfile.withLock { profile in
            profile?[key, default: (0, 0)].count += 1
            profile?[key, default: (0, 0)].milliseconds += milliseconds
        }
        return outputs
    }

    /// Starts timing every op separately (each waits for the GPU), by op name, input type and shape.
    public func startOpProfile() { opProfile.withLock { $0 = [:] } }

    /// Stops timing ops and returns what was timed, the most expensive first.
    public func stopOpProfile() -> [(op: String, count: Int, milliseconds: Double)] {
        let profile = opProfile.withLock { profile in
            defer { profile = nil }
            return profile ?? [:]
        }
        return profile.map { ($0.key, $0.value.count, $0.value.milliseconds) }.sorted { $0.milliseconds > $1.milliseconds }
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
        return driver.cuMemAlloc(&pointer, max(byteCount, 256)) == 0 ? UInt(pointer) : nil
    }

    func free(_ address: UInt, byteCount: Int) {
        _ = driver.cuCtxSetCurrent(context.value)
        _ = driver.cuMemFree(UInt64(address))
    }
}
