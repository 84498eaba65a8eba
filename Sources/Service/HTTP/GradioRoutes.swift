import FoundationEssentials
import Hummingbird
import SplatIO
import Synchronization

/// The Gradio calls FlashWorld's current web client makes (`service-and-ui.md` §1.2, `index.html` at 424db44), so that
/// page works unchanged with Diorama as its backend: `POST /gradio_api/call/gradio_generate` (`{"data": ["<request
/// JSON>"]}` → `{event_id}`), then `GET …/gradio_generate/{event_id}` as server-sent events ending in
/// `event: complete` with `["<response JSON>"]`; `download_file` the same way, answering a file URL the page fetches;
/// and the hidden `gradio_delete`. A generate event is its job, so it outlives a restart.
enum GradioRoutes {
    /// Results of calls that finish at once (refusals, downloads, deletes), until they are read or expire: at most
    /// `capacity` of at most `maxBytes` each, for ten minutes, so refused calls cannot pile up memory.
    final class Results: Sendable {
        static let capacity = 1000
        static let maxBytes = 4096
        static let lifetime = 600.0
        private let entries = Mutex<[String: (data: String, at: Double)]>([:])
        func put(_ data: String) -> String {
            let id = "r" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
            let now = Date().timeIntervalSince1970
            let kept = data.utf8.count <= Self.maxBytes ? data : JSONText.encode([JSONText.encode(["error": "the result was too large to keep"])])
            entries.withLock { table in
                table = table.filter { now - $0.value.at < Self.lifetime }
                if table.count >= Self.capacity, let oldest = table.min(by: { $0.value.at < $1.value.at })?.key { table[oldest] = nil }
                table[id] = (kept, now)
            }
            return id
        }
        var count: Int { entries.withLock { $0.count } }
        func take(_ id: String) -> String? { entries.withLock { $0.removeValue(forKey: id)?.data } }
    }

    static func add(to router: Router<DioramaRequestContext>, service: GenerationService) {
        let results = Results()
        let call = router.group("gradio_api/call")

        call.post("gradio_generate") { request, _ -> Response in
            let argument: String
            do {
                argument = try await firstArgument(request, service: service)
            } catch {
                return HTTPResponses.error(error)
            }
            do {
                let (job, _) = try await service.submit(Array(argument.utf8))
                return eventID(job.id)
            } catch {
                // FlashWorld's gradio_generate answers a refusal as an `{"error"}` result, not an HTTP error.
                let message = (error as? ServiceError)?.message ?? "\(error)"
                return eventID(results.put(JSONText.encode([JSONText.encode(["error": message])])))
            }
        }

        call.get("gradio_generate/:event") { _, context -> Response in
            let id = context.parameters.get("event") ?? ""
            if let data = results.take(id) { return complete(data) }
            guard try await service.jobWithQueue(id: id) != nil else { return HTTPResponses.error(404, "no event \(id)") }
            return stream { () async throws -> String? in
                guard let job = try await service.jobWithQueue(id: id)?.0 else { return JSONText.encode([JSONText.encode(["error": "the job was deleted"])]) }
                switch job.status {
                case .queued, .running: return nil
                case .completed:
                    return JSONText.encode([
                        JSONText.encode([
                            "success": true, "file_id": job.fileID, "file_path": "\(job.fileID).spz", "file_size": job.fileSize ?? 0,
                            "download_url": "/download/\(job.fileID)", "generation_time": (job.completedAt ?? 0) - (job.startedAt ?? 0),
                        ] as [String: Any])
                    ])
                default: return JSONText.encode([JSONText.encode(["error": job.error ?? job.status.rawValue])])
                }
            } isStopping: { service.isStopping }
        }

        call.post("download_file") { request, _ -> Response in
            do {
                let fileID = try await firstArgument(request, service: service)
                guard fileID.allSatisfy(\.isASCIIDigit), let job = try await service.job(fileID: fileID), job.status == .completed else {
                    return eventID(results.put("[null]"))  // the reference answers None for a file it does not have
                }
                let path = try await ArtifactStore.path(for: .flashWorldSPZ, of: job, service: service)
                let size = Int((try? InputSource(path: path).size) ?? 0)
                // The page fetches this URL from its own origin, so it must be absolute.
                let host = request.head.authority ?? "127.0.0.1"
                let scheme = request.headers.first { $0.name.canonicalName == "x-forwarded-proto" }?.value ?? "http"
                let file: [String: Any] = [
                    "path": "\(fileID).spz", "url": "\(scheme)://\(host)/gradio_api/file/\(fileID).spz", "size": size,
                    "orig_name": "\(fileID).spz", "mime_type": "application/octet-stream", "is_stream": false,
                    "meta": ["_type": "gradio.FileData"],
                ]
                return eventID(results.put(JSONText.encode([file])))
            } catch {
                return HTTPResponses.error(error)
            }
        }

        call.get("download_file/:event") { _, context -> Response in
            guard let data = results.take(context.parameters.get("event") ?? "") else { return HTTPResponses.error(404, "no such event") }
            return complete(data)
        }

        call.post("gradio_delete") { request, _ -> Response in
            do {
                let fileID = try await firstArgument(request, service: service)
                let removed = fileID.allSatisfy(\.isASCIIDigit) ? try await service.delete(fileID: fileID) : []
                return eventID(results.put(JSONText.encode([["success": true, "deleted": !removed.isEmpty] as [String: Any]])))
            } catch {
                return HTTPResponses.error(error)
            }
        }

        call.get("gradio_delete/:event") { _, context -> Response in
            guard let data = results.take(context.parameters.get("event") ?? "") else { return HTTPResponses.error(404, "no such event") }
            return complete(data)
        }

        router.getAndHead("gradio_api/file/:name") { request, context -> Response in
            let name = context.parameters.get("name") ?? ""
            let fileID = String(name.dropLast(4))
            guard name.hasSuffix(".spz"), !fileID.isEmpty, fileID.allSatisfy(\.isASCIIDigit), let job = try await service.job(fileID: fileID) else {
                return HTTPResponses.error(404, "File not found")
            }
            do {
                let path = try await ArtifactStore.path(for: .flashWorldSPZ, of: job, service: service)
                return HTTPResponses.file(path, request: request, contentType: "application/octet-stream", downloadName: name)
            } catch {
                return HTTPResponses.error(error)
            }
        }
    }

