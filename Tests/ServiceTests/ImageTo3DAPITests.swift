import Cameras
import Foundation
import Hummingbird
import HummingbirdTesting
import SplatCore
import SplatIO
import Testing

@testable import Service

/// A small PNG, from the media fixtures.
let pngBytes: [UInt8] = {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("MediaIOTests/Fixtures/pattern.png")
    return [UInt8](try! Data(contentsOf: url))
}()

func multipart(_ parts: [(name: String, fileName: String?, data: [UInt8])], boundary: String = "diorama-test-boundary") -> (ByteBuffer, HTTPFields) {
    var body: [UInt8] = []
    for part in parts {
        let disposition = "Content-Disposition: form-data; name=\"\(part.name)\"" + (part.fileName.map { "; filename=\"\($0)\"" } ?? "")
        body += Array("--\(boundary)\r\n\(disposition)\r\n\r\n".utf8) + part.data + Array("\r\n".utf8)
    }
    body += Array("--\(boundary)--\r\n".utf8)
    return (ByteBuffer(bytes: body), [.contentType: "multipart/form-data; boundary=\(boundary)"])
}

struct ImageTo3DAPITests {
    func makeService(_ folder: String, generator: (any SceneGenerator)? = StubGenerator()) throws -> GenerationService {
        GenerationService(store: try SQLiteJobStore(path: "\(folder)/jobs.sqlite"), generator: generator, dataDirectory: folder)
    }

    var configuration: ServiceConfiguration {
        var c = ServiceConfiguration()
        try! c.set("image_size", "64x32")
        try! c.set("image_frames", "2")
        return c
    }

    @Test func formUploadsAnswerPLYAndSPZ() async throws {
        let folder = temporaryFolder("i23d")
        let service = try makeService(folder)
        try await service.start()
        try await application(service, configuration).test(.router) { client in
            let (body, headers) = multipart([("prompt_image_file", "cat.png", pngBytes), ("seed", nil, Array("11".utf8))])
            try await client.execute(uri: "/generate", method: .post, headers: headers, body: body) { response in
                #expect(response.status == .ok && response.headers[.contentType] == "application/octet-stream")
                let bytes = [UInt8](buffer: response.body)
                #expect(response.headers[.contentLength] == String(bytes.count))
                #expect(Array(bytes.prefix(3)) == Array("ply".utf8))
                let (cloud, _) = try SplatFile.read(InputSource(bytes: bytes), format: .ply)
                #expect(cloud.count == 20)
            }
            try await client.execute(uri: "/generate-spz", method: .post, headers: headers, body: body) { response in
                let bytes = [UInt8](buffer: response.body)
                #expect(response.status == .ok && Array(bytes.prefix(2)) == [0x1F, 0x8B], "standard SPZ is gzip")
                let (cloud, _) = try SplatFile.read(InputSource(bytes: bytes), format: .spz)
                #expect(cloud.count == 20)
            }
            // Every image job went through the durable queue, with the form's seed and the configured size.
            let jobs = try await service.recentJobs(status: .completed, limit: 10)
            #expect(jobs.count == 2 && jobs.allSatisfy { $0.seed == 11 })
            #expect(jobs[0].summary.frames == 2 && jobs[0].request.isEmpty, "listings carry the summary, not the request")
        }
        await service.stop()
    }

    @Test func base64AnswersJSON() async throws {
        let folder = temporaryFolder("b64")
        let service = try makeService(folder)
        try await service.start()
        try await application(service, configuration).test(.router) { client in
            let request = #"{"prompt_type": "image", "prompt_image": "\#(Data(pngBytes).base64EncodedString())", "seed": -1, "trellis_params": null}"#
            try await client.execute(uri: "/generate_from_base64", method: .post, body: ByteBuffer(string: request)) { response in
                let answer = json(response.body)
                #expect(response.status == .ok && answer["generation_time"] is Double)
                #expect(answer["image_edited_file_base64"] is NSNull && answer["image_without_background_file_base64"] is NSNull)
                let ply = [UInt8](Data(base64Encoded: answer["ply_file_base64"] as? String ?? "") ?? Data())
                #expect(Array(ply.prefix(3)) == Array("ply".utf8))
            }
        }
        var compressed = configuration
        compressed.compression = true
        try await application(service, compressed).test(.router) { client in
            let request = #"{"prompt_image": "\#(Data(pngBytes).base64EncodedString())"}"#
            try await client.execute(uri: "/generate_from_base64", method: .post, body: ByteBuffer(string: request)) { response in
                let bytes = [UInt8](Data(base64Encoded: json(response.body)["ply_file_base64"] as? String ?? "") ?? Data())
                #expect(Array(bytes.prefix(2)) == [0x1F, 0x8B])
            }
        }
        await service.stop()
    }

