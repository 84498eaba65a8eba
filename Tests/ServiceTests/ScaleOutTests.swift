import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Several `diorama serve` processes of the real binary on one PostgreSQL store and one shared data folder, as
/// separate hosts would run them: API nodes and workers, killed, paused and cut off from the database.
@Suite(.serialized, .enabled(if: ThrowawayPostgres.available, "PostgreSQL is not installed here (apt-get install postgresql)"))
struct ScaleOutTests {
    /// A cluster, a shared folder, and nodes of each role on it.
    final class Deployment {
        let cluster: ThrowawayPostgres
        let folder = temporaryFolder("scale")
        var nodes: [ServerProcess] = []

        init() throws { cluster = try ThrowawayPostgres() }

        func node(_ role: String, lease: Int = 30, _ extra: [String] = []) async throws -> ServerProcess {
            let arguments = ["--store", cluster.url, "--role", role, "--lease-seconds", String(lease), "--no-warm-up", "--max-queued", "1000"] + extra
            // Each node has a data folder of its own, as on its own host; the job files are in the one they share.
            let node = ServerProcess(
                dataDirectory: "\(folder)/\(role)-\(nodes.count)", extraArguments: arguments + ["--artifacts", folder + "/data"],
                logPath: "\(folder)/\(role)-\(nodes.count).log")
            nodes.append(node)
            try await node.start()
            return node
        }

        /// Polls `/v1/jobs/ID` on `node` until `done` holds (or about `seconds` pass); the last answer.
        func poll(_ node: ServerProcess, _ id: String, seconds: Double, until done: ([String: Any]) -> Bool) async throws -> [String: Any] {
            var job: [String: Any] = [:]
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                job = try node.json("GET", "/v1/jobs/\(id)")
                if done(job) { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            return job
        }

        /// How many jobs `node` runs now, from its /metrics.
        func runningHere(_ node: ServerProcess) throws -> Int? {
            let text = String(decoding: try node.request("GET", "/metrics").1, as: UTF8.self)
            let line = text.split(separator: "\n").first { $0.hasPrefix("diorama_jobs_running_here ") }
            return line.flatMap { Double($0.split(separator: " ").last ?? "") }.map { Int($0) }
        }

        /// Waits up to `seconds` for `node` to run nothing; whether it does.
        func idle(_ node: ServerProcess, seconds: Double) async throws -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if try runningHere(node) == 0 { return true }
                try await Task.sleep(for: .milliseconds(100))
            }
            return false
        }

        /// The data folder's names other than finished artifacts: temporaries and partial files.
        func leftovers() throws -> [String] {
            try FileManager.default.contentsOfDirectory(atPath: folder + "/data").filter { $0.hasPrefix(".") || $0.contains("partial") }
        }

