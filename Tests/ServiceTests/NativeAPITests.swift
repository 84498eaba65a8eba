import Foundation
import Hummingbird
import HummingbirdTesting
import SplatCore
import MediaIO
import SplatIO
import Testing

@testable import Service

struct NativeAPITests {
    func makeService(_ folder: String, lifetime: Double? = nil) throws -> GenerationService {
        GenerationService(
            store: try SQLiteJobStore(path: "\(folder)/jobs.sqlite"), generator: StubGenerator(), dataDirectory: folder, artifactLifetime: lifetime,
            meshResolution: 32)
    }

    @Test func jobsAreCreatedListedInspectedAndServedAsEveryFormat() async throws {
        let folder = temporaryFolder("v1")
        let service = try makeService(folder)
        try await service.start()
        try await application(service).test(.router) { client in
            var id = ""
            try await client.execute(uri: "/v1/jobs", method: .post, body: requestBody(extra: #", "seed": 7"#)) { response in
                #expect(response.status == .accepted)
                let job = json(response.body)
                id = job["id"] as? String ?? ""
                #expect(response.headers[.location] == "/v1/jobs/\(id)")
                #expect(job["seed"] as? Int == 7 && job["frames"] as? Int == 2 && job["width"] as? Int == 64 && job["height"] as? Int == 32)
                #expect(job["prompt"] as? String == "a room" && job["artifacts"] is NSNull)
            }
            let finished = try #require(try await waitUntilFinished(service, id))
            #expect(finished.status == .completed && finished.gaussians == 20)
            try await client.execute(uri: "/v1/jobs/\(id)", method: .get) { response in
                let job = json(response.body)
                #expect(job["status"] as? String == "completed" && job["gaussians"] as? Int == 20 && job["queue_position"] as? Int == 0)
                #expect((job["progress"] as? [String: Any])?["fraction"] as? Double == 1)
                #expect((job["timings"] as? [[String: Any]])?.first?["stage"] as? String == "stub")
                let artifacts = job["artifacts"] as? [String: String]
                #expect(artifacts?["spz"] == "/v1/jobs/\(id)/artifacts/scene.spz" && artifacts?["glb"] == "/v1/jobs/\(id)/artifacts/scene.glb")
                #expect(artifacts?.count == 7 && artifacts?["collider"] == "/v1/jobs/\(id)/artifacts/collider.glb")
                #expect(artifacts?["panorama"] == "/v1/jobs/\(id)/artifacts/panorama.png" && job["extends"] is NSNull)
            }
            try await client.execute(uri: "/v1/jobs?status=completed&limit=5", method: .get) { response in
                #expect((json(response.body)["jobs"] as? [[String: Any]])?.map { $0["id"] as? String } == [id])
            }
            for (uri, status) in [("/v1/jobs?status=bogus", HTTPResponse.Status.badRequest), ("/v1/jobs?limit=0", .badRequest), ("/v1/jobs/nope", .notFound)] {
                try await client.execute(uri: uri, method: .get) { response in
                    #expect(response.status == status, "\(uri)")
                    #expect(!(json(response.body)["error"] as? String ?? "").isEmpty)
                }
            }
            // PLY and SPZ exist with the job; .splat and the MP4 are made on first request: 202 with Retry-After, or
            // the file for a client that waits.
            try await client.execute(uri: "/v1/jobs/\(id)/artifacts/scene.splat", method: .get) { response in
                #expect(response.status == .accepted && response.headers[.retryAfter] == "2")
            }
            // Every splat format reads back as the same 20 Gaussians.
            for name in ["scene.ply", "scene.spz", "scene.splat?wait=1"] {
                try await client.execute(uri: "/v1/jobs/\(id)/artifacts/\(name)", method: .get) { response in
                    #expect(response.status == .ok && response.headers[.eTag] != nil && response.headers[.acceptRanges] == "bytes")
                    let format = SplatFormat(path: String(name.prefix { $0 != "?" }))!
                    let (cloud, _) = try SplatFile.read(InputSource(bytes: [UInt8](buffer: response.body)), format: format)
                    #expect(cloud.count == 20, "\(name)")
                }
            }
            try await client.execute(uri: "/v1/jobs/\(id)/artifacts/scene.obj", method: .get) { #expect($0.status == .notFound) }
            // Twenty scattered Gaussians have no surface to mesh: said, not a broken file.
            try await client.execute(uri: "/v1/jobs/\(id)/artifacts/scene.glb?wait=1", method: .get) { response in
                #expect(response.status == .unprocessableContent && (json(response.body)["error"] as? String ?? "").contains("surface"), "\(response.status) \(String(buffer: response.body).prefix(200))")
            }
            // The preview video: a swing around the content through ffmpeg, an MP4 (an ftyp box first).
            try await client.execute(uri: "/v1/jobs/\(id)/artifacts/orbit.mp4?wait=1", method: .get) { response in
                let bytes = [UInt8](buffer: response.body)
                #expect(response.status == .ok && response.headers[.contentType] == "video/mp4")
                #expect(bytes.count > 8 && Array(bytes[4..<8]) == Array("ftyp".utf8))
            }
        }
        await service.stop()
    }

    /// A scene with a surface is offered as a mesh, a collider and a panorama: each made on first request (202, then
    /// the file).
    @Test func scenesAreServedAsMeshes() async throws {
        let folder = temporaryFolder("mesh")
        let service = GenerationService(
            store: try SQLiteJobStore(path: "\(folder)/jobs.sqlite"), generator: StubGenerator(), dataDirectory: folder, meshResolution: 32)
        try await service.start()
        try await application(service).test(.router) { client in
            var id = ""
            try await client.execute(uri: "/v1/jobs", method: .post, body: requestBody(prompt: "a wall")) { id = json($0.body)["id"] as? String ?? "" }
            #expect(try await waitUntilFinished(service, id)?.status == .completed)
            try await client.execute(uri: "/v1/jobs/\(id)/artifacts/scene.glb", method: .get) { response in
                #expect(response.status == .accepted && response.headers[.retryAfter] != nil)
            }
            try await client.execute(uri: "/v1/jobs/\(id)/artifacts/scene.glb?wait=1", method: .get) { response in
                let bytes = [UInt8](buffer: response.body)
                #expect(response.status == .ok && response.headers[.contentType] == "model/gltf-binary")
                #expect(Array(bytes.prefix(4)) == Array("glTF".utf8) && bytes.count > 1000)
            }
            // A collider closes what the views saw; a closed room has an inside to close.
            var room = ""
            try await client.execute(uri: "/v1/jobs", method: .post, body: requestBody(prompt: "a closed room")) { room = json($0.body)["id"] as? String ?? "" }
            #expect(try await waitUntilFinished(service, room)?.status == .completed)
            try await client.execute(uri: "/v1/jobs/\(room)/artifacts/collider.glb?wait=1", method: .get) { response in
                let bytes = [UInt8](buffer: response.body)
                #expect(response.status == .ok && response.headers[.contentType] == "model/gltf-binary", "\(String(buffer: response.body).prefix(300))")
                #expect(Array(bytes.prefix(4)) == Array("glTF".utf8))
            }
            try await client.execute(uri: "/v1/jobs/\(id)/artifacts/panorama.png?wait=1", method: .get) { response in
                let bytes = [UInt8](buffer: response.body)
                #expect(response.status == .ok && response.headers[.contentType] == "image/png")
                let image = try ImageDecoder.decode(bytes, name: "panorama.png")
                #expect(image.width == 2048 && image.height == 1024)
                // The wall stands in front of where the scene was made: the panorama's centre sees it.
                #expect(image.pixels[3 * (512 * 2048 + 1024)..<3 * (512 * 2048 + 1024) + 3].contains { $0 > 0 })
            }
            // The base a growing job starts from is never served.
            try await client.execute(uri: "/v1/jobs/\(id)/artifacts/base.ply", method: .get) { #expect($0.status == .notFound) }
        }
        await service.stop()
    }

    @Test func artifactsHonourRangeAndETag() async throws {
        let folder = temporaryFolder("ranges")
        let service = try makeService(folder)
        try await service.start()
        try await application(service).test(.router) { client in
            var id = ""
            try await client.execute(uri: "/v1/jobs", method: .post, body: requestBody()) { id = json($0.body)["id"] as? String ?? "" }
            _ = try await waitUntilFinished(service, id)
            let uri = "/v1/jobs/\(id)/artifacts/scene.ply"
            var whole: [UInt8] = [], etag = ""
            try await client.execute(uri: uri, method: .get) { response in
                whole = [UInt8](buffer: response.body)
                etag = response.headers[.eTag] ?? ""
                #expect(response.headers[.contentLength] == String(whole.count))
            }
            try await client.execute(uri: uri, method: .get, headers: [.range: "bytes=10-19"]) { response in
                #expect(response.status == .partialContent)
                #expect(response.headers[.contentRange] == "bytes 10-19/\(whole.count)")
                #expect([UInt8](buffer: response.body) == Array(whole[10..<20]))
            }
            try await client.execute(uri: uri, method: .get, headers: [.range: "bytes=-5"]) { response in
                #expect([UInt8](buffer: response.body) == Array(whole.suffix(5)))
            }
            try await client.execute(uri: uri, method: .get, headers: [.range: "bytes=\(whole.count)-"]) { response in
                #expect(response.status == .rangeNotSatisfiable && response.headers[.contentRange] == "bytes */\(whole.count)")
            }
            try await client.execute(uri: uri, method: .get, headers: [.ifNoneMatch: etag]) { #expect($0.status == .notModified) }
            // Several ranges, or another unit, get the whole file (RFC 9110 lets a server ignore them).
            for range in ["bytes=0-1,4-5", "items=0-3"] {
                try await client.execute(uri: uri, method: .get, headers: [.range: range]) { response in
                    #expect(response.status == .ok && response.body.readableBytes == whole.count, "\(range)")
                }
            }
            try await client.execute(uri: uri, method: .get, headers: [.ifNoneMatch: "W/" + etag]) { #expect($0.status == .notModified) }
            // A stale If-Range gets the whole file, not a piece of a different one.
            try await client.execute(uri: uri, method: .get, headers: [.range: "bytes=0-3", .ifRange: "\"stale\""]) { response in
                #expect(response.status == .ok && response.body.readableBytes == whole.count)
            }
        }
        await service.stop()
    }

    @Test func cancellingWorksQueuedAndRunning() async throws {
        let folder = temporaryFolder("cancel")
        let service = try makeService(folder)
        try await service.start()
        try await application(service).test(.router) { client in
            var running = "", queued = ""
            try await client.execute(uri: "/v1/jobs", method: .post, body: requestBody(prompt: "slow one")) { running = json($0.body)["id"] as? String ?? "" }
            try await client.execute(uri: "/v1/jobs", method: .post, body: requestBody(prompt: "slow two")) { response in
                queued = json(response.body)["id"] as? String ?? ""
            }
            // The first is running with live progress; the second waits first in line.
            var progress: [String: Any]?
            for _ in 0..<100 where progress == nil {
                try await client.execute(uri: "/v1/jobs/\(running)", method: .get) { progress = json($0.body)["progress"] as? [String: Any] }
                try await Task.sleep(for: .milliseconds(20))
            }
            let stage = progress?["stage"] as? String ?? ""
            #expect(stage.hasPrefix("step"))
            try await client.execute(uri: "/v1/jobs/\(queued)", method: .get) { #expect(json($0.body)["queue_position"] as? Int == 1) }
            try await client.execute(uri: "/v1/jobs/\(queued)/cancel", method: .post) { #expect(json($0.body)["status"] as? String == "cancelled") }
            try await client.execute(uri: "/v1/jobs/\(running)/cancel", method: .post) { #expect(json($0.body)["status"] as? String == "cancelled") }
            try await Task.sleep(for: .milliseconds(200))
            let stopped = try #require(try await service.job(id: running))
            #expect(stopped.status == .cancelled)
            #expect(access(service.artifactPath(stopped.fileID), F_OK) != 0, "a cancelled job leaves no file")
            try await client.execute(uri: "/v1/jobs/\(running)/cancel", method: .post) { #expect($0.status == .conflict) }
            try await client.execute(uri: "/v1/jobs/\(running)", method: .delete) { #expect($0.status == .noContent) }
            try await client.execute(uri: "/v1/jobs/\(running)", method: .get) { #expect($0.status == .notFound) }
        }
        await service.stop()
    }

    /// A graceful stop puts the running job back in the queue without counting the attempt; FlashWorld's delete of a
    /// running job cancels it; FlashWorld's /task shows a cancelled job as failed, the states its clients know.
    @Test func stopsAndDeletesKeepJobsConsistent() async throws {
        let folder = temporaryFolder("graceful")
        let service = try makeService(folder)
        try await service.start()
        let (job, _) = try await service.submit(Array(buffer: requestBody(prompt: "slow")))
        for _ in 0..<100 where try await service.job(id: job.id)?.status != .running { try await Task.sleep(for: .milliseconds(10)) }
        await service.requeueRunningJobs()
        let requeued = try #require(try await service.job(id: job.id))
        #expect(requeued.status == .queued && requeued.attempts == 0)
        await service.stop()

        let second = try makeService(folder)
        try await second.start()
        for _ in 0..<100 where try await second.job(id: job.id)?.status != .running { try await Task.sleep(for: .milliseconds(10)) }
        #expect(try await second.job(id: job.id)?.attempts == 1)
        _ = try await second.delete(fileID: job.fileID)
        try await Task.sleep(for: .milliseconds(150))
        let after = try await second.job(id: job.id)
        #expect(after?.status == .cancelled, "\(String(describing: after))")
        #expect(access(second.artifactPath(job.fileID), F_OK) != 0)
        try await application(second).test(.router) { client in
            try await client.execute(uri: "/task/\(job.id)", method: .get) { response in
                let body = json(response.body)
                #expect(body["status"] as? String == "failed" && body["error"] as? String == "cancelled")
            }
        }
        await second.stop()
    }

    @Test func progressStreamsAsServerSentEvents() async throws {
        let folder = temporaryFolder("sse")
        let service = try makeService(folder)
        try await service.start()
        try await application(service).test(.live) { client in
            var id = ""
            try await client.execute(uri: "/v1/jobs", method: .post, body: requestBody(prompt: "slow but short")) { id = json($0.body)["id"] as? String ?? "" }
            let jobID = id
            Task {
                try await Task.sleep(for: .milliseconds(600))
                _ = try await service.cancel(id: jobID)
            }
            try await client.execute(uri: "/v1/jobs/\(id)/events", method: .get) { response in
                #expect(response.headers[.contentType] == "text/event-stream")
                let text = String(buffer: response.body)
                let events = text.components(separatedBy: "\n\n").filter { $0.hasPrefix("event:") }
                #expect(events.count >= 2, "\(text.prefix(300))")
                #expect(events.first?.hasPrefix("event: job\ndata: {") == true)
                #expect(events.last?.hasPrefix("event: done\ndata: {") == true && events.last?.contains(#""status":"cancelled""#) == true)
            }
        }
        await service.stop()
    }

    @Test func artifactsExpire() async throws {
        let folder = temporaryFolder("expiry")
        let service = try makeService(folder, lifetime: 0.2)
        try await service.start()
        let (job, _) = try await service.submit(Array(buffer: requestBody()))
        _ = try await waitUntilFinished(service, job.id)
        #expect(access(service.artifactPath(job.fileID), F_OK) == 0)
        for _ in 0..<100 where try await service.job(id: job.id)?.status != .expired { try await Task.sleep(for: .milliseconds(20)) }
        #expect(try await service.job(id: job.id)?.status == .expired)
        #expect(access(service.artifactPath(job.fileID), F_OK) != 0)
        try await application(service).test(.router) { client in
            try await client.execute(uri: "/v1/jobs/\(job.id)/artifacts/scene.ply", method: .get) { #expect($0.status == .gone) }
            try await client.execute(uri: "/download/\(job.fileID)", method: .get) { #expect($0.status == .notFound) }
        }
        await service.stop()
    }

    @Test func documentsAndMetrics() async throws {
        let folder = temporaryFolder("docs")
        let service = try makeService(folder)
        try await service.start()
        try await application(service).test(.router) { client in
            try await client.execute(uri: "/openapi.json", method: .get) { response in
                let document = json(response.body)
                #expect(document["openapi"] as? String == "3.1.0")
                let paths = (document["paths"] as? [String: Any])?.keys.sorted() ?? []
                for path in [
                    "/generate", "/task/{task_id}", "/generate-spz", "/generate_from_base64", "/health", "/v1/jobs", "/v1/jobs/{id}/events", "/v1/jobs/{id}/extend",
                    "/metrics",
                ] {
                    #expect(paths.contains(path), "\(path) is documented")
                }
            }
            try await client.execute(uri: "/v1/jobs", method: .post, body: requestBody()) { _ in }
            try await client.execute(uri: "/metrics", method: .get) { response in
                let text = String(buffer: response.body)
                #expect(response.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
                #expect(text.contains(#"diorama_job_events_total{event="submitted"} 1"#))
                #expect(text.contains("diorama_ready 1.0") && text.contains(#"diorama_http_responses_total{code="202"} 1"#))
            }
            try await client.execute(uri: "/v1/info", method: .get) { response in
                let info = json(response.body)
                #expect(info["auth_required"] as? Bool == false && (info["limits"] as? [String: Any])?["max_frames"] as? Int == 64)
            }
            try await client.execute(uri: "/nowhere", method: .get) { response in
                #expect(response.status == .notFound && field(json(response.body), "error").contains("no such endpoint"))
            }
        }
        await service.stop()
    }
}
