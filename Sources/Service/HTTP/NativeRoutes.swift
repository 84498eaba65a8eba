import FoundationEssentials
import Hummingbird

#if canImport(Glibc)
    import Glibc
#endif

/// Diorama's own API under `/v1`: jobs (create, list, inspect, cancel, delete), progress as server-sent events, and
/// artifacts as PLY, SPZ, .splat and MP4 with ETag and Range; plus `/openapi.json` and Prometheus `/metrics`.
enum NativeRoutes {
    static let version = "0.1.0"

    static func add(to router: Router<DioramaRequestContext>, service: GenerationService, configuration: ServiceConfiguration) {
        let v1 = router.group("v1")

        v1.getAndHead("info") { _, _ -> Response in
            var video: Any = JSONNull.null
            if let offer = await service.videoOffer {
                let d = offer.defaults
                video = [
                    "model": offer.name, "max_frames": service.limits.maxVideoFrames,
                    "defaults": ["frames": d.frames, "width": d.width, "height": d.height, "steps": d.steps, "guidance": d.guidance, "fps": d.fps],
                ]
            }
            return HTTPResponses.json(200, [
                "video": video,
                "model": await service.modelName, "version": version, "auth_required": configuration.token != nil,
                "limits": [
                    "max_frames": configuration.maxFrames, "max_side": configuration.maxSide, "max_body_bytes": configuration.maxBodyBytes,
                    "max_queued": configuration.maxQueued,
                ],
                "defaults": ["frames": configuration.imageFrames, "width": configuration.imageWidth, "height": configuration.imageHeight, "fov": 60],
            ])
        }

        v1.post("jobs") { request, _ -> Response in
            do {
                let body = try await FlashWorldRoutes.collectBody(request, limit: service.limits.maxBodyBytes)
                // The native API is strict: an unknown field is a 400 naming it (FlashWorld's routes stay lenient).
                let (job, _) = try await service.submit(body, strict: true)
                var response = try await jobResponse(job, service: service, status: 202)
                response.headers[.location] = "/v1/jobs/\(job.id)"
                return response
            } catch {
                return HTTPResponses.error(error)
            }
        }

        v1.post("videos") { request, _ -> Response in
            do {
                let body = try await FlashWorldRoutes.collectBody(request, limit: service.limits.maxBodyBytes)
                let (job, _) = try await service.submitVideo(body)
                var response = try await jobResponse(job, service: service, status: 202)
                response.headers[.location] = "/v1/jobs/\(job.id)"
                return response
            } catch {
                return HTTPResponses.error(error)
            }
        }

        // World expansion: a new scene job that grows this one's scene along a path starting inside it.
        v1.post("jobs/:id/extend") { request, context -> Response in
            do {
                let body = try await FlashWorldRoutes.collectBody(request, limit: service.limits.maxBodyBytes)
                let (job, _) = try await service.submitExtension(of: context.parameters.get("id") ?? "", body: body)
                var response = try await jobResponse(job, service: service, status: 202)
                response.headers[.location] = "/v1/jobs/\(job.id)"
                return response
            } catch {
                return HTTPResponses.error(error)
            }
        }

        v1.getAndHead("jobs") { request, _ -> Response in
            let query = request.uri.queryParameters
            var status: JobRecord.Status?
            if let text = query["status"].map(String.init) {
                guard let parsed = JobRecord.Status(rawValue: text) else {
                    return HTTPResponses.error(400, "status must be one of queued, running, completed, failed, cancelled, expired; not \(text)")
                }
                status = parsed
            }
            var limit = 50
            if let text = query["limit"].map(String.init) {
                guard let value = Int(text), (1...500).contains(value) else { return HTTPResponses.error(400, "limit must be 1 to 500, not \(text)") }
                limit = value
            }
            let jobs = try await service.recentJobs(status: status, limit: limit)
            let positions = try await service.queuePositions()
            var objects: [Any] = []
            for job in jobs { objects.append(try await jobObject(job, service: service, positions: positions)) }
            return HTTPResponses.json(200, ["jobs": objects])
        }

        v1.getAndHead("jobs/:id") { _, context -> Response in
            guard let (job, queue) = try await service.jobWithQueue(id: context.parameters.get("id") ?? "") else { return notFound(context) }
            return HTTPResponses.json(200, try await jobObject(job, service: service, positions: [job.id: queue.position]))
        }

        v1.post("jobs/:id/cancel") { _, context -> Response in
            do {
                return try await jobResponse(try await service.cancel(id: context.parameters.get("id") ?? ""), service: service)
            } catch {
                return HTTPResponses.error(error)
            }
        }

        v1.delete("jobs/:id") { _, context -> Response in
            do {
                try await service.deleteJob(id: context.parameters.get("id") ?? "")
                return Response(status: .noContent)
            } catch {
                return HTTPResponses.error(error)
            }
        }

        v1.getAndHead("jobs/:id/events") { _, context -> Response in
            let id = context.parameters.get("id") ?? ""
            guard try await service.job(id: id) != nil else { return notFound(context) }
            var headers = HTTPFields()
            headers[.contentType] = "text/event-stream"
            headers[.cacheControl] = "no-cache"
            return Response(status: .ok, headers: headers, body: ResponseBody { writer in
                // Sends the job whenever it changes (and a comment every 15 s so proxies keep the stream), then `done`.
                var last = ""
                var quiet = 0.0
                while !service.isStopping {
                    guard let (job, queue) = try await service.jobWithQueue(id: id) else {
                        try await writer.write(ByteBuffer(string: "event: done\ndata: {\"id\":\(JSONText.quoted(id)),\"status\":\"deleted\"}\n\n"))
                        break
                    }
                    let text = JSONText.encode(try await jobObject(job, service: service, positions: [job.id: queue.position]))
                    if job.status.isFinished {
                        try await writer.write(ByteBuffer(string: "event: done\ndata: \(text)\n\n"))
                        break
                    }
                    if text != last {
                        try await writer.write(ByteBuffer(string: "event: job\ndata: \(text)\n\n"))
                        last = text
                        quiet = 0
                    } else if quiet >= 15 {
                        try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                        quiet = 0
                    }
                    try await Task.sleep(for: .milliseconds(200))
                    quiet += 0.2
                }
                try await writer.finish(nil)
            })
        }

        v1.getAndHead("jobs/:id/artifacts/:name") { request, context -> Response in
            guard let job = try await service.job(id: context.parameters.get("id") ?? "") else { return notFound(context) }
            let name = context.parameters.get("name") ?? ""
            // flashworld.spz is the FlashWorld routes' file; /v1 lists and serves its own names only.
            guard let artifact = GenerationService.Artifact(rawValue: name), artifact != .flashWorldSPZ, artifact != .extensionBase else {
                return HTTPResponses.error(
                    404, "no artifact \(name); a scene job offers \(GenerationService.Artifact.listed.map(\.rawValue).joined(separator: ", ")), a video job video.mp4")
            }
            do {
                // PLY and SPZ are written with the job; the others are made on first request, in the background: the
                // answer is 202 with Retry-After until the file exists (`?wait=1` waits for it instead).
                let ready = access(service.artifactPath(job.fileID, artifact), R_OK) == 0
                if !ready, job.status == .completed, !VideoJobParser.isVideo(job.request), request.uri.queryParameters["wait"] == nil,
                    artifact.isMadeOnRequest
                {
                    // A conversion that failed is said (500) on the next ask, once, instead of 202 forever.
                    if let failure = await service.takeConversionFailure(service.artifactPath(job.fileID, artifact)) {
                        return HTTPResponses.error(500, "\(name) could not be made: \(failure)")
                    }
                    Task {
                        do {
                            _ = try await ArtifactStore.path(for: artifact, of: job, service: service)
                        } catch {
                            await service.recordConversionFailure(service.artifactPath(job.fileID, artifact), "\(error)")
                        }
                    }
                    var response = HTTPResponses.json(202, [
                        "status": "making", "artifact": name, "retry_after": 2,
                        "detail": "\(name) is being made from the scene; ask again (or add ?wait=1 to wait for it)",
                    ])
                    response.headers[.retryAfter] = "2"
                    return response
                }
                let path = try await ArtifactStore.path(for: artifact, of: job, service: service)
                return HTTPResponses.file(path, request: request, contentType: ArtifactStore.contentType(artifact), downloadName: "\(job.fileID)-\(name)")
            } catch {
                return HTTPResponses.error(error)
            }
        }

        router.getAndHead("openapi.json") { _, _ -> Response in
            HTTPResponses.bytes(StudioAssets.openAPI, contentType: "application/json")
        }
    }

