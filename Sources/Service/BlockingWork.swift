import Dispatch
import Parallelism
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

extension BlockingWork {
    /// Request parsing that can cost real CPU (multipart bodies, image decoding): on Dispatch's threads, at most
    /// `parsingSlots` at once, so a few heavy uploads never hold the HTTP handlers or crowd out each other's CPUs. A
    /// request whose client has gone (its task cancelled) gives up its place in the queue and is never parsed.
    /// A client that disconnected (`ClientConnection`) also leaves the queue, and its parsed request is answered
    /// `clientGone` so that nothing is submitted for it.
    static func parsing<T: Sendable>(_ work: @escaping @Sendable () throws(ServiceError) -> T) async throws(ServiceError) -> T {
        let disconnect = ClientConnection.disconnect
        do {
            try await parsingGate.enter(leavingOn: disconnect)
        } catch {
            throw ServiceError.clientGone
        }
        defer { Task { await parsingGate.leave() } }
        if Task.isCancelled || ClientConnection.isGone { throw ServiceError.clientGone }
        let parsed: T
        do {
            parsed = try await run { () throws -> T in try work() }
        } catch let error as ServiceError {
            throw error
        } catch {
            throw ServiceError(500, "server error: \(error)")
        }
        if Task.isCancelled || ClientConnection.isGone { throw ServiceError.clientGone }
        return parsed
    }

    static let parsingGate = Gate(slots: max(1, activeProcessorCount / 2))
}

/// A counting semaphore for async callers, first come first served; a caller cancelled while it waits leaves the
/// queue (CancellationError) without taking a slot.
actor Gate {
    nonisolated let slots: Int
    private var free: Int
    private var waiting: [(id: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
    private var nextID: UInt64 = 0

    init(slots: Int) {
        self.slots = slots
        free = slots
    }

    /// A slot; a caller cancelled, or whose `disconnect` fires, while it waits leaves without one.
    func enter(leavingOn disconnect: DisconnectSignal? = nil) async throws {
        try Task.checkCancellation()
        if disconnect?.isClosed == true { throw CancellationError() }
        if free > 0 {
            free -= 1
            return
        }
        nextID += 1
        let id = nextID
        let token = disconnect?.onClose { Task { await self.abandon(id) } }
        defer { disconnect?.remove(token) }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { waiting.append((id, $0)) }
        } onCancel: {
            Task { await self.abandon(id) }
        }
    }

    private func abandon(_ id: UInt64) {
        guard let index = waiting.firstIndex(where: { $0.id == id }) else { return }
        waiting.remove(at: index).continuation.resume(throwing: CancellationError())
    }

    func leave() {
        if waiting.isEmpty { free += 1 } else { waiting.removeFirst().continuation.resume() }
    }

    var freeSlots: Int { free }
    var waitingCount: Int { waiting.count }
}

final class CancellationFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
}
