import Cameras
import FoundationEssentials
import MediaIO
import SplatCore
import SplatIO

#if canImport(Glibc)
    import Glibc
#endif

/// A validated FlashWorld request: what the generator needs.
public struct SceneRequest: Sendable {
    public var prompt: String
    /// Encoded image bytes (PNG, JPEG or WebP) from a data URL or base64; never a path.
    public var image: [UInt8]?
    public var imageIndex: Int
    public var cameras: [Camera]
    public var frames: Int
    public var width: Int
    public var height: Int
}

/// What runs a job: the FlashWorld pipeline in production, a stand-in in tests. Cancellation is cooperative.
public protocol SceneGenerator: Sendable {
    func generate(_ request: SceneRequest) async throws -> GaussianCloud
}

/// Why a request was refused: the HTTP status and a message that says what to fix.
public struct ServiceError: Error, Sendable, CustomStringConvertible {
    public var status: Int
    public var message: String
    public init(_ status: Int, _ message: String) {
        self.status = status
        self.message = message
    }
    public var description: String { message }
}

/// Parses the FlashWorld request JSON (`service-and-ui.md` §1.1) and refuses what cannot run.
public enum FlashWorldRequest {
    struct Body: Decodable {
        var image_prompt: String?
        var text_prompt: String?
        var resolution: [Int]?
        var image_index: Int?
    }

    public static func parse(_ bytes: [UInt8], limits: ServiceLimits) throws(ServiceError) -> SceneRequest {
        let body: Body
        do {
            body = try JSONDecoder().decode(Body.self, from: Data(bytes))
        } catch {
            throw ServiceError(400, "the body is not FlashWorld request JSON: \(error)")
        }
        let resolution = body.resolution ?? [24, 480, 704]
        guard resolution.count == 3, resolution.allSatisfy({ $0 > 0 }) else {
            throw ServiceError(400, "resolution must be [frames, height, width], not \(resolution)")
        }
        let (frames, height, width) = (resolution[0], resolution[1], resolution[2])
        guard frames <= limits.maxFrames, width <= limits.maxSide, height <= limits.maxSide else {
            throw ServiceError(400, "resolution \(resolution) exceeds the limits: at most \(limits.maxFrames) frames and \(limits.maxSide) pixels a side")
        }
        guard width % 32 == 0, height % 32 == 0 else { throw ServiceError(400, "width and height must be multiples of 32, not \(width)x\(height)") }
        var image: [UInt8]?
        if let prompt = body.image_prompt, !prompt.isEmpty {
            let payload = prompt.hasPrefix("data:") ? String(prompt.drop { $0 != "," }.dropFirst()) : prompt
            guard let data = Data(base64Encoded: payload) else {
                // The reference would open a server path here; Diorama never reads one.
                throw ServiceError(400, "Image decode error: image_prompt must be a data URL or base64 (server paths are not read)")
            }
            image = [UInt8](data)
        }
        let text = body.text_prompt ?? ""
        guard image != nil || !text.allSatisfy(\.isWhitespace) else { throw ServiceError(400, "No Prompts provided") }
        if let image {
            // Decoded now, as the reference preprocesses in the request: a bad image is the client's 400, not a failed job.
            do {
                _ = try ImageDecoder.decode(image, name: "image_prompt")
            } catch {
                throw ServiceError(400, "Image decode error: \(error)")
            }
        }
        let document: CameraPathDocument
        do {
            document = try CameraPathDocument(json: bytes)
        } catch {
            throw ServiceError(400, "cameras: \(error)")
        }
        let index = body.image_index ?? 0
        guard (0..<frames).contains(index) else { throw ServiceError(400, "image_index \(index) is outside the \(frames) frames") }
        let cameras: [Camera]
        do {
            cameras = try document.resolvedCameras(defaultWidth: width, defaultHeight: height)
        } catch {
            throw ServiceError(400, "cameras: \(error)")
        }
        return SceneRequest(prompt: text, image: image, imageIndex: index, cameras: cameras, frames: frames, width: width, height: height)
    }
}

public struct ServiceLimits: Sendable {
    public var maxFrames = 64
    public var maxSide = 2048
    public var maxBodyBytes = 32 << 20
    public var maxQueued = 64
    /// A job that was running when the process died is run again at most this many times in all.
    public var maxAttempts = 3
    public init() {}
}

/// The queue position FlashWorld's API reports: 1-based among queued jobs, 0 once a worker has it.
public struct QueueInfo: Sendable, Equatable {
    public var queuedCount: Int
    public var runningCount: Int
    public var position: Int
}

