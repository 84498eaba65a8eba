import EngineCore

/// Where every random draw of a generation comes from, in order, so a test can feed the reference's noise and a seed
/// reproduces a run.
public protocol NoiseSource {
    /// `shape.reduce(1, *)` standard normal samples as a float32 tensor on `backend`.
    mutating func normal(_ shape: [Int], on backend: any Backend) throws(EngineError) -> Tensor
}

/// Seeded noise: draw `k` uses the counter-based generator with key `seed + k·φ`, made on the backend itself, so draws
/// do not depend on each other's sizes, the thread count or the device.
public struct SeededNoise: NoiseSource {
    public let seed: UInt64
    private var draws: UInt64 = 0

    public init(seed: UInt64) { self.seed = seed }

    public mutating func normal(_ shape: [Int], on backend: any Backend) throws(EngineError) -> Tensor {
        defer { draws += 1 }
        return try backend.randomNormal(shape, seed: seed &+ draws &* 0x9E37_79B9_7F4A_7C15)
    }
}

/// Noise given in advance (the reference's tensors, for parity tests), handed out in order and copied to the backend.
public struct RecordedNoise: NoiseSource {
    private var queue: [Tensor]

    public init(_ tensors: [Tensor]) { queue = tensors }

    public mutating func normal(_ shape: [Int], on backend: any Backend) throws(EngineError) -> Tensor {
        guard !queue.isEmpty else { throw EngineError(.invalidArgument, "recorded noise ran out; a draw of \(shape) was asked for") }
        let next = queue.removeFirst()
        guard next.count == shape.reduce(1, *) else {
            throw EngineError(.shapeMismatch, "recorded noise of \(next.shape) where \(shape) was asked for")
        }
        return try backend.upload(try next.reshaped(shape))
    }
}