    static func notFound(_ context: DioramaRequestContext) -> Response {
        HTTPResponses.error(404, "no job \(context.parameters.get("id") ?? "")")
    }

    static func jobResponse(_ job: JobRecord, service: GenerationService, status: Int = 200) async throws -> Response {
        HTTPResponses.json(status, try await jobObject(job, service: service))
    }

    /// The job as `/v1` shows it: state, queue position, live progress, timings and artifact links.
    static func jobObject(_ job: JobRecord, service: GenerationService, positions: [String: Int]? = nil) async throws -> [String: Any] {
        var summary = job.summary
        if summary.isEmpty {
            // A job stored before summaries were kept: read its request once.
            let full = job.request.isEmpty ? try await service.job(id: job.id) ?? job : job
            let isVideo = VideoJobParser.isVideo(full.request)
            let old = isVideo ? VideoJobParser.summary(full.request) : FlashWorldRequest.summary(full.request)
            summary = JobSummary(
                kind: isVideo ? "video" : "scene", prompt: old.prompt, frames: old.frames, width: old.width, height: old.height,
                steps: isVideo ? VideoJobParser.steps(full.request) : 4)
        }
        let isVideo = summary.kind == "video"
        var progress: Any = JSONNull.null
        if job.status == .running, let p = service.progress(of: job.id) {
            var object: [String: Any] = ["stage": p.stage, "step": p.step, "steps": p.steps, "fraction": p.fraction, "eta_seconds": JSONNull.null]
            // Time left from the time so far and the fraction done (once there is enough of both to say).
            if let started = job.startedAt, p.fraction >= 0.05, p.fraction < 1 {
                let elapsed = max(0, Date().timeIntervalSince1970 - started)
                if elapsed >= 1 { object["eta_seconds"] = (elapsed * (1 - p.fraction) / p.fraction).rounded() }
            }
            progress = object
        } else if job.status == .completed {
            progress = ["stage": "done", "step": summary.steps, "steps": summary.steps, "fraction": 1.0]
        }
        var timings: [Any] = []
        if let text = job.timings, let pairs = try? JSONDecoder().decode([[TimingValue]].self, from: Data(text.utf8)) {
            for pair in pairs where pair.count == 2 {
                if case .text(let stage) = pair[0], case .number(let seconds) = pair[1] { timings.append(["stage": stage, "seconds": seconds]) }
            }
        }
        var position = 0
        if job.status == .queued {
            if let known = positions?[job.id] { position = known } else { position = try await service.queueInfo(for: job.id).position }
        }
        var artifacts: Any = JSONNull.null
        if job.status == .completed {
            var links: [String: Any] = [:]
            for artifact in isVideo ? [.video] : GenerationService.Artifact.listed {
                links[artifact.linkKey] = "/v1/jobs/\(job.id)/artifacts/\(artifact.rawValue)"
            }
            artifacts = links
        }
        return [
            "id": job.id, "kind": isVideo ? "video" : "scene", "file_id": job.fileID, "status": job.status.rawValue, "created_at": job.createdAt,
            "started_at": job.startedAt ?? JSONNull.null, "completed_at": job.completedAt ?? JSONNull.null,
            "queue_position": position,
            "progress": progress, "error": job.error ?? JSONNull.null, "attempts": job.attempts, "worker": job.worker ?? JSONNull.null,
            "prompt": summary.prompt, "frames": summary.frames, "width": summary.width, "height": summary.height,
            "seed": job.seed, "timings": timings, "artifacts": artifacts, "gaussians": job.gaussians ?? JSONNull.null,
            "extends": summary.extends ?? JSONNull.null,
        ]
    }

    /// An element of the stored `[["stage", seconds], …]` timings.
    enum TimingValue: Decodable {
        case text(String), number(Double)
        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let d = try? container.decode(Double.self) { self = .number(d) } else { self = .text(try container.decode(String.self)) }
        }
    }
}
