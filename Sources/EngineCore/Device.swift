import Synchronization

/// Where a tensor's memory lives.
public struct Device: Hashable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable {
        case cpu
        case cuda
    }

    public let kind: Kind
    public let ordinal: Int

    public init(kind: Kind, ordinal: Int = 0) {
        self.kind = kind
        self.ordinal = ordinal
    }

    public static let cpu = Device(kind: .cpu)
    public static func cuda(_ ordinal: Int = 0) -> Device { Device(kind: .cuda, ordinal: ordinal) }

    public var description: String { kind == .cpu ? "cpu" : "cuda:\(ordinal)" }
}

/// Bytes a device's allocator holds: in live tensors, at most so far, and freed but kept for reuse.
public struct MemoryStats: Sendable, Equatable, CustomStringConvertible {
    public var active: Int
    public var peak: Int
    public var cached: Int
    public var limit: Int

    public var description: String {
        func mib(_ b: Int) -> String { "\((Double(b) / 1_048_576 * 10).rounded() / 10) MiB" }
        return "active \(mib(active)), peak \(mib(peak)), cached \(mib(cached)), limit \(mib(limit))"
    }
}

/// The open backend of each non-CPU device, so a tensor on any device can be copied to any other (the CPU backend
/// asks a GPU tensor's owner to read it back).
public enum DeviceRegistry {
    private static let backends = Mutex<[Device: any Backend]>([:])

    public static func register(_ backend: any Backend) {
        backends.withLock { $0[backend.device] = backend }
    }

    public static func backend(for device: Device) -> (any Backend)? {
        backends.withLock { $0[device] }
    }
}
