import Hummingbird

/// What operators and load balancers read on every node, workers included: `GET /health` with real states and
/// Prometheus `GET /metrics`.
enum OperationsRoutes {
    static func add(to router: Router<DioramaRequestContext>, service: GenerationService) {
        router.getAndHead("health") { _, _ -> Response in
            let readiness = await service.readiness
            let counts: (queued: Int, running: Int)
            do {
                let (queued, running, _) = try await service.counts()
                counts = (queued, running)
            } catch {
                // No store, no work: 503 so balancers send requests to a node that can reach it.
                return HTTPResponses.json(503, [
                    "status": "degraded", "model": await service.modelName, "role": service.role.rawValue,
                    "detail": "the job store cannot be reached: \(error)",
                ])
            }
            var (state, detail): (String, String?) =
                switch readiness {
                case .loading: ("loading", "loading the model")
                case .warmingUp: ("warming_up", "running the warm-up generation")
                case .ready: (counts.running == 0 ? "ready" : "busy", nil)
                case .failed(let reason): ("failed", reason)
                }
            // Ready but unable to keep files: degraded, with the reason (503, so balancers send work elsewhere).
            let problem = readiness == .ready ? service.storageProblem() : nil
            if let problem { (state, detail) = ("degraded", problem) }
            return HTTPResponses.json(readiness == .ready && problem == nil ? 200 : 503, [
                "status": state, "model": await service.modelName, "role": service.role.rawValue, "queued": counts.queued,
                "running": counts.running, "detail": detail ?? JSONNull.null,
            ])
        }

        router.getAndHead("metrics") { _, _ -> Response in
            let (queued, running, completed) = try await service.counts()
            let ready: Double = await service.readiness == .ready ? 1 : 0
            let text = service.metrics.exposition(gauges: [
                ("diorama_jobs_queued", "Jobs waiting.", Double(queued)),
                ("diorama_jobs_running", "Jobs running, on every node sharing the store.", Double(running)),
                ("diorama_jobs_completed", "Completed jobs whose files are kept.", Double(completed)),
                ("diorama_jobs_running_here", "Jobs this process runs.", Double(await service.runningHere)),
                ("diorama_ready", "1 when the model is loaded and warmed up.", ready),
                ("diorama_max_concurrent", "Jobs that may run at once.", Double(service.concurrency)),
            ])
            return HTTPResponses.bytes(Array(text.utf8), contentType: "text/plain; version=0.0.4; charset=utf-8")
        }
    }
}
