import Cameras
import Foundation
import Hummingbird
import HummingbirdTesting
import SplatCore
import SplatIO
import Testing

import EngineCPU
import FlashWorld

@testable import Service

/// `POST /v1/jobs/{id}/extend`: world expansion as a job of the native API.
struct SceneExtensionTests {
    /// The tiny model grows a finished scene: a new job that says which it extends, more Gaussians than its parent,
    /// the chunk's placement recorded inside the files, and the linked base gone once it completes.
    @Test func aFinishedSceneGrowsAlongAPath() async throws {
        let folder = temporaryFolder("extend")
        let service = GenerationService(
            store: try SQLiteJobStore(path: "\(folder)/jobs.sqlite"),
            generator: FlashWorldSceneGenerator(model: try FlashWorldModel.tiny(on: CPUBackend.shared), backend: CPUBackend.shared),
            dataDirectory: folder)
        try await service.start()
        try await application(service).test(.router) { client in
            var parent = ""
            // A path that moves (a still one's scene has no scale: FlashWorld sizes it by the path), 64 x 64 and seed 42 as
            // `diorama extend`'s test: the tiny model's random scene covers enough of its first view there.
            let square = #"{"text_prompt": "a hall", "seed": 42, "resolution": [2, 64, 64], "cameras": [{"quaternion": [1, 0, 0, 0], "position": [0, 0, 0], "fx": 55, "fy": 55, "cx": 32, "cy": 32}, {"quaternion": [1, 0, 0, 0], "position": [0, 0, -0.5], "fx": 55, "fy": 55, "cx": 32, "cy": 32}]}"#
            try await client.execute(uri: "/v1/jobs", method: .post, body: ByteBuffer(string: square)) { parent = json($0.body)["id"] as? String ?? "" }
            let finished = try #require(try await waitUntilFinished(service, parent))
            #expect(finished.status == .completed)
            var child = ""
            try await client.execute(uri: "/v1/jobs/\(parent)/extend", method: .post, body: ByteBuffer(string: #"{"path": "forward", "seed": 3}"#)) {
                response in
                let job = json(response.body)
                #expect(response.status == .accepted, "\(String(buffer: response.body))")
                child = job["id"] as? String ?? ""
                #expect(response.headers[.location] == "/v1/jobs/\(child)")
                #expect(job["extends"] as? String == parent && job["prompt"] as? String == "a hall" && job["seed"] as? Int == 3)
                #expect(job["frames"] as? Int == 2 && job["width"] as? Int == 64 && job["height"] as? Int == 64)
            }
            let grown = try #require(try await waitUntilFinished(service, child))
            try #require(grown.status == .completed, "\(grown.error ?? "")")
            #expect((grown.gaussians ?? 0) > (finished.gaussians ?? 0))
            let (cloud, description) = try SplatFile.read(InputSource(path: service.artifactPath(grown.fileID, .ply)))
            #expect(cloud.count == grown.gaussians && cloud.frame == .rub)
            let record = try #require(SceneRecord(metadata: description.metadata))
            #expect(record.chunks.count == 1 && record.chunks[0].scale > 0 && record.chunks[0].position == [0, 0, 0])
            #expect(SceneRecord(metadata: try SplatFile.read(InputSource(path: service.artifactPath(grown.fileID, .spz))).1.metadata) == record)
            #expect(access(service.artifactPath(grown.fileID, .extensionBase), F_OK) != 0)
            // Growing the grown scene appends to its record.
            try await client.execute(uri: "/v1/jobs/\(child)/extend", method: .post, body: ByteBuffer(string: "{}")) { child = json($0.body)["id"] as? String ?? "" }
            let again = try #require(try await waitUntilFinished(service, child))
            #expect(again.status == .completed, "\(again.error ?? "")")
            let (_, later) = try SplatFile.read(InputSource(path: service.artifactPath(again.fileID, .ply)))
            #expect(SceneRecord(metadata: later.metadata)?.chunks.count == 2)
        }
        await service.stop()
    }

    /// What cannot grow is refused with a status and a message that names the problem, and stores no job.
    @Test func badExtensionsAreRefused() async throws {
        let folder = temporaryFolder("extend-bad")
        let service = GenerationService(store: try SQLiteJobStore(path: "\(folder)/jobs.sqlite"), generator: StubGenerator(), dataDirectory: folder)
        try await service.start()
        try await application(service).test(.router) { client in
            var done = "", slow = ""
            try await client.execute(uri: "/v1/jobs", method: .post, body: requestBody()) { done = json($0.body)["id"] as? String ?? "" }
            #expect(try await waitUntilFinished(service, done)?.status == .completed)
            try await client.execute(uri: "/v1/jobs", method: .post, body: requestBody(prompt: "slow")) { slow = json($0.body)["id"] as? String ?? "" }
            // A job still queued or running has no scene to grow yet (asked at once: the slow job takes ten seconds).
            try await client.execute(uri: "/v1/jobs/\(slow)/extend", method: .post, body: ByteBuffer(string: "{}")) { response in
                #expect(response.status == .conflict && (json(response.body)["error"] as? String ?? "").contains("completed"), "\(response.status)")
            }
            _ = try? await service.cancel(id: slow)
            let cases: [(String, String, HTTPResponse.Status, String)] = [
                ("nope", "{}", .notFound, "no job"),
                (done, #"{"colour": 1}"#, .badRequest, "unknown field colour"),
                (done, #"{"path": "orbit"}"#, .badRequest, "template steps"),
                (done, #"{"fov": 200}"#, .badRequest, "fov"),
                (done, #"{"start": {"position": [0, 0], "orientation": [1, 0, 0, 0]}}"#, .badRequest, "start"),
                (done, #"{"start": {"position": [0, 0, 0], "orientation": [0, 0, 0, 0]}}"#, .badRequest, "zero quaternion"),
                (done, #"{"cameras": [], "path": "forward"}"#, .badRequest, "not both"),
                (done, #"{"resolution": [2, 30, 64]}"#, .badRequest, "multiples of 32"),
                (done, "not json", .badRequest, "JSON"),
            ]
            for (id, body, status, words) in cases {
                try await client.execute(uri: "/v1/jobs/\(id)/extend", method: .post, body: ByteBuffer(string: body)) { response in
                    let message = json(response.body)["error"] as? String ?? ""
                    #expect(response.status == status && message.contains(words), "\(body): \(response.status) \(message)")
                }
            }
            #expect(try await service.recentJobs(status: nil, limit: 50).count == 2)
            // A client cannot smuggle in the internal field through FlashWorld's lenient route: it is ignored there.
            try await client.execute(uri: "/generate", method: .post, body: ByteBuffer(string: #"{"extend_from": "\#(done)"}"#)) { response in
                #expect(response.status == .badRequest && String(buffer: response.body).contains("No Prompts provided"))
            }
            // A generator that cannot grow scenes fails the job with that reason, and its base goes with the outcome.
            var child = ""
            try await client.execute(uri: "/v1/jobs/\(done)/extend", method: .post, body: ByteBuffer(string: "")) { child = json($0.body)["id"] as? String ?? "" }
            let failed = try #require(try await waitUntilFinished(service, child))
            #expect(failed.status == .failed && (failed.error ?? "").contains("cannot grow"))
            #expect(access(service.artifactPath(failed.fileID, .extensionBase), F_OK) != 0)
            // A queued one cancelled loses its base at once (the slow job holds the only worker).
            var blocker = "", queued = ""
            try await client.execute(uri: "/v1/jobs", method: .post, body: requestBody(prompt: "slow")) { blocker = json($0.body)["id"] as? String ?? "" }
            try await client.execute(uri: "/v1/jobs/\(done)/extend", method: .post, body: ByteBuffer(string: "{}")) { queued = json($0.body)["id"] as? String ?? "" }
            let waiting = try #require(try await service.job(id: queued))
            #expect(access(service.artifactPath(waiting.fileID, .extensionBase), R_OK) == 0)
            _ = try await service.cancel(id: queued)
            #expect(access(service.artifactPath(waiting.fileID, .extensionBase), F_OK) != 0)
            _ = try? await service.cancel(id: blocker)
        }
        await service.stop()
    }

    /// A base without a job still waiting for it (a crash between its link and its job's insert) goes at start-up.
    @Test func orphanedBasesAreSweptAtStart() async throws {
        let folder = temporaryFolder("extend-orphan")
        let orphan = "\(folder)/1234567890.base.ply"
        #expect(FileManager.default.createFile(atPath: orphan, contents: Data("ply".utf8)))
        let service = GenerationService(store: try SQLiteJobStore(path: "\(folder)/jobs.sqlite"), generator: StubGenerator(), dataDirectory: folder)
        try await service.start()
        #expect(!FileManager.default.fileExists(atPath: orphan))
        await service.stop()
    }

    /// Template steps from a start pose: the path moves rigidly, its first camera at the pose, "forward" along the
    /// pose's own view direction.
    @Test func pathsStartWhereTheyAreAsked() throws {
        let intrinsics = NormalizedIntrinsics(verticalFieldOfView: 60, width: 64, height: 32)
        let turned = Quaternion(w: cos(.pi / 4), x: 0, y: sin(.pi / 4), z: 0)  // 90° about +y: looks down −x
        let path = CameraPath.keyframes([.forward, .forward], intrinsics: intrinsics).startingAt(orientation: turned, position: SIMD3(1, 2, 3))
        #expect(path.cameras.count == 3)
        #expect(simd_distance(path.cameras[0].position, SIMD3(1, 2, 3)) < 1e-12)
        #expect(simd_distance(path.cameras[2].position, SIMD3(0, 2, 3)) < 1e-12)
        #expect(Quaternion.dot(path.cameras[2].orientation, turned) > 1 - 1e-12)
    }
}

private func simd_distance(_ a: SIMD3<Double>, _ b: SIMD3<Double>) -> Double { ((a - b) * (a - b)).sum().squareRoot() }
