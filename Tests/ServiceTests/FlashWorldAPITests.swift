import Foundation
import Hummingbird
import HummingbirdTesting
import SplatCore
import SplatIO
import Testing

import EngineCPU
import FlashWorld

@testable import Service

/// A generator that answers at once with a small cloud, fails on "fail", and on "slow" reports progress for up to
/// ten seconds, stopping early when its task is cancelled.
struct StubGenerator: SceneGenerator {
    func generate(_ request: SceneRequest, seed: UInt64, progress: @escaping @Sendable (JobProgress) -> Void) async throws -> GeneratedScene {
        if request.prompt.contains("fail") { throw ServiceError(500, "the model refused") }
        if request.prompt.contains("slow") {
            for step in 1...400 {
                progress(JobProgress(stage: "step \(step)", step: step, steps: 400, fraction: Double(step) / 400))
                try await Task.sleep(for: .milliseconds(25))
            }
        }
        if request.prompt.contains("wall") { return GeneratedScene(cloud: .syntheticWall(), timings: [("stub", 0.001)]) }
        if request.prompt.contains("room") && request.prompt.contains("closed") {
            return GeneratedScene(cloud: .syntheticShell(radius: 1, center: SIMD3(0.3, 0, -0.2)), timings: [("stub", 0.001)])
        }
        return GeneratedScene(cloud: GaussianCloud.synthetic(count: request.frames * 10, shDegree: 1, extent: 1), timings: [("stub", 0.001)])
    }
}

/// The server as `diorama serve` builds it, over `service`.
func application(_ service: GenerationService, _ configuration: ServiceConfiguration = ServiceConfiguration()) -> some ApplicationProtocol {
    Application(router: DioramaServer.router(service: service, configuration: configuration))
}

/// Polls until the job finishes, for up to `patience` × 25 ms.
func waitUntilFinished(_ service: GenerationService, _ id: String, patience: Int = 400) async throws -> JobRecord? {
    for _ in 0..<patience {
        if let job = try await service.job(id: id), job.status.isFinished { return job }
        try await Task.sleep(for: .milliseconds(25))
    }
    return try await service.job(id: id)
}

func temporaryFolder(_ name: String) -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("diorama-\(name)-\(UUID().uuidString)").path
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

let camera = #"{"quaternion": [1, 0, 0, 0], "position": [0, 0, 0], "fx": 30, "fy": 30, "cx": 32, "cy": 16}"#
func requestBody(prompt: String = "a room", frames: Int = 2, extra: String = "") -> ByteBuffer {
    ByteBuffer(string: #"{"text_prompt": "\#(prompt)", "resolution": [\#(frames), 32, 64], "cameras": [\#(camera)]\#(extra)}"#)
}

/// A string field of a JSON object, or "" (one expression, so `#expect` can show it).
func field(_ object: [String: Any]?, _ key: String) -> String { object?[key] as? String ?? "" }

func json(_ buffer: ByteBuffer) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(buffer: buffer))) as? [String: Any] ?? [:]
}

struct FlashWorldAPITests {
    func makeService(_ folder: String, generator: any SceneGenerator = StubGenerator(), limits: ServiceLimits = ServiceLimits()) throws
        -> GenerationService
    {
        GenerationService(store: try SQLiteJobStore(path: "\(folder)/jobs.sqlite"), generator: generator, dataDirectory: folder, limits: limits)
    }

