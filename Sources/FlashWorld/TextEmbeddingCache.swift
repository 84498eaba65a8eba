import EngineCore
import Synchronization

/// The text encoder's outputs for recent prompts, so a repeated prompt skips the encoder (UMT5-XXL is the largest
/// model of the pipeline). Least recently used entries go first; the tensors stay on their device.
public final class TextEmbeddingCache: Sendable {
    public let capacity: Int
    private let entries = Mutex<[(key: String, value: Tensor)]>([])

    public init(capacity: Int = 16) { self.capacity = max(capacity, 0) }

    /// The cached context for `key`, moved to the front; nil when absent.
    public func lookup(_ key: String) -> Tensor? {
        entries.withLock { entries in
            guard let index = entries.firstIndex(where: { $0.key == key }) else { return nil }
            let entry = entries.remove(at: index)
            entries.insert(entry, at: 0)
            return entry.value
        }
    }

    public func store(_ value: Tensor, for key: String) {
        guard capacity > 0 else { return }
        entries.withLock { entries in
            entries.removeAll { $0.key == key }
            entries.insert((key, value), at: 0)
            if entries.count > capacity { entries.removeLast(entries.count - capacity) }
        }
    }

    public var count: Int { entries.withLock { $0.count } }
}