/// Owns the job state: accepts jobs into the durable store, runs them one at a time per GPU (`concurrency`), writes
/// their artifacts atomically, and on start re-queues jobs a crash interrupted (bounded attempts, partial files removed).
public actor GenerationService {
    let store: any JobStore
    let generator: any SceneGenerator
    public let dataDirectory: String
    public let limits: ServiceLimits
    let concurrency: Int
    var running: Set<String> = []
    var completedCount = 0
    var workers: [Task<Void, Never>] = []
    var lastFileID: Int64 = 0

    public init(store: any JobStore, generator: any SceneGenerator, dataDirectory: String, limits: ServiceLimits = ServiceLimits(), concurrency: Int = 1) {
        self.store = store
        self.generator = generator
        self.dataDirectory = dataDirectory
        self.limits = limits
        self.concurrency = max(1, concurrency)
    }

    /// Recovers interrupted jobs, then starts the workers.
    public func start() throws {
        for var job in try store.jobs(.running) {
            unlink(artifactPath(job.fileID))
            if job.attempts >= limits.maxAttempts {
                job.status = .failed
                job.error = "interrupted \(job.attempts) times; giving up"
                job.completedAt = now()
            } else {
                job.status = .queued
                job.startedAt = nil
            }
            try store.update(job)
        }
        completedCount = try store.jobs(.completed).count
        for _ in 0..<concurrency { spawnWorker() }
    }

    public func stop() {
        for worker in workers { worker.cancel() }
        workers.removeAll()
    }

    func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_REALTIME, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }

    public func artifactPath(_ fileID: String) -> String { "\(dataDirectory)/\(fileID).ply" }

    /// Accepts a request: stored before this returns, so it survives a crash.
    public func submit(_ body: [UInt8]) throws -> (JobRecord, QueueInfo) {
        _ = try FlashWorldRequest.parse(body, limits: limits)
        let queued = try store.jobs(.queued)
        guard queued.count < limits.maxQueued else {
            throw ServiceError(429, "the queue is full (\(limits.maxQueued) jobs); try again later")
        }
        var millis = Int64(now() * 1000)
        if millis <= lastFileID { millis = lastFileID + 1 }
        lastFileID = millis
        let job = JobRecord(id: UUID().uuidString.lowercased(), fileID: String(millis), request: body, createdAt: now())
        try store.insert(job)
        return (job, try queueInfo(for: job.id))
    }

    public func queueInfo(for id: String) throws -> QueueInfo {
        let queued = try store.jobs(.queued)
        let position = queued.firstIndex { $0.id == id }.map { $0 + 1 } ?? 0
        return QueueInfo(queuedCount: queued.count, runningCount: running.count, position: position)
    }

    public func job(id: String) throws -> JobRecord? { try store.job(id: id) }
    public func job(fileID: String) throws -> JobRecord? { try store.job(fileID: fileID) }

    public func status() throws -> (queued: [JobRecord], running: [String], completed: Int) {
        (try store.jobs(.queued), Array(running).sorted(), completedCount)
    }

    /// Removes an artifact and its job; returns the names removed.
    public func delete(fileID: String) throws -> [String] {
        guard var job = try store.job(fileID: fileID) else { return [] }
        var removed: [String] = []
        if unlink(artifactPath(fileID)) == 0 { removed.append("\(fileID).ply") }
        if job.status == .queued {
            job.status = .cancelled
            try store.update(job)
        } else if job.status != .running {
            try store.delete(id: job.id)
        }
        return removed
    }

    func spawnWorker() {
        workers.append(Task { [weak self] in
            while !Task.isCancelled {
                guard let self else { return }
                let ran = await self.runNext()
                if !ran { try? await Task.sleep(for: .milliseconds(50)) }
            }
        })
    }

    /// Claims the oldest queued job and runs it; false when there was none.
    func runNext() async -> Bool {
        guard var job = try? store.jobs(.queued).first else { return false }
        job.status = .running
        job.startedAt = now()
        job.attempts += 1
        guard (try? store.update(job)) != nil else { return false }
        running.insert(job.id)
        defer { running.remove(job.id) }
        do {
            let request = try FlashWorldRequest.parse(job.request, limits: limits)
            let cloud = try await generator.generate(request)
            // Written beside, renamed into place: a crash leaves no partial artifact under the final name.
            try SplatFile.write(cloud, toPath: artifactPath(job.fileID))
            job.fileSize = Int((try? InputSource(path: artifactPath(job.fileID)).size) ?? 0)
            job.status = .completed
            completedCount += 1
        } catch {
            job.status = .failed
            job.error = "\(error)"
        }
        job.completedAt = now()
        // A job deleted while it ran stays deleted.
        if let current = try? store.job(id: job.id), current.status == .running { try? store.update(job) }
        return true
    }
}