    /// `data[0]` of a Gradio call body, as a string.
    static func firstArgument(_ request: Request, service: GenerationService) async throws -> String {
        struct Call: Decodable { var data: [String] }
        let body = try await FlashWorldRoutes.collectBody(request, limit: service.limits.maxBodyBytes)
        guard let call = try? JSONDecoder().decode(Call.self, from: Data(body)), let first = call.data.first else {
            throw ServiceError(400, "a Gradio call body is {\"data\": [\"<argument>\"]} with one string argument")
        }
        return first
    }

    static func eventID(_ id: String) -> Response { HTTPResponses.json(200, ["event_id": id]) }

    static func eventHeaders() -> HTTPFields {
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        return headers
    }

    static func complete(_ data: String) -> Response {
        Response(status: .ok, headers: eventHeaders(), body: .init(byteBuffer: ByteBuffer(string: "event: complete\ndata: \(data)\n\n")))
    }

    /// Heartbeats until `result` has an answer, then `complete` with it (or `error` when the server stops).
    static func stream(_ result: @escaping @Sendable () async throws -> String?, isStopping: @escaping @Sendable () -> Bool) -> Response {
        Response(status: .ok, headers: eventHeaders(), body: ResponseBody { writer in
            var quiet = 0.0
            while true {
                if let data = try await result() {
                    try await writer.write(ByteBuffer(string: "event: complete\ndata: \(data)\n\n"))
                    break
                }
                if isStopping() {
                    try await writer.write(ByteBuffer(string: "event: error\ndata: \"the server is restarting; the job is kept\"\n\n"))
                    break
                }
                if quiet >= 15 {
                    try await writer.write(ByteBuffer(string: "event: heartbeat\ndata: null\n\n"))
                    quiet = 0
                }
                try await Task.sleep(for: .milliseconds(250))
                quiet += 0.25
            }
            try await writer.finish(nil)
        })
    }
}
