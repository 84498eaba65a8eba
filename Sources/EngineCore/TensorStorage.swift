/// Bytes on one device that tensors view. It gives its memory back (to the allocator that made it, or to whatever
/// owns a mapped file) when the last tensor using it goes away.
public final class TensorStorage: Sendable {
    public let device: Device
    public let byteCount: Int
    /// A host pointer's bits on the CPU, a device pointer on a GPU.
    public let address: UInt
    private let onRelease: (@Sendable () -> Void)?

    public init(device: Device, address: UInt, byteCount: Int, onRelease: (@Sendable () -> Void)?) {
        self.device = device
        self.address = address
        self.byteCount = byteCount
        self.onRelease = onRelease
    }

    /// Fresh storage from an allocator.
    public convenience init(allocator: CachingAllocator, byteCount: Int) throws(EngineError) {
        let block = try allocator.allocate(byteCount)
        self.init(device: allocator.device, address: block.address, byteCount: byteCount) { allocator.release(block) }
    }

    deinit { onRelease?() }

    /// The host pointer; only for CPU storage.
    public var hostPointer: UnsafeMutableRawPointer {
        precondition(device.kind == .cpu, "storage on \(device) has no host pointer")
        return UnsafeMutableRawPointer(bitPattern: address) ?? UnsafeMutableRawPointer(bitPattern: 64)!
    }
}
