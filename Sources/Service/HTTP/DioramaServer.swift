import Hummingbird

/// The whole HTTP surface of `diorama serve`: the studio at `/`, FlashWorld's API (and the Gradio calls of its current
/// web client), the image-to-3D API and the native `/v1` API over one service, behind the response accounting, CORS and bearer-token layers.
public enum DioramaServer {
    public static func router(service: GenerationService, configuration: ServiceConfiguration) -> Router<DioramaRequestContext> {
        let router = Router(context: DioramaRequestContext.self)
        // Outermost first: CORS headers go on every answer, errors included.
        router.add(middleware: OriginPolicyMiddleware(origins: configuration.corsOrigins))
        router.add(middleware: ResponseAccountingMiddleware(metrics: service.metrics))
        router.add(middleware: BearerTokenMiddleware(token: configuration.token))
        router.add(middleware: RequestGuardMiddleware(origins: configuration.corsOrigins))
        router.add(middleware: ClientDisconnectMiddleware())
        OperationsRoutes.add(to: router, service: service)
        // A worker answers operators only: its jobs come from the shared store, not from clients.
        guard configuration.role != .worker else { return router }
        addStudio(to: router)
        FlashWorldRoutes.add(to: router, service: service, configuration: configuration)
        ImageTo3DRoutes.add(to: router, service: service, configuration: configuration)
        NativeRoutes.add(to: router, service: service, configuration: configuration)
        GradioRoutes.add(to: router, service: service)
        return router
    }

    /// The studio's files, compiled in; the page needs no other origin.
    static func addStudio(to router: Router<DioramaRequestContext>) {
        for path in StudioAssets.files.keys.sorted() + ["/", "/docs"] {
            router.getAndHead(RouterPath(path)) { request, _ -> Response in
                guard let file = StudioAssets.file(at: request.uri.path) else { return HTTPResponses.error(404, "no such page") }
                var headers = HTTPFields()
                headers[.cacheControl] = "no-cache"
                headers[.contentSecurityPolicy] = "default-src 'self'; img-src 'self' data: blob:; worker-src 'self' blob:; connect-src 'self'; style-src 'self' 'unsafe-inline'"
                return HTTPResponses.bytes(Array(file.text.utf8), contentType: file.contentType, headers: headers)
            }
        }
    }
}
