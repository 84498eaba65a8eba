import Hummingbird
import NIOCore
import Synchronization

/// Fires once when a connection closes: what a request's handler registers to be cancelled when its client goes away
/// (a parse waiting for its turn then leaves the queue, and nothing is submitted for a client that is gone).
final class DisconnectSignal: Sendable {
    private let state = Mutex<(closed: Bool, next: Int, actions: [Int: @Sendable () -> Void])>((false, 0, [:]))

    /// Runs `action` when the connection closes (at once if it has); the token takes it back.
    func onClose(_ action: @escaping @Sendable () -> Void) -> Int? {
        let token: Int? = state.withLock { s in
            guard !s.closed else { return nil }
            s.next += 1
            s.actions[s.next] = action
            return s.next
        }
        if token == nil { action() }
        return token
    }

    var isClosed: Bool { state.withLock { $0.closed } }

    func remove(_ token: Int?) {
        guard let token else { return }
        _ = state.withLock { $0.actions.removeValue(forKey: token) }
    }

    func fire() {
        let actions = state.withLock { s in
            s.closed = true
            defer { s.actions = [:] }
            return Array(s.actions.values)
        }
        for action in actions { action() }
    }
}

/// The signal of each open connection, by channel: the `ConnectionGuard` registers and fires it, request contexts
/// look it up (Hummingbird's context keeps no channel).
enum OpenConnections {
    private static let signals = Mutex<[ObjectIdentifier: DisconnectSignal]>([:])

    static func register(_ channel: any Channel) -> DisconnectSignal {
        let signal = DisconnectSignal()
        signals.withLock { $0[ObjectIdentifier(channel)] = signal }
        return signal
    }

    static func unregister(_ channel: any Channel) { _ = signals.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) } }

    static func signal(for channel: any Channel) -> DisconnectSignal? { signals.withLock { $0[ObjectIdentifier(channel)] } }

    static var count: Int { signals.withLock { $0.count } }
}

/// The service's request context: Hummingbird's basic one plus the connection's disconnect signal.
public struct DioramaRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// nil where the request did not come through a guarded connection (the router called directly in tests).
    let disconnect: DisconnectSignal?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        disconnect = OpenConnections.signal(for: source.channel)
    }
}

/// Gives a request's handler its connection's disconnect signal (`ClientConnection.disconnect`), so the work it queues
/// for the client is dropped when the client goes away before its turn: a parse waiting in the queue leaves it, and a
/// parsed request is not submitted (the answer is a `499` nobody reads). Hummingbird's own cancel-on-close also closes
/// every keep-alive connection after its answer, so it is not used.
struct ClientDisconnectMiddleware: RouterMiddleware {
    typealias Context = DioramaRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let signal = context.disconnect else { return try await next(request, context) }
        return try await ClientConnection.$disconnect.withValue(signal) { try await next(request, context) }
    }
}

enum ClientConnection {
    /// The disconnect signal of the connection the current request came on (nil outside a guarded connection).
    @TaskLocal static var disconnect: DisconnectSignal?

    /// Whether the current request's client has gone.
    static var isGone: Bool { disconnect?.isClosed ?? false }
}