    @Test func generatePollDownloadDelete() async throws {
        let folder = temporaryFolder("api")
        let service = try makeService(folder)
        try await service.start()
        let app = application(service)
        try await app.test(.router) { client in
            var taskID = "", fileID = ""
            try await client.execute(uri: "/generate", method: .post, body: requestBody()) { response in
                #expect(response.status == .accepted)
                let body = json(response.body)
                #expect(body["success"] as? Bool == true)
                taskID = body["task_id"] as? String ?? ""
                fileID = body["file_id"] as? String ?? ""
                let queue = body["queue"] as? [String: Any]
                #expect(queue?["position"] as? Int == 1 && queue?["queued_count"] as? Int == 1)
                #expect(response.headers[.accessControlAllowOrigin] == "*" || response.headers[.accessControlAllowOrigin] == nil)
            }
            #expect(!taskID.isEmpty && fileID.allSatisfy(\.isNumber))
            var status = ""
            for _ in 0..<100 where status != "completed" {
                try await client.execute(uri: "/task/\(taskID)", method: .get) { response in
                    let body = json(response.body)
                    status = body["status"] as? String ?? ""
                    if status == "completed" {
                        #expect(body["download_url"] as? String == "/download/\(fileID)")
                        #expect((body["file_size"] as? Int ?? 0) > 0 && body["generation_time"] is Double)
                    }
                }
                if status != "completed" { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(status == "completed")
            try await client.execute(uri: "/download/\(fileID)", method: .get) { response in
                #expect(response.status == .ok)
                let bytes = [UInt8](buffer: response.body)
                let (cloud, _) = try SplatFile.read(InputSource(bytes: bytes))
                #expect(cloud.count == 20)
            }
            try await client.execute(uri: "/status", method: .get) { response in
                let status = json(response.body)["status"] as? [String: Any]
                #expect(status?["completed_count"] as? Int == 1 && status?["queued_count"] as? Int == 0)
            }
            try await client.execute(uri: "/delete/\(fileID)", method: .delete) { response in
                #expect(json(response.body)["deleted"] as? [String] == ["\(fileID).ply", "\(fileID).spz"], "the PLY and the SPZ written with the job")
            }
            try await client.execute(uri: "/download/\(fileID)", method: .get) { response in #expect(response.status == .notFound) }
        }
        await service.stop()
    }

    @Test func rejectionsAreFourHundredsThatSayWhatToFix() async throws {
        let folder = temporaryFolder("reject")
        var limits = ServiceLimits()
        limits.maxQueued = 1
        limits.maxBodyBytes = 4096
        let service = try makeService(folder, limits: limits)
        // No workers: jobs stay queued, so the queue can fill.
        let app = application(service)
        try await app.test(.router) { client in
            let cases: [(ByteBuffer, HTTPResponse.Status, String)] = [
                (requestBody(prompt: " "), .badRequest, "No Prompts provided"),
                (ByteBuffer(string: "not json"), .badRequest, "not valid JSON"),
                (requestBody(extra: #", "image_prompt": "/etc/passwd""#), .badRequest, "server paths are not read"),
                (requestBody(extra: #", "image_prompt": "aGVsbG8gd29ybGQ=""#), .badRequest, "Image decode error"),
                (ByteBuffer(string: #"{"text_prompt": "x", "resolution": [2, 30, 64], "cameras": [\#(camera)]}"#), .badRequest, "multiples of 32"),
                (ByteBuffer(string: #"{"text_prompt": "x", "resolution": [500, 32, 64], "cameras": [\#(camera)]}"#), .badRequest, "exceeds the limits"),
                (requestBody(extra: #", "image_index": 9"#), .badRequest, "image_index 9"),
                (ByteBuffer(string: #"{"text_prompt": "x", "resolution": [64, 1024, 1024], "cameras": [\#(camera)]}"#), .badRequest, "pixels in all"),
                (ByteBuffer(string: String(repeating: " ", count: 5000)), .contentTooLarge, "exceeds 4096 bytes"),
            ]
            for (body, status, message) in cases {
                try await client.execute(uri: "/generate", method: .post, body: body) { response in
                    #expect(response.status == status, "\(message)")
                    #expect(field(json(response.body), "error").contains(message), "\(json(response.body))")
                }
            }
            try await client.execute(uri: "/generate", method: .post, body: requestBody()) { #expect($0.status == .accepted) }
            try await client.execute(uri: "/generate", method: .post, body: requestBody()) { response in
                #expect(response.status == .tooManyRequests)
            }
            try await client.execute(uri: "/task/unknown", method: .get) { #expect($0.status == .notFound) }
            try await client.execute(uri: "/download/..%2Fjobs.sqlite", method: .get) { #expect($0.status == .notFound) }
        }
    }

    /// Jobs are stored before the answer: a new process on the same store runs them, and a job that was running when
    /// the process died runs again (its partial file removed), up to the attempt limit.
    @Test func jobsSurviveARestart() async throws {
        let folder = temporaryFolder("durable")
        let first = try makeService(folder)
        let (queued, _) = try await first.submit(Array(buffer: requestBody()))
        // Another job "running" when the process died, with a partial artifact.
        let (interrupted, _) = try await first.submit(Array(buffer: requestBody(prompt: "second")))
        let store = try SQLiteJobStore(path: "\(folder)/jobs.sqlite")
        var running = try #require(try store.job(id: interrupted.id))
        running.status = .running
        running.attempts = 1
        try store.update(running)
        _ = FileManager.default.createFile(atPath: "\(folder)/\(interrupted.fileID).ply", contents: Data([1, 2, 3]))

        let second = try makeService(folder)
        try await second.start()
        for _ in 0..<200 {
            let a = try await second.job(id: queued.id), b = try await second.job(id: interrupted.id)
            if a?.status == .completed && b?.status == .completed { break }
            try await Task.sleep(for: .milliseconds(25))
        }
        #expect(try await second.job(id: queued.id)?.status == .completed)
        let rerun = try #require(try await second.job(id: interrupted.id))
        #expect(rerun.status == .completed && rerun.attempts == 2)
        let (cloud, _) = try SplatFile.read(InputSource(path: "\(folder)/\(interrupted.fileID).ply"))
        #expect(cloud.count == 20, "the partial file was replaced by a complete one")
        await second.stop()

        // Past the attempt limit, an interrupted job fails instead of looping.
        var stuck = try #require(try store.job(id: queued.id))
        stuck.status = .running
        stuck.attempts = 3
        try store.update(stuck)
        let third = try makeService(folder)
        try await third.start()
        #expect(try await third.job(id: queued.id)?.status == .failed)
        await third.stop()
    }

    @Test func failedJobsReportTheirError() async throws {
        let folder = temporaryFolder("failing")
        let service = try makeService(folder)
        try await service.start()
        let (job, _) = try await service.submit(Array(buffer: requestBody(prompt: "please fail")))
        for _ in 0..<100 {
            if try await service.job(id: job.id)?.status == .failed { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        let failed = try #require(try await service.job(id: job.id))
        #expect(failed.status == .failed && (failed.error ?? "").contains("the model refused"))
        await service.stop()
    }
}

struct TinyModelServiceTests {
    @Test func theTinyModelServesARealScene() async throws {
        let folder = temporaryFolder("tiny")
        let service = GenerationService(
            store: try SQLiteJobStore(path: "\(folder)/jobs.sqlite"), generator: FlashWorldSceneGenerator(model: try FlashWorldModel.tiny(on: CPUBackend.shared), backend: CPUBackend.shared),
            dataDirectory: folder)
        try await service.start()
        let (job, _) = try await service.submit(Array(buffer: requestBody()))
        for _ in 0..<400 {
            if let status = try await service.job(id: job.id)?.status, status != .queued && status != .running { break }
            try await Task.sleep(for: .milliseconds(25))
        }
        #expect(try await service.job(id: job.id)?.status == .completed)
        let (cloud, _) = try SplatFile.read(InputSource(path: "\(folder)/\(job.fileID).ply"))
        #expect(cloud.count == 2 * 2 * 16 * 32 && cloud.frame == .rub)
        await service.stop()
    }
}