        deinit { for node in nodes { node.kill(SIGKILL) } }
    }

    static let sceneBody = #"{"text_prompt": "a courtyard", "resolution": [1, 32, 32], "seed": 5}"#
    /// A job long enough to be caught running on a 2-core machine.
    static let slowBody = #"{"text_prompt": "a harbour", "resolution": [2, 64, 96], "seed": 3}"#

    /// Jobs submitted through two API nodes take exact queue positions, and four workers then run every one exactly
    /// once: each completes with one attempt, and each artifact exists once.
    @Test func manyNodesRunEveryJobOnce() async throws {
        let deployment = try Deployment()
        let api = [try await deployment.node("api"), try await deployment.node("api")]
        var ids: [String] = []
        for i in 0..<200 {
            let answer = try api[i % 2].json("POST", "/v1/jobs", body: Self.sceneBody)
            ids.append(answer["id"] as? String ?? "")
            #expect(answer["queue_position"] as? Int == i + 1, "job \(i)")
        }
        #expect(Set(ids).count == 200 && !ids.contains(""))
        let listed = try api[1].json("GET", "/v1/jobs/\(ids[137])")
        #expect(listed["queue_position"] as? Int == 138)
        for _ in 0..<4 { _ = try await deployment.node("worker") }
        var finished: [[String: Any]] = []
        let deadline = Date().addingTimeInterval(240)
        for id in ids {
            finished.append(try await deployment.poll(api[0], id, seconds: deadline.timeIntervalSinceNow) { ($0["status"] as? String) == "completed" })
        }
        #expect(finished.allSatisfy { $0["status"] as? String == "completed" && $0["attempts"] as? Int == 1 })
        let names = try FileManager.default.contentsOfDirectory(atPath: deployment.folder + "/data")
        let plies = names.filter { $0.hasSuffix(".ply") }
        #expect(plies.count == 200 && Set(plies) == Set(finished.map { "\($0["file_id"] as? String ?? "").ply" }))
        #expect(try deployment.leftovers().isEmpty)
        #expect(finished.allSatisfy { $0["worker"] is NSNull }, "a finished job names no worker")
        let (code, ply) = try api[1].request("GET", "/v1/jobs/\(ids[199])/artifacts/scene.ply")
        #expect(code == 200 && ply.starts(with: Array("ply\n".utf8)))
        // A conversion is made by the API node asked, into the shared folder, where the other node finds it.
        let (made, splat) = try api[0].request("GET", "/v1/jobs/\(ids[5])/artifacts/scene.splat?wait=1")
        #expect(made == 200 && splat.count == 32 * (finished[5]["gaussians"] as? Int ?? 0) && !splat.isEmpty)
        let (found, same) = try api[1].request("GET", "/v1/jobs/\(ids[5])/artifacts/scene.splat")
        #expect(found == 200 && same == splat)
    }

    /// A worker killed mid-job loses it when its lease lapses: another worker runs it again (attempt 2) and no partial
    /// file remains. A worker paused past its lease cannot complete the job a second time when it resumes.
    @Test func killedAndPausedWorkersLoseTheirJobs() async throws {
        let deployment = try Deployment()
        let api = try await deployment.node("api", lease: 3)
        let workers = [try await deployment.node("worker", lease: 3), try await deployment.node("worker", lease: 3)]
        func runner(of job: [String: Any]) -> ServerProcess? {
            let pid = (job["worker"] as? String)?.split(separator: ":").dropFirst().first.flatMap { Int32($0) }
            return workers.first { $0.pid == pid }
        }
        // Killed.
        let killedID = try api.json("POST", "/v1/jobs", body: Self.slowBody)["id"] as? String ?? ""
        let running = try await deployment.poll(api, killedID, seconds: 60) { ($0["status"] as? String) == "running" }
        let victim = try #require(runner(of: running), "\(running)")
        victim.kill(SIGKILL)
        let redone = try await deployment.poll(api, killedID, seconds: 120) { ($0["status"] as? String) == "completed" }
        #expect(redone["status"] as? String == "completed" && redone["attempts"] as? Int == 2, "\(redone)")
        #expect(try deployment.leftovers().isEmpty)
        try await victim.start()

        // Paused past the lease, then resumed.
        let pausedID = try api.json("POST", "/v1/jobs", body: Self.slowBody)["id"] as? String ?? ""
        let claimed = try await deployment.poll(api, pausedID, seconds: 60) { ($0["status"] as? String) == "running" }
        let sleeper = try #require(runner(of: claimed), "\(claimed)")
        sleeper.pause()
        let finished = try await deployment.poll(api, pausedID, seconds: 120) { ($0["status"] as? String) == "completed" }
        #expect(finished["attempts"] as? Int == 2, "\(finished)")
        let artifact = "\(deployment.folder)/data/\(finished["file_id"] as? String ?? "").ply"
        let before = try FileManager.default.attributesOfItem(atPath: artifact)[.modificationDate] as? Date
        sleeper.resume()
        // The resumed worker finishes its run (or learns at its next heartbeat that the claim is gone), then idles.
        #expect(try await deployment.idle(sleeper, seconds: 60))
        let after = try api.json("GET", "/v1/jobs/\(pausedID)")
        #expect(after["attempts"] as? Int == 2 && after["completed_at"] as? Double == finished["completed_at"] as? Double)
        #expect(try FileManager.default.attributesOfItem(atPath: artifact)[.modificationDate] as? Date == before)
        #expect(try deployment.leftovers().isEmpty)
        // A worker answers operators only.
        #expect(try sleeper.request("GET", "/v1/jobs").0 == 404)
    }

    /// Cancel and delete on an API node stop jobs running under a worker; the database restarting meanwhile gives
    /// 503 with Retry-After, not a crash, and every node carries on once it is back.
    @Test func cancelsCrossNodesAndADatabaseRestartIsRidden() async throws {
        let deployment = try Deployment()
        let api = try await deployment.node("api", lease: 3, ["--video-model", "tiny-video"])
        let worker = try await deployment.node("worker", lease: 3, ["--video-model", "tiny-video"])
        let cancelled = try api.json("POST", "/v1/jobs", body: Self.slowBody)["id"] as? String ?? ""
        // The worker's progress reaches the API node (announced through the store), as its event streams show it.
        let progressing = try await deployment.poll(api, cancelled, seconds: 60) { ($0["progress"] as? [String: Any])?["fraction"] != nil }
        #expect(progressing["status"] as? String == "running" && progressing["progress"] is [String: Any], "\(progressing)")
        #expect(try api.json("POST", "/v1/jobs/\(cancelled)/cancel")["status"] as? String == "cancelled")
        #expect(try await deployment.idle(worker, seconds: 15), "the worker stopped the cancelled job")
        let deleted = try api.json("POST", "/v1/jobs", body: Self.slowBody)["id"] as? String ?? ""
        _ = try await deployment.poll(api, deleted, seconds: 60) { ($0["status"] as? String) == "running" }
        #expect(try api.request("DELETE", "/v1/jobs/\(deleted)").0 == 204)
        #expect(try api.request("GET", "/v1/jobs/\(deleted)").0 == 404)

        // The database goes down while one job runs and another waits.
        let running = try api.json("POST", "/v1/jobs", body: Self.slowBody)["id"] as? String ?? ""
        let queued = try api.json("POST", "/v1/jobs", body: Self.sceneBody)["id"] as? String ?? ""
        _ = try await deployment.poll(api, running, seconds: 60) { ($0["status"] as? String) == "running" }
        try deployment.cluster.stop()
        let (code, body) = try api.request("POST", "/v1/jobs", body: Array(Self.sceneBody.utf8))
        #expect(code == 503, "\(String(decoding: body, as: UTF8.self))")
        #expect(try api.request("GET", "/health").0 == 503)
        try await Task.sleep(for: .seconds(2))
        try deployment.cluster.start()
        for id in [running, queued] {
            let done = try await deployment.poll(api, id, seconds: 90) { ($0["status"] as? String) == "completed" }
            #expect(done["status"] as? String == "completed", "\(done)")
        }
        let health = (try api.request("GET", "/health").0, try worker.request("GET", "/health").0)
        #expect(health == (200, 200))
        #expect(try deployment.leftovers().isEmpty)
        // A video job goes through the API node, which knows the model's defaults only, and runs on the worker.
        let video = try api.json("POST", "/v1/videos", body: #"{"prompt": "waves", "frames": 5, "steps": 2}"#)["id"] as? String ?? ""
        let filmed = try await deployment.poll(api, video, seconds: 90) { ($0["status"] as? String) == "completed" }
        #expect(filmed["status"] as? String == "completed" && filmed["kind"] as? String == "video", "\(filmed)")
        let (served, mp4) = try api.request("GET", "/v1/jobs/\(video)/artifacts/video.mp4")
        #expect(served == 200 && mp4.count > 100)
    }
}