    @Test func badUploadsAreFourHundredsWithDetail() async throws {
        let folder = temporaryFolder("i23d-bad")
        let service = try makeService(folder)
        try await service.start()
        try await application(service, configuration).test(.router) { client in
            let cases: [(String, ByteBuffer, HTTPFields, HTTPResponse.Status, String)] = [
                ("/generate", multipart([("seed", nil, Array("1".utf8))]).0, multipart([]).1, .badRequest, "prompt_image_file"),
                ("/generate", multipart([("prompt_image_file", "x.png", Array("not an image".utf8))]).0, multipart([]).1, .badRequest, "Image decode error"),
                ("/generate", multipart([("prompt_image_file", "x.png", pngBytes), ("seed", nil, Array("abc".utf8))]).0, multipart([]).1, .badRequest, "seed"),
                ("/generate", ByteBuffer(string: "garbage"), multipart([]).1, .badRequest, "boundary"),
                ("/generate", ByteBuffer(string: "x"), [.contentType: "multipart/form-data"], .badRequest, "boundary"),
                ("/generate-spz", ByteBuffer(string: "{}"), [.contentType: "application/json"], .unsupportedMediaType, "multipart/form-data"),
                ("/generate_from_base64", ByteBuffer(string: #"{"prompt_type": "text", "prompt_image": "aGk="}"#), [:], .badRequest, "prompt_type"),
                ("/generate_from_base64", ByteBuffer(string: #"{"prompt_image": "%%%"}"#), [:], .badRequest, "base64"),
            ]
            for (uri, body, headers, status, message) in cases {
                try await client.execute(uri: uri, method: .post, headers: headers, body: body) { response in
                    let answer = json(response.body)
                    #expect(response.status == status, "\(uri) \(message): \(answer)")
                    #expect(field(answer, "detail").contains(message) && answer["error"] as? String == answer["detail"] as? String)
                }
            }
        }
        await service.stop()
    }

    static func health(_ client: some TestClientProtocol) async throws -> String {
        try await client.execute(uri: "/health", method: .get) { "\($0.status.code) \(json($0.body)["status"] as? String ?? "")" }
    }

    /// `/health` reports loading until a generator is installed, warming up during the warm-up generation, then
    /// ready (busy while jobs run), or failed with the reason.
    @Test func healthReportsRealStates() async throws {
        let folder = temporaryFolder("health")
        let service = try makeService(folder, generator: nil)
        try await service.start()
        try await application(service).test(.router) { client in
            #expect(try await Self.health(client) == "503 loading")
            // Jobs are accepted (and kept) while the model loads.
            try await client.execute(uri: "/v1/jobs", method: .post, body: requestBody(prompt: "slow job")) { #expect($0.status == .accepted) }
            let installing = Task { await service.install(StubGenerator(), name: "stub", warmUp: try! FlashWorldRequest.parse(Array(buffer: requestBody(prompt: "slow warm-up")), limits: ServiceLimits())) }
            try await Task.sleep(for: .milliseconds(100))
            #expect(try await Self.health(client) == "503 warming_up")
            await installing.value
            try await Task.sleep(for: .milliseconds(700))
            #expect(try await Self.health(client) == "200 busy")
            let id = try await service.recentJobs(status: nil, limit: 1)[0].id
            _ = try await service.cancel(id: id)
            try await Task.sleep(for: .milliseconds(200))
            #expect(try await Self.health(client) == "200 ready")
            await service.failed("the model did not load: no such folder")
            try await client.execute(uri: "/health", method: .get) { response in
                #expect(response.status == .serviceUnavailable && json(response.body)["status"] as? String == "failed")
                #expect(field(json(response.body), "detail").contains("no such folder"))
            }
            try await client.execute(uri: "/generate", method: .post, body: requestBody()) { #expect($0.status == .serviceUnavailable) }
        }
        await service.stop()
    }
}

struct RequestParsingTests {
    /// A request's intrinsics are in its image's pixels and follow the reference's crop: a 36x22 image for 64x32 is
    /// scaled by 64/36 and cut 2 rows from the top (numbers from Python).
    @Test func cameraIntrinsicsFollowTheImageCrop() throws {
        let body = #"{"text_prompt": "", "image_prompt": "\#(Data(pngBytes).base64EncodedString())", "resolution": [2, 32, 64], "cameras": [\#(camera)]}"#
        let request = try FlashWorldRequest.parse(Array(body.utf8), limits: ServiceLimits())
        let k = request.cameras[0].intrinsics
        #expect(abs(k.fx - 0.8333333333333333) < 1e-12 && abs(k.fy - 1.6666666666666665) < 1e-12)
        #expect(abs(k.cx - 0.8888888888888888) < 1e-12 && abs(k.cy - 0.7777777777777777) < 1e-12)
        // Without an image the same camera is only normalised.
        let plain = try FlashWorldRequest.parse(Array(requestBody().readableBytesView), limits: ServiceLimits())
        #expect(plain.cameras[0].intrinsics == NormalizedIntrinsics(fx: 30.0 / 64, fy: 30.0 / 32, cx: 0.5, cy: 0.5))
    }
}

struct AccessTests {
    @Test func aTokenGuardsTheAPIButNotTheStudioOrHealth() async throws {
        let folder = temporaryFolder("auth")
        let service = GenerationService(store: try SQLiteJobStore(path: "\(folder)/jobs.sqlite"), generator: StubGenerator(), dataDirectory: folder)
        var configuration = ServiceConfiguration()
        configuration.token = "s3cret"
        configuration.corsOrigins = ["https://studio.example"]
        try await application(service, configuration).test(.router) { client in
            for uri in ["/status", "/v1/jobs", "/metrics", "/task/x"] {
                try await client.execute(uri: uri, method: .get) { response in
                    #expect(response.status == .unauthorized && response.headers[.wwwAuthenticate] == "Bearer", "\(uri)")
                    #expect(field(json(response.body), "error").contains("Bearer"))
                }
            }
            // The API's documentation is no secret: the reference page and its document stay open.
            for uri in ["/openapi.json", "/docs"] {
                try await client.execute(uri: uri, method: .get) { #expect($0.status == .ok, "\(uri)") }
            }
            try await client.execute(uri: "/status", method: .get, headers: [.authorization: "Bearer wrong"]) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/status", method: .get, headers: [.authorization: "Bearer s3cret"]) { #expect($0.status == .ok) }
            try await client.execute(uri: "/status", method: .get, headers: [.authorization: "bearer s3cret"]) { #expect($0.status == .ok) }
            // An event stream may carry the token in its query (EventSource cannot send headers); nothing else may.
            try await client.execute(uri: "/v1/jobs/none/events?access_token=s3cret", method: .get) { #expect($0.status == .notFound) }
            try await client.execute(uri: "/v1/jobs?access_token=s3cret", method: .get) { #expect($0.status == .unauthorized) }
            for uri in ["/health", "/", "/studio.js", "/sort-worker.js", "/v1/info"] {
                try await client.execute(uri: uri, method: .get) { #expect($0.status != .unauthorized, "\(uri)") }
            }
            // CORS: only the configured origin is echoed; preflights need no token.
            try await client.execute(uri: "/status", method: .get, headers: [.origin: "https://studio.example", .authorization: "Bearer s3cret"]) { response in
                #expect(response.headers[.accessControlAllowOrigin] == "https://studio.example")
            }
            try await client.execute(uri: "/status", method: .get, headers: [.origin: "https://evil.example", .authorization: "Bearer s3cret"]) { response in
                #expect(response.headers[.accessControlAllowOrigin] == nil && response.headers[.vary] == "Origin")
            }
            // Errors carry CORS headers too, so a page sees the JSON error rather than an opaque failure.
            try await client.execute(uri: "/nowhere", method: .get, headers: [.origin: "https://studio.example", .authorization: "Bearer s3cret"]) { response in
                #expect(response.status == .notFound && response.headers[.accessControlAllowOrigin] == "https://studio.example")
            }
            try await client.execute(
                uri: "/v1/jobs", method: .options, headers: [.origin: "https://studio.example", .accessControlRequestMethod: "POST"]
            ) { response in
                #expect(response.status == .noContent && response.headers[.accessControlAllowHeaders]?.contains("Authorization") == true)
            }
        }
    }

    @Test func theStudioIsServedFromTheBinary() async throws {
        let folder = temporaryFolder("studio")
        let service = GenerationService(store: try SQLiteJobStore(path: "\(folder)/jobs.sqlite"), generator: StubGenerator(), dataDirectory: folder)
        try await application(service).test(.router) { client in
            try await client.execute(uri: "/", method: .get) { response in
                #expect(response.status == .ok && response.headers[.contentType]?.hasPrefix("text/html") == true)
                #expect(String(buffer: response.body).contains("viewer"))
            }
            for name in ["studio.js", "viewer.js", "loaders.js", "sort-worker.js"] {
                try await client.execute(uri: "/\(name)", method: .get) { response in
                    #expect(response.headers[.contentType]?.hasPrefix("text/javascript") == true, "\(name)")
                }
            }
        }
        // The embedded copies are the files in Sources/Service/Studio (run scripts/embed-assets.sh after editing).
        let studio = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources/Service/Studio")
        let names = try FileManager.default.contentsOfDirectory(atPath: studio.path).sorted()
        #expect(names.map { "/" + $0 } == StudioAssets.files.keys.sorted())
        for name in names {
            var text = try String(contentsOf: studio.appendingPathComponent(name), encoding: .utf8)
            if text.hasSuffix("\n") { text.removeLast() }
            #expect(StudioAssets.files["/" + name]?.text == text, "\(name) is embedded as it is on disk")
        }
    }
}

struct ConfigurationTests {
    @Test func fileThenEnvironmentThenFlags() throws {
        var c = ServiceConfiguration()
        try c.apply(file: Array(#"{"port": 9000, "max_queued": 5, "cors_origins": ["https://a.example", "https://b.example"], "token": "t1", "compression": true}"#.utf8), name: "c.json")
        #expect(c.port == 9000 && c.maxQueued == 5 && c.corsOrigins == ["https://a.example", "https://b.example"] && c.token == "t1" && c.compression)
        try c.apply(environment: ["DIORAMA_PORT": "9100", "DIORAMA_IMAGE_SIZE": "128x96", "HOME": "/root"])
        #expect(c.port == 9100 && c.imageWidth == 128 && c.imageHeight == 96 && c.maxQueued == 5)
        try c.set("port", "9200")
        #expect(c.port == 9200)
        #expect(c.limits.maxQueued == 5)
        // The device and precision a server runs in, from the same table (DIORAMA_DEVICE as the CLI reads it).
        try c.apply(environment: ["DIORAMA_DEVICE": "cpu", "DIORAMA_PRECISION": "bf16"])
        #expect(c.device == "cpu" && c.precision == "bf16")
        // The memory mode defaults to the one the GPU's free memory allows; the limits reach the service.
        #expect(c.memory == "auto")
        try c.set("memory", "low")
        try c.set("artifact_budget_mib", "2048")
        #expect(c.memory == "low" && c.limits.artifactBudgetBytes == 2048 << 20)
    }

    @Test func mistakesAreNamed() {
        var c = ServiceConfiguration()
        let cases: [(() throws(ServiceError) -> Void, String)] = [
            ({ () throws(ServiceError) in try c.apply(file: Array(#"{"prot": 1}"#.utf8), name: "c.json") }, "unknown setting \"prot\""),
            ({ () throws(ServiceError) in try c.apply(file: Array("[1]".utf8), name: "c.json") }, "not a JSON object"),
            ({ () throws(ServiceError) in try c.apply(environment: ["DIORAMA_PORT": "http"]) }, "DIORAMA_PORT"),
            ({ () throws(ServiceError) in try c.set("image_size", "100x100") }, "multiples of 32"),
            ({ () throws(ServiceError) in try c.set("compression", "maybe") }, "true or false"),
            ({ () throws(ServiceError) in try c.set("device", "tpu") }, "device must be auto, cuda or cpu"),
            ({ () throws(ServiceError) in try c.set("precision", "int4") }, "precision must be fp32, bf16, fp8 or fp8-lean"),
            ({ () throws(ServiceError) in try c.set("memory", "tiny") }, "memory must be auto, full, balanced or low"),
            ({ () throws(ServiceError) in try c.set("header_timeout", "0") }, "header_timeout"),
            ({ () throws(ServiceError) in try c.set("body_timeout", "forever") }, "body_timeout"),
            ({ () throws(ServiceError) in try c.set("artifact_budget_mib", "-5") }, "artifact_budget_mib"),
        ]
        for (body, message) in cases {
            #expect { try body() } throws: { ($0 as? ServiceError)?.message.contains(message) == true }
        }
    }

    @Test func theTinyModelGetsSmallImageJobs() {
        var c = ServiceConfiguration()
        #expect(c.imageFrames == 4 && c.imageWidth == 256)
        c.model = "/models/flashworld"
        #expect(c.imageFrames == 24 && c.imageWidth == 704 && c.imageHeight == 480)
    }
}
