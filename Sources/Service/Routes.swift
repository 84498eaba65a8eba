import FoundationEssentials
import Hummingbird

/// FlashWorld's HTTP API as its clients call it (`service-and-ui.md` §1.1): `POST /generate` (202 with task and file
/// ids and the queue), `GET /task/{id}`, `GET /download/{file_id}`, `DELETE|POST /delete/{file_id}`, `GET /status`,
/// with the same fields and states, CORS open as the reference's, and every rejection a JSON error that says what to fix.
public enum FlashWorldRoutes {
    public static func router(service: GenerationService) -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: CORSMiddleware(
            allowOrigin: .all, allowHeaders: [.contentType, .authorization], allowMethods: [.get, .put, .post, .delete, .options]))

        router.post("generate") { request, _ -> Response in
            let limit = await service.limits.maxBodyBytes
            let body: ByteBuffer
            do {
                body = try await request.body.collect(upTo: limit)
            } catch {
                return json(413, ["error": "the request body exceeds \(limit) bytes"])
            }
            do {
                let (job, queue) = try await service.submit(Array(buffer: body))
                return json(202, [
                    "success": true, "task_id": job.id, "file_id": job.fileID,
                    "queue": ["queued_count": queue.queuedCount, "running_count": queue.runningCount, "position": queue.position],
                ])
            } catch let error as ServiceError {
                return json(error.status, ["error": error.message])
            } catch {
                return json(500, ["error": "Server error: \(error)"])
            }
        }

        router.get("task/:id") { _, context -> Response in
            let id = context.parameters.get("id") ?? ""
            guard let job = try await service.job(id: id) else { return json(404, ["error": "Task not found"]) }
            let queue = try await service.queueInfo(for: job.id)
            var fields: [String: Any] = [
                "success": true, "task_id": job.id, "status": job.status.rawValue, "created_at": job.createdAt,
                "started_at": job.startedAt ?? NSNullValue.null, "completed_at": job.completedAt ?? NSNullValue.null,
                "error": job.error ?? NSNullValue.null,
                "queue": ["queued_count": queue.queuedCount, "running_count": queue.runningCount, "position": queue.position],
            ]
            if job.status == .completed {
                fields["file_id"] = job.fileID
                fields["file_path"] = "\(job.fileID).ply"
                fields["file_size"] = job.fileSize ?? 0
                fields["download_url"] = "/download/\(job.fileID)"
                fields["generation_time"] = (job.completedAt ?? 0) - (job.startedAt ?? 0)
            }
            return json(200, fields)
        }

        router.get("download/:fileID") { _, context -> Response in
            let fileID = context.parameters.get("fileID") ?? ""
            // File ids are digits: nothing a client sends can name a path outside the data folder.
            guard !fileID.isEmpty, fileID.allSatisfy(\.isNumber), let job = try await service.job(fileID: fileID), job.status == .completed,
                let bytes = try? readFile(await service.artifactPath(fileID))
            else { return json(404, ["error": "File not found"]) }
            var headers = HTTPFields()
            headers[.contentType] = "application/octet-stream"
            headers[.contentDisposition] = "attachment; filename=\"\(fileID).ply\""
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }

        let delete: @Sendable (Request, BasicRequestContext) async throws -> Response = { _, context in
            let fileID = context.parameters.get("fileID") ?? ""
            guard fileID.allSatisfy(\.isNumber) else { return json(404, ["success": false, "error": "File not found"]) }
            let removed = try await service.delete(fileID: fileID)
            return json(200, ["success": true, "deleted": removed])
        }
        router.delete("delete/:fileID", use: delete)
        router.post("delete/:fileID", use: delete)

        router.get("status") { _, _ -> Response in
            let (queued, running, completed) = try await service.status()
            return json(200, [
                "success": true,
                "status": [
                    "max_concurrent": 1, "running_count": running.count, "queued_count": queued.count, "completed_count": completed,
                    "running_tasks": running, "queued_tasks": queued.map(\.id),
                ],
                "timestamp": Double(Int64(Date().timeIntervalSince1970 * 1000)) / 1000,
            ])
        }
        return router
    }

    static func readFile(_ path: String) throws -> [UInt8] {
        try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// A JSON response from plain values (strings, numbers, booleans, null, arrays, dictionaries).
    static func json(_ status: Int, _ object: [String: Any]) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(
            status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(string: JSONText.encode(object))))
    }
}

/// JSON's null in a `[String: Any]`.
enum NSNullValue { case null }

/// Minimal JSON writer for response bodies, keys sorted for stable output.
enum JSONText {
    static func encode(_ value: Any) -> String {
        switch value {
        case let s as String: return quoted(s)
        case let b as Bool: return b ? "true" : "false"
        case let i as Int: return String(i)
        case let d as Double: return d.isFinite ? "\(d)" : "null"
        case let a as [Any]: return "[" + a.map(encode).joined(separator: ",") + "]"
        case let o as [String: Any]: return "{" + o.keys.sorted().map { quoted($0) + ":" + encode(o[$0]!) }.joined(separator: ",") + "}"
        default: return "null"
        }
    }

    static func quoted(_ s: String) -> String {
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default:
                if c.value < 0x20 {
                    let hex = String(c.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(c)
                }
            }
        }
        return out + "\""
    }
}
