import Dispatch
import Synchronization

/// Heavy synchronous work (a generation, a format conversion, a video) runs on Dispatch's threads, off Swift's
/// cooperative pool, so the HTTP handlers and the job actor keep answering however many jobs run.
enum BlockingWork {
    static func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global(qos: .userInitiated).async { continuation.resume(with: Result { try work() }) }
        }
    }

    /// `work` with a flag it can poll, set when the awaiting task is cancelled (Dispatch threads have no task).
    static func cancellable<T: Sendable>(_ work: @escaping @Sendable (_ isCancelled: @escaping @Sendable () -> Bool) throws -> T) async throws -> T {
        let flag = CancellationFlag()
        return try await withTaskCancellationHandler {
            try await run { try work { flag.isSet } }
        } onCancel: {
            flag.set()
        }
    }
}

final class CancellationFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
}
