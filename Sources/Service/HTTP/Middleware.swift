import Hummingbird

/// Answers CORS for the configured origins: `*` lets any page call the API (FlashWorld's default), a list echoes only
/// those origins, an empty list sends no CORS headers at all. Preflight requests end here.
struct OriginPolicyMiddleware<Context: RequestContext>: RouterMiddleware {
    let origins: [String]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let origin = request.headers[.origin]
        let allowed: String? =
            if origins.contains("*") { "*" } else if let origin, origins.contains(origin) { origin } else { nil }
        var response: Response
        if request.method == .options, request.headers[.accessControlRequestMethod] != nil {
            response = Response(status: allowed == nil ? .forbidden : .noContent)
            if allowed != nil {
                response.headers[.accessControlAllowMethods] = "GET, POST, DELETE, OPTIONS"
                response.headers[.accessControlAllowHeaders] = "Content-Type, Authorization, Range, If-None-Match"
                response.headers[.accessControlMaxAge] = "600"
            }
        } else {
            response = try await next(request, context)
        }
        if let allowed {
            response.headers[.accessControlAllowOrigin] = allowed
            response.headers[.accessControlExposeHeaders] = "ETag, Content-Range, Content-Length, Content-Disposition"
        }
        // With a list, the answer depends on the origin: caches must keep them apart.
        if !origins.contains("*"), !origins.isEmpty { response.headers[.vary] = "Origin" }
        return response
    }
}

/// With a token configured, every API call needs `Authorization: Bearer <token>`; the studio's files, the API
/// reference (`/docs`, `/openapi.json`), `/health` and `/v1/info` (limits, defaults, and whether a token is needed)
/// stay open so a browser can load the page and say what
/// it needs, and a load balancer can probe.
struct BearerTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: String?
    static func isOpen(_ path: String) -> Bool {
        path == "/" || path == "/health" || path == "/v1/info" || path == "/openapi.json" || StudioAssets.file(at: path) != nil
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let token, !token.isEmpty, request.method != .options, !Self.isOpen(request.uri.path) else {
            return try await next(request, context)
        }
        var given = request.headers[.authorization] ?? ""
        // Browsers' EventSource cannot send headers: an event stream may carry the token as ?access_token=.
        if given.isEmpty, request.uri.path.hasSuffix("/events"), let query = request.uri.queryParameters["access_token"] {
            given = "Bearer \(query)"
        }
        guard given.lowercased().hasPrefix("bearer "), constantTimeEqual(Array(given.utf8.dropFirst(7)), Array(token.utf8)) else {
            var response = HTTPResponses.error(401, given.isEmpty ? "this server needs Authorization: Bearer <token>" : "the bearer token is wrong")
            response.headers[.wwwAuthenticate] = "Bearer"
            return response
        }
        return try await next(request, context)
    }

    /// Compares without an early exit, so timing does not reveal how much of a guess was right.
    func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for i in 0..<max(a.count, b.count) { difference |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0) }
        return difference == 0
    }
}

/// Counts responses by status for `/metrics`, and turns the router's own errors (no such route, a malformed body) into
/// the same JSON errors every other rejection has.
struct ResponseAccountingMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ServiceMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let response: Response
        do {
            response = try await next(request, context)
        } catch let error as HTTPError {
            let message = error.status == .notFound ? "no such endpoint: \(request.method) \(request.uri.path)" : (error.body ?? "\(error.status)")
            response = HTTPResponses.error(error.status.code, message)
        } catch {
            response = HTTPResponses.error(error)
        }
        metrics.response(response.status.code)
        return response
    }
}

/// Stops what a page on another site could make a browser do: a state-changing request whose `Origin` is neither
/// allowed (`cors_origins`) nor this server's own is refused (403), and a body in a type only HTML forms send without
/// a CORS preflight (`text/plain`, `application/x-www-form-urlencoded`) is refused on every route (415; none takes
/// them). With `cors_origins` `*` (the default, as FlashWorld) any page may call the API; set a token or a list.
/// Also drops the body of `HEAD` answers.
struct RequestGuardMiddleware<Context: RequestContext>: RouterMiddleware {
    let origins: [String]

    static func sameOrigin(_ origin: String, host: String?) -> Bool {
        guard let host, !host.isEmpty else { return false }
        return origin == "http://\(host)" || origin == "https://\(host)"
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if [.post, .delete, .put, .patch].contains(request.method) {
            if let origin = request.headers[.origin], !origins.contains("*"), !origins.contains(origin),
                !Self.sameOrigin(origin, host: request.head.authority)
            {
                return HTTPResponses.error(403, "a \(request.method) from the page at \(String(origin.prefix(200))) is refused; allow its origin with --cors-origins")
            }
            if let type = request.headers[.contentType]?.lowercased(),
                type.hasPrefix("text/plain") || type.hasPrefix("application/x-www-form-urlencoded")
            {
                return HTTPResponses.error(
                    415, "send JSON with Content-Type: application/json (or multipart/form-data where a route takes files), not \(String(type.prefix(100)))")
            }
        }
        guard request.method == .head else { return try await next(request, context) }
        // Every GET route is also a HEAD route (`getAndHead`): the same status and headers, Content-Length included,
        // and no body.
        let response = try await next(request, context)
        return Response(status: response.status, headers: response.headers)
    }
}

extension RouterMethods {
    /// A GET route that answers HEAD too (the body dropped by `RequestGuardMiddleware`).
    @discardableResult func getAndHead(
        _ path: RouterPath = "", use handler: @Sendable @escaping (Request, Context) async throws -> some ResponseGenerator
    ) -> Self {
        on(path, method: .get, use: handler)
        return on(path, method: .head, use: handler)
    }
}
