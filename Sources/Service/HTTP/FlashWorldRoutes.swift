import FoundationEssentials
import Hummingbird
import NIOCore

/// FlashWorld's HTTP API as its clients call it (`service-and-ui.md` §1.1): `POST /generate` (202 with task and file
/// ids and the queue), `GET /task/{id}`, `GET /download/{file_id}`, `DELETE|POST /delete/{file_id}`, `GET /status`,
/// with the same fields and states. A multipart `POST /generate` is the image-to-3D API's instead.
enum FlashWorldRoutes {
    static func add(to router: Router<DioramaRequestContext>, service: GenerationService, configuration: ServiceConfiguration) {
        router.post("generate") { request, _ -> Response in
            if request.headers[.contentType]?.lowercased().hasPrefix("multipart/form-data") == true {
                return await ImageTo3DRoutes.generateFromForm(request, service: service, configuration: configuration, answer: .ply)
            }
            let body: [UInt8]
            do {
                body = try await collectBody(request, limit: service.limits.maxBodyBytes)
                let (job, queue) = try await service.submit(body)
                return HTTPResponses.json(202, [
                    "success": true, "task_id": job.id, "file_id": job.fileID,
                    "queue": ["queued_count": queue.queuedCount, "running_count": queue.runningCount, "position": queue.position],
                ])
            } catch {
                return HTTPResponses.error(error)
            }
        }

        router.getAndHead("task/:id") { _, context -> Response in
            let id = context.parameters.get("id") ?? ""
            guard let (job, queue) = try await service.jobWithQueue(id: id) else { return HTTPResponses.error(404, "Task not found") }
            // FlashWorld's clients know queued, running, completed and failed, and poll until one of the last two.
            let (status, error): (String, String?) =
                switch job.status {
                case .cancelled: ("failed", job.error ?? "cancelled")
                case .expired: ("failed", "expired: the scene's files were removed after the configured lifetime")
                default: (job.status.rawValue, job.error)
                }
            var fields: [String: Any] = [
                "success": true, "task_id": job.id, "status": status, "created_at": job.createdAt,
                "started_at": job.startedAt ?? JSONNull.null, "completed_at": job.completedAt ?? JSONNull.null,
                "error": error ?? JSONNull.null,
                "queue": ["queued_count": queue.queuedCount, "running_count": queue.runningCount, "position": queue.position],
            ]
            if job.status == .completed {
                fields["file_id"] = job.fileID
                fields["file_path"] = "\(job.fileID).ply"
                fields["file_size"] = job.fileSize ?? 0
                fields["download_url"] = "/download/\(job.fileID)"
                fields["generation_time"] = (job.completedAt ?? 0) - (job.startedAt ?? 0)
            }
            return HTTPResponses.json(200, fields)
        }

        router.getAndHead("download/:fileID") { request, context -> Response in
            let fileID = context.parameters.get("fileID") ?? ""
            // File ids are digits: nothing a client sends can name a path outside the data folder.
            guard !fileID.isEmpty, fileID.allSatisfy(\.isASCIIDigit), let job = try await service.job(fileID: fileID), job.status == .completed else {
                return HTTPResponses.error(404, "File not found")
            }
            return HTTPResponses.file(service.artifactPath(fileID), request: request, contentType: "application/octet-stream", downloadName: "\(fileID).ply")
        }

        let delete: @Sendable (Request, DioramaRequestContext) async throws -> Response = { _, context in
            let fileID = context.parameters.get("fileID") ?? ""
            guard fileID.allSatisfy(\.isASCIIDigit) else { return HTTPResponses.json(404, ["success": false, "error": "File not found"]) }
            let removed = try await service.delete(fileID: fileID)
            return HTTPResponses.json(200, ["success": true, "deleted": removed])
        }
        router.delete("delete/:fileID", use: delete)
        router.post("delete/:fileID", use: delete)

        router.getAndHead("status") { _, _ -> Response in
            let (queued, running, completed) = try await service.status()
            return HTTPResponses.json(200, [
                "success": true,
                "status": [
                    "max_concurrent": service.concurrency, "running_count": running.count, "queued_count": queued.count,
                    "completed_count": completed, "running_tasks": running, "queued_tasks": queued,
                ],
                "timestamp": Double(Int64(Date().timeIntervalSince1970 * 1000)) / 1000,
            ])
        }
    }

    /// The body, refused with a 413 past `limit` bytes.
    static func collectBody(_ request: Request, limit: Int) async throws(ServiceError) -> [UInt8] {
        do {
            return Array(buffer: try await request.body.collect(upTo: limit))
        } catch is NIOTooManyBytesError {
            throw ServiceError(413, "the request body exceeds \(limit) bytes")
        } catch {
            // A broken chunked encoding or a connection cut mid-body: the request itself is wrong, not too large.
            throw ServiceError(400, "the request body could not be read: it ended early or its chunked encoding is malformed")
        }
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
