import EngineCPU
import Foundation
import Hummingbird
import HummingbirdTesting
import MediaIO
import Testing
import Video

@testable import Service

/// Video jobs through `/v1/videos` with the built-in tiny-video model on the CPU: accepted, run, served as an MP4 with
/// Range, and refused with a 4xx naming the problem.
struct VideoJobTests {
    func makeService(_ folder: String, video: Bool = true) async throws -> GenerationService {
        let service = GenerationService(store: try SQLiteJobStore(path: "\(folder)/jobs.sqlite"), generator: StubGenerator(), dataDirectory: folder)
        if video {
            let model = try WanVideoModel.tiny(on: CPUBackend.shared).prepared(for: CPUBackend.shared, precision: .float32)
            await service.installVideo(WanVideoGenerator(model: model, backend: CPUBackend.shared))
        }
        try await service.start()
        return service
    }

    @Test(.enabled(if: VideoEncoder.locateFFmpeg() != nil, "needs the ffmpeg program"))
    func aVideoJobRunsAndServesItsMP4() async throws {
        let folder = temporaryFolder("video-jobs")
        let service = try await makeService(folder)
        try await application(service).test(.router) { client in
            var id = ""
            try await client.execute(
                uri: "/v1/videos", method: .post, body: ByteBuffer(string: #"{"prompt": "waves on a beach", "steps": 2, "seed": 9}"#)
            ) { response in
                #expect(response.status == .accepted)
                let job = json(response.body)
                id = job["id"] as? String ?? ""
                #expect(job["kind"] as? String == "video" && job["frames"] as? Int == 9 && job["width"] as? Int == 64 && job["seed"] as? Int == 9)
            }
            let finished = try #require(try await waitUntilFinished(service, id))
            #expect(finished.status == .completed && finished.gaussians == nil, "\(finished.error ?? "")")
            try await client.execute(uri: "/v1/jobs/\(id)", method: .get) { response in
                let job = json(response.body)
                #expect((job["artifacts"] as? [String: String]) == ["mp4": "/v1/jobs/\(id)/artifacts/video.mp4"])
                #expect((job["progress"] as? [String: Any])?["steps"] as? Int == 2)
                #expect((job["timings"] as? [[String: Any]])?.contains { $0["stage"] as? String == "decoder" } == true)
            }
            try await client.execute(uri: "/v1/jobs/\(id)/artifacts/video.mp4", method: .get) { response in
                let bytes = [UInt8](buffer: response.body)
                #expect(response.status == .ok && response.headers[.contentType] == "video/mp4")
                #expect(bytes.count > 8 && Array(bytes[4..<8]) == Array("ftyp".utf8))
            }
            try await client.execute(uri: "/v1/jobs/\(id)/artifacts/video.mp4", method: .get, headers: [.range: "bytes=0-9"]) { response in
                #expect(response.status == .partialContent && response.body.readableBytes == 10)
            }
            // A video job has no scene files, and says so.
            try await client.execute(uri: "/v1/jobs/\(id)/artifacts/scene.ply", method: .get) { response in
                #expect(response.status == .notFound && (json(response.body)["error"] as? String ?? "").contains("video.mp4"))
            }
        }
        await service.stop()
    }

    @Test func badVideoRequestsAreRefusedNamingTheProblem() async throws {
        let folder = temporaryFolder("video-refusals")
        let service = try await makeService(folder)
        let cases: [(String, String)] = [
            (#"{"prompt": "x", "bogus": 1, "other": 2}"#, "unknown fields bogus, other"),
            (#"{"prompt": "x", "frames": 8}"#, "frames must be 4k + 1"),
            (#"{"prompt": "x", "width": 40}"#, "multiples of 32"),
            (#"{"prompt": "x", "steps": "four"}"#, "steps must be a number"),
            (#"{"prompt": "x", "sampler": "ddim"}"#, "sampler must be unipc or euler"),
            (#"{"prompt": "x", "cfg_skip": 2}"#, "cfg_skip must be between 0 and 1"),
            (#"{"prompt": "  "}"#, "give a prompt, an image, or both"),
            (#"{"prompt": "x", "image": "/etc/passwd"}"#, "file paths are not read"),
            (#"[1, 2]"#, "JSON object"),
            (#"{"prompt": "x", "kind": "scene"}"#, "kind must be"),
        ]
        try await application(service).test(.router) { client in
            for (body, message) in cases {
                try await client.execute(uri: "/v1/videos", method: .post, body: ByteBuffer(string: body)) { response in
                    #expect(response.status == .badRequest, "\(body)")
                    #expect((json(response.body)["error"] as? String ?? "").contains(message), "\(body): \(json(response.body))")
                }
            }
        }
        #expect(try await service.status().queued.isEmpty)
        await service.stop()
    }

    @Test func withoutAVideoModelVideoJobsAre503() async throws {
        let folder = temporaryFolder("video-none")
        let service = try await makeService(folder, video: false)
        try await application(service).test(.router) { client in
            try await client.execute(uri: "/v1/videos", method: .post, body: ByteBuffer(string: #"{"prompt": "x"}"#)) { response in
                #expect(response.status == .serviceUnavailable && (json(response.body)["error"] as? String ?? "").contains("--video-model"))
            }
            try await client.execute(uri: "/v1/info", method: .get) { response in
                #expect(json(response.body)["video"] is NSNull)
            }
        }
        await service.stop()
    }

    @Test func theStoredRequestIsNormalisedAndReadBackAsVideo() throws {
        let request = try VideoJobParser.parse(Array(#"{"prompt": "a fox", "teacache": 0.1, "seed": 4}"#.utf8), defaults: .tiny, limits: ServiceLimits())
        let stored = VideoJobParser.normalized(request)
        #expect(VideoJobParser.isVideo(stored) && !VideoJobParser.isVideo(Array(#"{"text_prompt": "a fox"}"#.utf8)))
        #expect(try VideoJobParser.parse(stored, defaults: .wan22, limits: ServiceLimits()) == request)
        #expect(request.frames == 9 && request.teaCache == 0.1 && request.seed == 4 && request.sampler == .unipc)
    }
}
