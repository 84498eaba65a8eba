import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Raw memory of one device: what the caching allocator sits on.
public protocol RawMemory: Sendable {
    /// The address of `byteCount` fresh bytes, or nil when the device has no room.
    func allocate(byteCount: Int) -> UInt?
    func free(_ address: UInt, byteCount: Int)
}

/// Host memory, 64-byte aligned (a cache line and any SIMD width).
public struct HostMemory: RawMemory {
    public init() {}

    public func allocate(byteCount: Int) -> UInt? {
        var pointer: UnsafeMutableRawPointer?
        guard posix_memalign(&pointer, 64, max(byteCount, 64)) == 0, let pointer else { return nil }
        return UInt(bitPattern: pointer)
    }

    public func free(_ address: UInt, byteCount: Int) { Glibc.free(UnsafeMutableRawPointer(bitPattern: address)) }
}

/// A block handed out by a `CachingAllocator`: its address and the rounded size it occupies.
public struct MemoryBlock: Sendable, Hashable {
    public let address: UInt
    public let size: Int
}

/// Reuses freed blocks of the same size class instead of returning them to the device, counts active, peak and
/// cached bytes, enforces a limit, and on exhaustion drops its cache and retries once.
///
/// Size classes: powers of two up to 16 KiB, whole 16 KiB pages above that, so a freed buffer fits the next request
/// of about the same size.
public final class CachingAllocator: Sendable {
    public let device: Device
    private let raw: any RawMemory
    private let state: Mutex<State>

    struct State {
        var free: [Int: [UInt]] = [:]
        var stats: MemoryStats
        var maxCached: Int
    }

    public init(device: Device, raw: any RawMemory, limit: Int, maxCached: Int = .max) {
        self.device = device
        self.raw = raw
        state = Mutex(State(stats: MemoryStats(active: 0, peak: 0, cached: 0, limit: limit), maxCached: maxCached))
    }

    public static func roundedSize(_ byteCount: Int) -> Int {
        let page = 16 << 10
        if byteCount <= 64 { return 64 }
        if byteCount <= page {
            var size = 64
            while size < byteCount { size <<= 1 }
            return size
        }
        return (byteCount + page - 1) / page * page
    }

    public func allocate(_ byteCount: Int) throws(EngineError) -> MemoryBlock {
        guard byteCount >= 0 else { throw EngineError(.invalidArgument, "cannot allocate \(byteCount) bytes") }
        let size = Self.roundedSize(byteCount)
        let reused: UInt? = state.withLock { s in
            guard let address = s.free[size]?.popLast() else { return nil }
            s.stats.cached -= size
            s.stats.active += size
            s.stats.peak = max(s.stats.peak, s.stats.active)
            return address
        }
        if let reused { return MemoryBlock(address: reused, size: size) }
        for attempt in 0..<2 {
            let allowed = state.withLock { s in s.stats.active + size <= s.stats.limit }
            if allowed, let address = raw.allocate(byteCount: size) {
                state.withLock { s in
                    s.stats.active += size
                    s.stats.peak = max(s.stats.peak, s.stats.active)
                }
                return MemoryBlock(address: address, size: size)
            }
            if attempt == 0 { clearCache() }
        }
        let stats = self.stats
        throw EngineError(
            .outOfMemory, "\(device): cannot allocate \(byteCount) bytes (\(stats)); free tensors or lower the batch size")
    }

    /// Returns a block for reuse (or to the device when the cache is full).
    public func release(_ block: MemoryBlock) {
        let keep = state.withLock { s -> Bool in
            s.stats.active -= block.size
            guard s.stats.cached + block.size <= s.maxCached else { return false }
            s.free[block.size, default: []].append(block.address)
            s.stats.cached += block.size
            return true
        }
        if !keep { raw.free(block.address, byteCount: block.size) }
    }

    /// Gives every cached block back to the device.
    public func clearCache() {
        let blocks = state.withLock { s -> [(UInt, Int)] in
            let all = s.free.flatMap { size, addresses in addresses.map { ($0, size) } }
            s.free.removeAll()
            s.stats.cached = 0
            return all
        }
        for (address, size) in blocks { raw.free(address, byteCount: size) }
    }

    public var stats: MemoryStats { state.withLock { $0.stats } }

    /// Starts a new peak from what is live now (to measure one phase).
    public func resetPeak() { state.withLock { $0.stats.peak = $0.stats.active } }

    /// The host allocator every CPU tensor uses: limited to 90% of physical memory, caching at most 1 GiB.
    public static let host: CachingAllocator = {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), pageSize = sysconf(Int32(_SC_PAGESIZE))
        let physical = pages > 0 && pageSize > 0 ? pages * pageSize : 1 << 34
        return CachingAllocator(device: .cpu, raw: HostMemory(), limit: physical / 10 * 9, maxCached: 1 << 30)
    }()
}
