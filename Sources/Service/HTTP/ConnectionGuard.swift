import Hummingbird
import HummingbirdCore
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1

/// Per connection, just after HTTP/1 parsing and before Hummingbird's codec (where the HTTP version is still known):
/// - a request's head must arrive within `headerTimeout` of the connection being ready for it (opened, or the previous
///   response finished), and its body within `bodyTimeout` of the head, else the connection is closed: a client that
///   trickles bytes (slowloris) cannot hold a connection, however often it sends;
/// - an HTTP/1.1 request needs exactly one `Host` (HTTP/1.0 at most one), else `400`;
/// - a request the parser rejects gets the API's JSON error body with its `400`, and the connection is closed;
/// - when the client closes the connection, the handlers still working for it are told (`DisconnectSignal`).
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    let headerTimeout: TimeAmount
    let bodyTimeout: TimeAmount
    private var deadline: Scheduled<Void>?
    /// Requests read whose responses have not ended (HTTP/1 pipelining keeps them in order).
    private var open = 0
    private var responseStarted = false
    private var refusing = false
    private var disconnect: DisconnectSignal?

    init(headerTimeout: TimeAmount, bodyTimeout: TimeAmount) {
        self.headerTimeout = headerTimeout
        self.bodyTimeout = bodyTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        disconnect = OpenConnections.register(context.channel)
        if context.channel.isActive { arm(headerTimeout, context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(headerTimeout, context)
        context.fireChannelActive()
    }

    /// The client went away: the handlers still working for it are cancelled (`ClientDisconnectMiddleware`).
    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        disconnect?.fire()
        OpenConnections.unregister(context.channel)
        context.fireChannelInactive()
    }

    /// The client closed its side (Hummingbird keeps half-closed connections open so that an answer could still be
    /// written): as Go's HTTP server does, that counts as the client having gone for the requests still being
    /// worked on.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed { disconnect?.fire() }
        context.fireUserInboundEventTriggered(event)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        disconnect?.fire()
        OpenConnections.unregister(context.channel)
    }

    private func arm(_ timeout: TimeAmount, _ context: ChannelHandlerContext) {
        deadline?.cancel()
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: timeout) { loopBound.value.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if refusing { return }
        let part = unwrapInboundIn(data)
        switch part {
        case .head(let head):
            let hosts = head.headers["Host"].count
            let http11 = head.version.major > 1 || (head.version.major == 1 && head.version.minor >= 1)
            if hosts > 1 || (hosts == 0 && http11) {
                refuse(context, message: hosts > 1 ? "the request has \(hosts) Host headers; send exactly one" : "an HTTP/1.1 request needs a Host header")
                return
            }
            open += 1
            arm(bodyTimeout, context)
        case .body: break
        case .end:
            // A response may have ended before its request's body did (an early 401, 404 or 413, the rest of the
            // body drained after it): then the connection is waiting for the next head already.
            if open == 0 {
                arm(headerTimeout, context)
            } else {
                deadline?.cancel()
                deadline = nil
            }
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head: responseStarted = true
        case .body: break
        case .end:
            responseStarted = false
            open = max(0, open - 1)
            // Ready for the next request: its head has the header timeout from now.
            if open == 0 && !refusing { arm(headerTimeout, context) }
        }
        context.write(data, promise: promise)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard error is HTTPParserError, !responseStarted else {
            context.fireErrorCaught(error)
            return
        }
        refuse(context, message: "the request is not valid HTTP/1.1 (\(error))")
    }

    /// `400` with the API's JSON error, then the connection closes. With an earlier pipelined request still being
    /// answered, the answer cannot go first: the connection just closes.
    private func refuse(_ context: ChannelHandlerContext, message: String) {
        refusing = true
        deadline?.cancel()
        guard open == 0, !responseStarted else {
            context.close(promise: nil)
            return
        }
        let json = JSONText.encode(["error": message])
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(json.utf8.count))
        headers.add(name: "Connection", value: "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .badRequest, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: json)))), promise: nil)
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in loopBound.value.close(promise: nil) }
    }
}

/// Puts a `ConnectionGuard` in front of Hummingbird's HTTP/1 codec (its additional handlers go after the codec, where
/// the request's HTTP version is no longer known), then steps aside.
final class ConnectionGuardInstaller: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = Any
    let headerTimeout: TimeAmount
    let bodyTimeout: TimeAmount

    init(headerTimeout: TimeAmount, bodyTimeout: TimeAmount) {
        self.headerTimeout = headerTimeout
        self.bodyTimeout = bodyTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let guardHandler = ConnectionGuard(headerTimeout: headerTimeout, bodyTimeout: bodyTimeout)
        let pipeline = context.pipeline.syncOperations
        // Hummingbird's HTTP/1 pipeline always has the codec; `slowClientsAndMalformedRequestsAreCutOff` fails if the
        // guard stops being installed.
        if let codec = try? pipeline.handler(type: HTTP1ToHTTPServerCodec.self) {
            try? pipeline.addHandler(guardHandler, position: .before(codec))
        }
        pipeline.removeHandler(context: context, promise: nil)
    }
}

extension DioramaServer {
    /// HTTP/1 with the idle timeout, and each connection's `ConnectionGuard`.
    public static func httpServer(configuration: ServiceConfiguration) -> HTTPServerBuilder {
        let (header, body) = (TimeAmount.seconds(Int64(configuration.headerTimeout)), TimeAmount.seconds(Int64(configuration.bodyTimeout)))
        return .http1(
            configuration: .init(
                additionalChannelHandlers: [ConnectionGuardInstaller(headerTimeout: header, bodyTimeout: body)],
                idleTimeout: .seconds(Int64(configuration.idleTimeout))))
    }
}
