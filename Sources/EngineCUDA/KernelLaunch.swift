import EngineCore

#if canImport(Glibc)
    import Glibc
#endif

/// The element-type codes the kernels switch on (`DT_*` in `KernelSource.common`).
extension DType {
    var kernelCode: Int32 {
        switch self {
        case .float32: 0
        case .float16: 1
        case .bfloat16: 2
        case .float8E4M3: 3
        case .float8E5M2: 4
        case .int32: 5
        case .int64: 6
        case .bool: 7
        }
    }
}

/// A kernel's parameters packed as the C ABI lays them out, for `cuLaunchKernel`'s parameter-buffer form.
struct KernelArguments {
    static let maxRank = 8
    private(set) var bytes: [UInt8] = []

    mutating func align(_ alignment: Int) {
        while bytes.count % alignment != 0 { bytes.append(0) }
    }

    mutating func append<T: BitwiseCopyable>(_ value: T) {
        align(MemoryLayout<T>.alignment)
        withUnsafeBytes(of: value) { bytes += $0 }
    }

    /// The device address of a tensor's first element (its offset included).
    mutating func pointer(_ t: Tensor) {
        append(UInt64(t.storage.address) + UInt64(t.offset * t.dtype.byteSize))
    }

    /// A `View` struct: shape and strides (8 each, 64-bit), rank, dtype code, then each size's 32-bit divider and
    /// whether all of them fit.
    mutating func view(shape: [Int], strides: [Int], dtype: DType) {
        precondition(shape.count <= Self.maxRank && shape.count == strides.count)
        align(8)
        for i in 0..<Self.maxRank { append(Int64(i < shape.count ? shape[i] : 1)) }
        for i in 0..<Self.maxRank { append(Int64(i < strides.count ? strides[i] : 0)) }
        append(Int32(shape.count))
        append(dtype.kernelCode)
        let dividers = (0..<Self.maxRank).map { i in FastDivider(i < shape.count ? shape[i] : 1) }
        for d in dividers { append(d?.magic ?? 0) }
        for d in dividers { append(d?.shift ?? 0) }
        append(Int32(dividers.allSatisfy { $0 != nil } ? 1 : 0))
        align(8)
    }

    mutating func view(_ t: Tensor) { view(shape: t.shape, strides: t.strides, dtype: t.dtype) }

    /// A pointer and its element-type code, in that order (a contiguous operand of known layout).
    mutating func typed(_ t: Tensor) {
        pointer(t)
        append(t.dtype.kernelCode)
    }

    /// A pointer and its view, in that order.
    mutating func operand(_ t: Tensor) {
        pointer(t)
        view(t)
    }
}

/// Division of 31-bit values by a fixed divisor as a multiply-high and a shift: `q = (umulhi(n, magic) + n) >> shift`
/// is `n / divisor` for every `n < 2^31` (the kernels' `view_offset` takes it for indices below that).
struct FastDivider: Equatable {
    let magic: UInt32
    let shift: UInt32

    /// nil for divisors outside `1..<2^31`.
    init?(_ divisor: Int) {
        guard divisor >= 1, divisor <= Int(Int32.max) else { return nil }
        var s = 0
        while (1 << s) < divisor { s += 1 }
        let d = UInt64(divisor)
        magic = UInt32(truncatingIfNeeded: ((UInt64(1) << 32) * ((UInt64(1) << UInt64(s)) - d)) / d + 1)
        shift = UInt32(s)
    }

    /// The kernels' arithmetic, 32-bit wrap-around included.
    func divide(_ n: UInt32) -> UInt32 {
        let high = UInt32(truncatingIfNeeded: (UInt64(n) * UInt64(magic)) >> 32)
        return (high &+ n) >> shift
    }
}

/// Compiles the kernel sources once per GPU architecture and NVRTC version, keeping the cubin on disk
/// (`$DIORAMA_CACHE_DIR`, else `$XDG_CACHE_HOME/diorama`, else `~/.cache/diorama`) so later runs skip compilation.
public enum KernelCache {
    /// Every kernel source of the backend, as one translation unit.
    public static var source: String {
        [KernelSource.common, KernelSource.attention, KernelSource.flashAttention, KernelSource.raster].joined(separator: "\n")
    }

    public static var folder: String {
        if let dir = getenv("DIORAMA_CACHE_DIR").map({ String(cString: $0) }), !dir.isEmpty { return "\(dir)/kernels" }
        if let xdg = getenv("XDG_CACHE_HOME").map({ String(cString: $0) }), !xdg.isEmpty { return "\(xdg)/diorama/kernels" }
        let home = getenv("HOME").map { String(cString: $0) } ?? "/tmp"
        return "\(home)/.cache/diorama/kernels"
    }

    /// FNV-1a over the source, architecture and compiler version: a changed kernel never loads a stale cubin.
    static func key(arch: Int, compiler: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in (source + "|sm_\(arch)|\(compiler)").utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return String(hash, radix: 16)
    }

    /// The cubin for `arch`: from the cache, or compiled (and stored) when absent.
    static func cubin(arch: Int) throws(EngineError) -> (bytes: [UInt8], cached: Bool) {
        let nvrtc = try NVRTC()
        let path = "\(folder)/diorama-\(key(arch: arch, compiler: nvrtc.version))-sm_\(arch).cubin"
        if let bytes = readFile(path), !bytes.isEmpty { return (bytes, true) }
        let bytes = try nvrtc.compile(source, name: "diorama_kernels.cu", arch: arch)
        writeFileAtomically(path, bytes)
        return (bytes, false)
    }

    static func readFile(_ path: String) -> [UInt8]? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = fread(&chunk, 1, chunk.count, file)
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        return bytes
    }

    /// Best effort: a read-only home only costs a recompilation next time.
    static func writeFileAtomically(_ path: String, _ bytes: [UInt8]) {
        var partial = ""
        for component in path.split(separator: "/").dropLast() {
            partial += "/\(component)"
            mkdir(partial, 0o755)
        }
        let temporary = "\(path).\(getpid()).tmp"
        guard let file = fopen(temporary, "wb") else { return }
        let written = fwrite(bytes, 1, bytes.count, file)
        fclose(file)
        if written == bytes.count { rename(temporary, path) } else { unlink(temporary) }
    }
}
