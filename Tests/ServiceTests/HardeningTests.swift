import Foundation
#if canImport(Glibc)
    import Glibc
#endif
import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing

@testable import Service

/// What a careless client or a hostile page could do (issue "the service under hostile and careless clients"), each
/// case refused or answered as HTTP says.
struct HardeningTests {
    func makeService(_ folder: String) async throws -> GenerationService {
        let service = GenerationService(store: try SQLiteJobStore(path: "\(folder)/jobs.sqlite"), generator: StubGenerator(), dataDirectory: folder)
        try await service.start()
        return service
    }

    func completedJob(_ client: some TestClientProtocol, _ service: GenerationService) async throws -> (id: String, fileID: String) {
        var job: [String: Any] = [:]
        try await client.execute(uri: "/v1/jobs", method: .post, headers: [.contentType: "application/json"], body: requestBody()) { job = json($0.body) }
        let id = job["id"] as? String ?? ""
        _ = try await waitUntilFinished(service, id)
        return (id, job["file_id"] as? String ?? "")
    }

    /// A page on another site cannot queue or delete with a restricted origin list, whatever type it declares; the
    /// form-only body types are refused everywhere (a page can send them without a CORS preflight).
    @Test func crossSiteWritesAreRefused() async throws {
        let folder = temporaryFolder("csrf")
        let service = try await makeService(folder)
        var configuration = ServiceConfiguration()
        configuration.corsOrigins = ["http://good.example"]
        try await application(service, configuration).test(.router) { client in
            let (_, fileID) = try await completedJob(client, service)
            let evil: HTTPFields = [.origin: "http://evil.example", .contentType: "text/plain"]
            try await client.execute(uri: "/v1/jobs", method: .post, headers: evil, body: requestBody()) { response in
                #expect(response.status == .forbidden && (json(response.body)["error"] as? String ?? "").contains("evil.example"))
            }
            try await client.execute(uri: "/delete/\(fileID)", method: .post, headers: evil) { #expect($0.status == .forbidden) }
            #expect(access(service.artifactPath(fileID), F_OK) == 0, "the refused delete removed nothing")
            for type in ["text/plain; charset=utf-8", "application/x-www-form-urlencoded"] {
                try await client.execute(
                    uri: "/v1/jobs", method: .post, headers: [.origin: "http://good.example", .contentType: type], body: requestBody()
                ) { response in
                    #expect(response.status == .unsupportedMediaType, "\(type)")
                }
            }
            try await client.execute(
                uri: "/v1/jobs", method: .post, headers: [.origin: "http://good.example", .contentType: "application/json"], body: requestBody()
            ) { #expect($0.status == .accepted) }
        }
        #expect(RequestGuardMiddleware<DioramaRequestContext>.sameOrigin("http://127.0.0.1:7860", host: "127.0.0.1:7860"))
        #expect(!RequestGuardMiddleware<DioramaRequestContext>.sameOrigin("http://127.0.0.1:7861", host: "127.0.0.1:7860"))
        await service.stop()
    }

    /// Ranges that are not one valid range are ignored (the whole file); ends past the file are clamped; only a start
    /// past the end is 416. HEAD answers as GET without a body; /v1 serves only the names it lists.
    @Test func rangesHeadAndUnlistedArtifacts() async throws {
        let folder = temporaryFolder("ranges-head")
        let service = try await makeService(folder)
        try await application(service).test(.router) { client in
            let (id, _) = try await completedJob(client, service)
            let uri = "/v1/jobs/\(id)/artifacts/scene.ply"
            var size = 0
            try await client.execute(uri: uri, method: .get) { size = $0.body.readableBytes }
            #expect(size > 100)
            try await client.execute(uri: uri, method: .get, headers: [.range: "bytes=5-3"]) { response in
                #expect(response.status == .ok && response.body.readableBytes == size)
            }
            try await client.execute(uri: uri, method: .get, headers: [.range: "bytes=0-99999999999999999999"]) { response in
                #expect(response.status == .partialContent && response.body.readableBytes == size)
            }
            try await client.execute(uri: uri, method: .get, headers: [.range: "bytes=\(size + 10)-"]) { #expect($0.status == .rangeNotSatisfiable) }
            try await client.execute(uri: uri, method: .head) { response in
                #expect(response.status == .ok && response.body.readableBytes == 0 && response.headers[.contentLength] == String(size))
            }
            try await client.execute(uri: "/v1/jobs/\(id)", method: .head) { #expect($0.status == .ok && $0.body.readableBytes == 0) }
            try await client.execute(uri: "/v1/jobs/\(id)/artifacts/flashworld.spz", method: .get) { #expect($0.status == .notFound) }
        }
        await service.stop()
    }

    @Test func absurdFocalLengthsAreRefusedAtSubmission() async throws {
        let folder = temporaryFolder("focal")
        let service = try await makeService(folder)
        try await application(service).test(.router) { client in
            let body = #"{"text_prompt": "x", "resolution": [1, 32, 64], "cameras": [{"quaternion": [1, 0, 0, 0], "position": [0, 0, 0], "fx": 1e-300, "fy": 30, "cx": 32, "cy": 16}]}"#
            try await client.execute(uri: "/v1/jobs", method: .post, body: ByteBuffer(string: body)) { response in
                #expect(response.status == .badRequest && (json(response.body)["error"] as? String ?? "").contains("fx"))
            }
        }
        #expect(try await service.status().queued.isEmpty)
        await service.stop()
    }

    /// File ids are digits (FlashWorld's routes take digits only) with twelve random ones after the millisecond.
    @Test func fileIDsAreUnguessable() async throws {
        let folder = temporaryFolder("file-ids")
        let service = try await makeService(folder)
        var ids: [String] = []
        for _ in 0..<3 { ids.append(try await service.submit(Array(requestBody().readableBytesView)).0.fileID) }
        #expect(ids.allSatisfy { $0.count == 25 && $0.allSatisfy(\.isASCIIDigit) })
        #expect(Set(ids.map { $0.suffix(12) }).count == 3)
        #expect(try SQLiteJobStore(path: "\(folder)/jobs.sqlite").largestFileID() == Int64(ids.map { $0.prefix(13) }.max()!)!)
        await service.stop()
    }
}

/// The multipart parser: RFC 2046's boundary limit, bounded part headers, and linear time on the worst bodies.
struct MultipartHardeningTests {
    @Test func overlongAndInvalidBoundariesAreRefused() {
        let body = [UInt8](repeating: UInt8(ascii: "-"), count: 1 << 20)
        for boundary in [String(repeating: "-", count: 8000), "a\u{7}b", "ends with space "] {
            #expect(throws: ServiceError.self) { _ = try MultipartForm(body: body, contentType: "multipart/form-data; boundary=\"\(boundary)\"") }
        }
    }

    /// A megabyte of dashes against a 72-dash delimiter, the naive search's worst case (about 70 comparisons per
    /// byte; Knuth-Morris-Pratt reads each byte about once): the match at the very end is found, a missing one is not.
    @Test func theBoundarySearchIsLinear() throws {
        let body = [UInt8](repeating: UInt8(ascii: "-"), count: 1 << 20) + Array("x".utf8)
        let needle = [UInt8](repeating: UInt8(ascii: "-"), count: 72) + Array("x".utf8)
        #expect(MultipartForm.find(needle, in: body, from: 0) == body.count - needle.count)
        #expect(MultipartForm.find(Array("xy".utf8), in: body, from: 0) == nil)
        // Headers that never end within 16 KiB are refused without reading the rest.
        let headers = Array("--b\r\nContent-Disposition: form-data; name=\"a\"\r\n".utf8) + [UInt8](repeating: UInt8(ascii: "h"), count: 20000)
        #expect(throws: ServiceError.self) { _ = try MultipartForm(body: headers, contentType: "multipart/form-data; boundary=b") }
    }

    @Test func aWellFormedFormStillParses() throws {
        let body = Array("--b\r\nContent-Disposition: form-data; name=\"seed\"\r\n\r\n7\r\n--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.png\"\r\n\r\nPNG\r\n--b--\r\n".utf8)
        let form = try MultipartForm(body: body, contentType: "multipart/form-data; boundary=b")
        #expect(form.parts.map(\.name) == ["seed", "f"] && form.parts[1].fileName == "a.png" && form.parts[1].data == Array("PNG".utf8))
    }
}

/// Listings and status reads stay small whatever a request held: they read the stored summary, never the request, and
/// the prompt they show is an excerpt.
struct BoundedReadTests {
    @Test func listingsAndStatusReadsDoNotEchoTheRequest() async throws {
        let folder = temporaryFolder("bounded-reads")
        let service = GenerationService(store: try SQLiteJobStore(path: "\(folder)/jobs.sqlite"), generator: StubGenerator(), dataDirectory: folder)
        try await service.start()
        let prompt = String(repeating: "a very long prompt ", count: 400)  // 7,600 characters
        let filler = String(repeating: "x", count: 2_000_000)  // an ignored field of 2 MB
        let body = #"{"text_prompt": "\#(prompt)", "resolution": [2, 32, 64], "cameras": [\#(camera)], "ignored": "\#(filler)"}"#
        try await application(service).test(.router) { client in
            var id = ""
            // FlashWorld's route ignores unknown fields (the native one refuses them).
            try await client.execute(uri: "/generate", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: body)) {
                id = json($0.body)["task_id"] as? String ?? ""
            }
            try await client.execute(uri: "/v1/jobs", method: .post, body: ByteBuffer(string: body)) { response in
                #expect(response.status == .badRequest && (json(response.body)["error"] as? String ?? "").contains("unknown field ignored"))
            }
            _ = try await waitUntilFinished(service, id)
            for uri in ["/v1/jobs", "/v1/jobs/\(id)"] {
                try await client.execute(uri: uri, method: .get) { response in
                    #expect(response.status == .ok && response.body.readableBytes < 4000, "\(uri): \(response.body.readableBytes) bytes")
                }
            }
            try await client.execute(uri: "/v1/jobs/\(id)", method: .get) { response in
                let shown = json(response.body)["prompt"] as? String ?? ""
                #expect(shown.count == JobSummary.promptLimit + 1 && shown.hasSuffix("…"))
            }
        }
        let tooLong = #"{"text_prompt": "\#(String(repeating: "x", count: 9000))"}"#
        await #expect(throws: ServiceError.self) { _ = try await service.submit(Array(tooLong.utf8)) }
        let listed = try await service.recentJobs(status: nil, limit: 5)
        #expect(listed.count == 1 && listed[0].request.isEmpty && listed[0].summary.frames == 2)
        // The stored request keeps the request's own fields only: the 2 MB ignored field is gone, the prompt is not.
        let stored = try await service.job(id: listed[0].id)?.request ?? []
        #expect(stored.count > 7_000 && stored.count < 20_000 && !String(decoding: stored, as: UTF8.self).contains("ignored"))
        #expect(listed[0].status == .completed)
        await service.stop()
    }
}

/// The parsing queue lets a cancelled waiter go without giving it a slot, so work for a client that went away is
/// never started once its task is cancelled.
struct ParsingQueueTests {
    @Test func aCancelledWaiterLeavesTheQueueWithoutASlot() async throws {
        let gate = Gate(slots: 1)
        try await gate.enter()
        let waiter = Task { try await gate.enter() }
        try await Task.sleep(for: .milliseconds(50))
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        // The slot comes back free, not handed to the cancelled waiter: the next caller takes it at once.
        await gate.leave()
        let next = Task { try await gate.enter() }
        try await Task.sleep(for: .milliseconds(50))
        #expect(await gate.freeSlots == 0, "the next caller holds the slot")
        try await next.value
    }
}

/// A client that disconnects while its request waits for a parsing slot is dropped: it leaves the queue, nothing is
/// parsed or submitted for it, and its answer counts as a 499.
struct ClientDisconnectTests {
    @Test func aWaiterWhoseClientLeftLeavesTheQueue() async throws {
        let gate = Gate(slots: 1)
        try await gate.enter()
        let signal = DisconnectSignal()
        let waiter = Task { try await gate.enter(leavingOn: signal) }
        try await Task.sleep(for: .milliseconds(50))
        #expect(await gate.waitingCount == 1)
        signal.fire()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        #expect(await gate.waitingCount == 0)
        await gate.leave()
        #expect(await gate.freeSlots == 1, "the slot was not handed to the client that left")
        // A signal that has fired refuses at once, and an action registered after it runs at once.
        await #expect(throws: CancellationError.self) { try await gate.enter(leavingOn: signal) }
        let ran = Mutex(false)
        #expect(signal.onClose { ran.withLock { $0 = true } } == nil && ran.withLock { $0 })
    }

    @Test func aQueuedRequestOfAClosedConnectionIsNeverSubmitted() async throws {
        let folder = temporaryFolder("gone")
        let service = GenerationService(store: try SQLiteJobStore(path: "\(folder)/jobs.sqlite"), generator: StubGenerator(), dataDirectory: folder)
        try await service.start()
        let configuration = ServiceConfiguration()
        let application = Application(
            router: DioramaServer.router(service: service, configuration: configuration), server: DioramaServer.httpServer(configuration: configuration))
        try await application.test(.live) { client in
            let port = try #require(client.port)
            // Every parsing slot held, as by other clients' uploads (waiting for any another test holds).
            let gate = BlockingWork.parsingGate
            for _ in 0..<gate.slots { try await gate.enter() }
            let body = String(buffer: requestBody())
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            #expect(connected == 0)
            let text = "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            _ = Array(text.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            // Polled, not slept for a fixed time: other tests may load the machine.
            func within(_ seconds: Double, _ condition: () async -> Bool) async throws -> Bool {
                for _ in 0..<Int(seconds * 20) {
                    if await condition() { return true }
                    try await Task.sleep(for: .milliseconds(50))
                }
                return await condition()
            }
            #expect(try await within(10) { await gate.waitingCount >= 1 }, "the request waits for a slot")
            close(fd)
            // The server notices the close and answers the request 499 while every slot is still held.
            let answered = try await within(10) { await service.metrics.exposition(gauges: []).contains(#"diorama_http_responses_total{code="499"} 1"#) }
            #expect(answered, "the request of the closed connection left the queue for a slot")
            for _ in 0..<gate.slots { await gate.leave() }
            try await Task.sleep(for: .milliseconds(400))
            var listed: [Any] = []
            try await client.execute(uri: "/v1/jobs", method: .get) { listed = json($0.body)["jobs"] as? [Any] ?? [] }
            #expect(listed.isEmpty, "a job was submitted for a client that had gone")
            let metrics = await service.metrics.exposition(gauges: [])
            #expect(metrics.contains(#"diorama_http_responses_total{code="499"} 1"#), "\(metrics)")
        }
        await service.stop()
    }
}

/// The data folder does not grow without bound: finished jobs' rows leave after the retention, and a nearly full disk
/// refuses new jobs instead of failing them later.
struct DiskBoundTests {
    @Test func finishedRowsArePurgedAfterTheRetention() async throws {
        let folder = temporaryFolder("retention")
        var limits = ServiceLimits()
        limits.jobRetention = 60
        let service = GenerationService(
            store: try SQLiteJobStore(path: "\(folder)/jobs.sqlite"), generator: nil, dataDirectory: folder, limits: limits)
        try await service.start()
        let (queued, _) = try await service.submit(Array(requestBody().readableBytesView))
        let (kept, _) = try await service.submit(Array(requestBody().readableBytesView))
        _ = try await service.cancel(id: queued.id)
        try await service.purgeFinishedJobs()
        #expect(try await service.job(id: queued.id) != nil, "inside the retention the row stays")
        try await service.purgeFinishedJobs(now: Date().timeIntervalSince1970 + 120)
        #expect(try await service.job(id: queued.id) == nil, "past it the cancelled row is gone")
        #expect(try await service.job(id: kept.id)?.status == .queued, "a queued job is never purged")
        await service.stop()
    }

    /// With an artifact budget, the job files stay within it: the completed jobs that finished first expire first,
    /// and the newest stays.
    @Test func theArtifactBudgetExpiresTheOldestJobsFirst() async throws {
        func run(_ service: GenerationService) async throws -> (id: String, fileID: String) {
            let (job, _) = try await service.submit(Array(requestBody().readableBytesView))
            _ = try await waitUntilFinished(service, job.id)
            return (job.id, job.fileID)
        }
        // One job's files, measured without a budget.
        let probeFolder = temporaryFolder("budget-probe")
        let probe = GenerationService(store: try SQLiteJobStore(path: "\(probeFolder)/jobs.sqlite"), generator: StubGenerator(), dataDirectory: probeFolder)
        try await probe.start()
        let one = probe.fileBytes(try await run(probe).fileID)
        await probe.stop()
        #expect(one > 0)

        let folder = temporaryFolder("budget")
        var limits = ServiceLimits()
        limits.artifactBudgetBytes = one * 5 / 2
        let service = GenerationService(
            store: try SQLiteJobStore(path: "\(folder)/jobs.sqlite"), generator: StubGenerator(), dataDirectory: folder, limits: limits)
        try await service.start()
        var jobs: [(id: String, fileID: String)] = []
        for _ in 0..<4 {
            jobs.append(try await run(service))
            #expect(service.artifactBytes() <= limits.artifactBudgetBytes)
        }
        var statuses: [JobRecord.Status] = []
        for job in jobs { statuses.append(try await service.job(id: job.id)?.status ?? .failed) }
        #expect(statuses == [.expired, .expired, .completed, .completed])
        #expect(access(service.artifactPath(jobs[0].fileID), F_OK) != 0 && access(service.artifactPath(jobs[3].fileID), F_OK) == 0)
        await service.stop()
    }

    @Test func aNearlyFullDiskRefusesNewJobs() async throws {
        let folder = temporaryFolder("disk-full")
        var limits = ServiceLimits()
        limits.minFreeDiskBytes = Int64.max / 2
        let service = GenerationService(
            store: try SQLiteJobStore(path: "\(folder)/jobs.sqlite"), generator: StubGenerator(), dataDirectory: folder, limits: limits)
        try await service.start()
        do {
            _ = try await service.submit(Array(requestBody().readableBytesView))
            Issue.record("a job was accepted on a full disk")
        } catch let error as ServiceError {
            #expect(error.status == 507 && error.message.contains("MiB free"))
        }
        #expect(try await service.status().queued.isEmpty)
        await service.stop()
    }
}

/// A data folder that stops taking files: submissions are refused with 503, /health says degraded, queued jobs wait,
/// and no answer shows a server path.
struct StorageFailureTests {
    @Test func anUnwritableDataFolderDegradesInsteadOfLosingJobs() async throws {
        let folder = temporaryFolder("unwritable")
        let service = GenerationService(store: try SQLiteJobStore(path: "\(folder)-jobs.sqlite"), generator: StubGenerator(), dataDirectory: folder)
        try await service.start()
        try await application(service).test(.router) { client in
            try await client.execute(uri: "/health", method: .get) { #expect($0.status == .ok) }
            // The folder becomes a plain file (as root, permissions alone cannot stop a write).
            #expect(rename(folder, folder + "-gone") == 0)
            let blocker = open(folder, O_WRONLY | O_CREAT, 0o600)
            close(blocker)
            try await Task.sleep(for: .milliseconds(1100))
            try await client.execute(uri: "/v1/jobs", method: .post, body: requestBody()) { response in
                #expect(response.status == .serviceUnavailable && (json(response.body)["error"] as? String ?? "").contains("cannot be written"))
            }
            try await client.execute(uri: "/health", method: .get) { response in
                #expect(response.status == .serviceUnavailable && json(response.body)["status"] as? String == "degraded")
            }
            // Back to a folder: jobs are taken again.
            unlink(folder)
            #expect(rename(folder + "-gone", folder) == 0)
            try await Task.sleep(for: .milliseconds(1100))
            try await client.execute(uri: "/v1/jobs", method: .post, body: requestBody()) { #expect($0.status == .accepted) }
        }
        await service.stop()
    }

    @Test func serverErrorsShowNoPaths() {
        let cleaned = HTTPResponses.withoutPaths("could not place /var/lib/diorama/17966.spz: Permission denied (open '/tmp/x/y.mp4'), see http://host/a/b")
        #expect(cleaned == "could not place 17966.spz: Permission denied (open 'y.mp4'), see http://host/a/b")
    }
}

/// What the server keeps and says for refusals is bounded whatever the input.
struct BoundedRefusalTests {
    @Test func gradioResultsAreBoundedInCountAndSize() {
        let results = GradioRoutes.Results()
        for i in 0..<(GradioRoutes.Results.capacity + 100) { _ = results.put("[\"\(i)\"]") }
        #expect(results.count == GradioRoutes.Results.capacity)
        let id = results.put(String(repeating: "x", count: 100_000))
        #expect((results.take(id) ?? "").utf8.count < 200)
    }

    @Test func refusalsQuoteAnExcerptOfTheirInput() async throws {
        let folder = temporaryFolder("excerpt")
        let service = GenerationService(store: try SQLiteJobStore(path: "\(folder)/jobs.sqlite"), generator: StubGenerator(), dataDirectory: folder)
        try await service.start()
        let huge = "[" + Array(repeating: "1", count: 200_000).joined(separator: ",") + "]"
        try await application(service).test(.router) { client in
            try await client.execute(uri: "/v1/jobs", method: .post, body: ByteBuffer(string: #"{"text_prompt": "x", "resolution": \#(huge)}"#)) { response in
                #expect(response.status == .badRequest && response.body.readableBytes < 1200, "\(response.body.readableBytes) bytes")
            }
        }
        #expect(HTTPResponses.withoutPaths("a") == "a")
        await service.stop()
    }
}

/// Admission: once this server has measured how long jobs take, a request it would take too long for is refused at
/// submission, naming the estimate and the limit.
struct AdmissionTests {
    @Test func tooCostlyRequestsAreRefusedFromTheMeasuredRate() async throws {
        let folder = temporaryFolder("admission")
        var limits = ServiceLimits()
        limits.maxJobSeconds = 10
        // No generator: nothing runs, so the only rate is the one recorded here.
        let service = GenerationService(store: try SQLiteJobStore(path: "\(folder)/jobs.sqlite"), generator: nil, dataDirectory: folder, limits: limits)
        try await service.start()
        let small = Array(requestBody().readableBytesView)  // 2 x 32 x 64
        let large = Array(#"{"text_prompt": "x", "resolution": [1, 2048, 2048]}"#.utf8)
        _ = try await service.submit(large)  // no rate measured yet: admitted
        // 20 s for a 24 x 480 x 704 scene (8.1 megapixels): about 2.5 s a megapixel.
        await service.recordDuration(20, of: JobSummary(kind: "scene", frames: 24, width: 704, height: 480, steps: 4))
        _ = try await service.submit(small)
        do {
            _ = try await service.submit(large)  // 4.2 megapixels: about 10.4 s here
            Issue.record("a scene over the time limit was admitted")
        } catch let error as ServiceError {
            #expect(error.status == 413 && error.message.contains("max_job_seconds (10 s)"), "\(error)")
        }
        await service.stop()
    }
}

/// Malformed requests are answered with the field and the problem, not Swift's decoding internals.
struct RequestMessageTests {
    @Test(arguments: [
        (#"{bad"#, "the body is not valid JSON"),
        (#"{"text_prompt": 5}"#, "text_prompt must be a string"),
        (#"{"text_prompt": "x", "resolution": [2, "a", 3]}"#, "resolution[1] must be a whole number"),
        (#"{"text_prompt": "x", "cameras": [{"position": [0, 0, 0]}]}"#, "cameras[0]"),
    ])
    func decodingProblemsNameTheField(body: String, message: String) {
        do {
            _ = try FlashWorldRequest.parse(Array(body.utf8), limits: ServiceLimits())
            Issue.record("\(body) was accepted")
        } catch {
            #expect(error.status == 400 && error.message.hasPrefix(message) && !error.message.contains("debugDescription"), "\(error.message)")
        }
    }
}

/// A running job's progress carries the time left, from the time so far and the fraction done.
struct ProgressETATests {
    @Test func runningJobsSayHowLongIsLeft() async throws {
        let folder = temporaryFolder("eta")
        let service = GenerationService(store: try SQLiteJobStore(path: "\(folder)/jobs.sqlite"), generator: nil, dataDirectory: folder)
        var job = JobRecord(id: "j", fileID: "1", request: [], createdAt: 0)
        job.summary = JobSummary(kind: "scene", prompt: "x", frames: 2, width: 64, height: 32, steps: 4)
        job.status = .running
        job.startedAt = Date().timeIntervalSince1970 - 30
        service.progressBoard.set("j", JobProgress(stage: "step 2 of 4: render", step: 2, steps: 4, fraction: 0.6))
        let object = try await NativeRoutes.jobObject(job, service: service, positions: [:])
        let eta = try #require((object["progress"] as? [String: Any])?["eta_seconds"] as? Double)
        #expect((19...21).contains(eta), "30 s for 60%: about 20 s left, not \(eta)")
        service.progressBoard.set("j", JobProgress(stage: "starting", fraction: 0.01))
        let early = try await NativeRoutes.jobObject(job, service: service, positions: [:])
        #expect((early["progress"] as? [String: Any])?["eta_seconds"] is JSONNull, "no estimate from 1%")
    }
}

/// The review's cases: a video job on a server without a video model waits without holding scenes up; a full disk is a
/// storage problem for running jobs too; a scene file asked of a video job is 404 at once; an inverted range is ignored.
struct ReviewRegressionTests {
    @Test func videoJobsWaitForAVideoModelWithoutBlockingScenes() async throws {
        let folder = temporaryFolder("video-wait")
        let store = try SQLiteJobStore(path: "\(folder)/jobs.sqlite")
        var video = JobRecord(id: "v", fileID: "1", request: VideoJobParser.normalized(
            try VideoJobParser.parse(Array(#"{"prompt": "waves"}"#.utf8), defaults: .tiny, limits: ServiceLimits())), createdAt: 1)
        video.summary = JobSummary(kind: "video", prompt: "waves", frames: 9, width: 64, height: 32, steps: 4)
        try store.insert(video)
        let service = GenerationService(store: store, generator: StubGenerator(), dataDirectory: folder)
        try await service.start()
        let (scene, _) = try await service.submit(Array(requestBody().readableBytesView))
        let finished = try #require(try await waitUntilFinished(service, scene.id))
        #expect(finished.status == .completed, "the scene behind the video ran")
        let waiting = try #require(try await service.job(id: "v"))
        #expect(waiting.status == .queued && waiting.attempts == 0, "the video waits, its attempts uncounted")
        await service.stop()
    }

    @Test func aFullDiskIsAStorageProblem() async throws {
        let folder = temporaryFolder("full-disk-probe")
        var limits = ServiceLimits()
        limits.minFreeDiskBytes = Int64.max / 2
        let service = GenerationService(
            store: try SQLiteJobStore(path: "\(folder)/jobs.sqlite"), generator: StubGenerator(), dataDirectory: folder, limits: limits)
        #expect(service.storageProblem()?.contains("MiB free") == true)
    }

    @Test func videoJobsAnswerSceneFilesWith404AndInvertedRangesAreIgnored() async throws {
        let folder = temporaryFolder("review-404")
        let service = GenerationService(store: try SQLiteJobStore(path: "\(folder)/jobs.sqlite"), generator: StubGenerator(), dataDirectory: folder)
        try await service.start()
        try await application(service).test(.router) { client in
            var job = JobRecord(id: "v", fileID: "2", request: Array(#"{"kind": "video", "prompt": "x"}"#.utf8), createdAt: 1)
            job.status = .completed
            job.summary = JobSummary(kind: "video", prompt: "x", frames: 9, width: 64, height: 32, steps: 4)
            try await service.store.insert(job)
            try await client.execute(uri: "/v1/jobs/v/artifacts/orbit.mp4", method: .get) { #expect($0.status == .notFound) }
        }
        #expect(HTTPResponses.byteRange("bytes=500-100", size: 100) == .none)
        #expect(HTTPResponses.byteRange("bytes=500-", size: 100) == .some(nil))
        await service.stop()
    }
}
