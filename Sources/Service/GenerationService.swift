import Cameras
import FlashWorld
import FoundationEssentials
import SplatCore
import SplatIO
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The queue position FlashWorld's API reports: 1-based among queued jobs, 0 once a worker has it.
public struct QueueInfo: Sendable, Equatable {
    public var queuedCount: Int
    public var runningCount: Int
    public var position: Int
}

/// Whether the service can take work (`/health`): the model loads, a warm-up generation runs, then it is ready (or
/// busy while jobs run); a model that fails to load leaves it failed with the reason.
public enum Readiness: Sendable, Equatable {
    case loading, warmingUp, ready
    case failed(String)
}

/// Progress of running jobs, written from generator threads and read by the HTTP handlers without an actor hop.
final class ProgressBoard: Sendable {
    private let entries = Mutex<[String: JobProgress]>([:])
    func set(_ id: String, _ progress: JobProgress) { entries.withLock { $0[id] = progress } }
    func clear(_ id: String) { entries.withLock { $0[id] = nil } }
    func get(_ id: String) -> JobProgress? { entries.withLock { $0[id] } }
}

/// Owns the job state: accepts jobs into the durable store, runs at most `concurrency` at once, writes their
/// artifacts atomically, expires them after `artifactLifetime`, cancels at any point, and on start re-queues jobs a
/// crash interrupted (bounded attempts, partial files removed).
public actor GenerationService {
    let store: any JobStore
    var generator: (any SceneGenerator)?
    /// Runs `/v1/videos` jobs when the server was started with a video model.
    public private(set) var videoGenerator: (any VideoGenerator)?
    public let dataDirectory: String
    public let limits: ServiceLimits
    /// Renders the orbit MP4's frames on a GPU when one is in use (the CPU renderer otherwise).
    public let videoFrames: SceneVideo.FrameSource?
    public let concurrency: Int
    /// Seconds a finished job's artifacts are kept; nil keeps them.
    public let artifactLifetime: Double?
    public private(set) var readiness: Readiness
    public private(set) var modelName = ""
    nonisolated let progressBoard = ProgressBoard()
    /// Set when the process begins to stop: waits and event streams end so the server can exit.
    let stopping = Atomic<Bool>(false)
    /// The last write probe of the data folder: when, and what was wrong.
    let storageProbe = Mutex<(checkedAt: Double, problem: String?)>((-10, nil))
    public let metrics = ServiceMetrics()
    /// Running jobs by id: a way to cancel each (scene and video jobs alike).
    var running: [String: RunningJob] = [:]
    var completedCount = 0
    var workers: [Task<Void, Never>] = []
    var lastFileID: Int64 = 0
    var waiters: [CheckedContinuation<Void, Never>] = []
    var conversions: [String: Task<Void, any Error>] = [:]
    /// Background conversions that failed, by target, until a client is told.
    var conversionFailures: [String: String] = [:]
    /// Measured seconds per million output pixels (frames × width × height) of finished jobs, by kind, for the
    /// admission estimate (a moving average; nil until a job of that kind finished here).
    var secondsPerMegapixel: [String: Double] = [:]
    /// One line per job event (queued, started, finished, recovered, expired) for the operator's log.
    let log: @Sendable (String) -> Void

    /// A service that starts loading; `install(_:name:)` makes it ready once a generator exists.
    public init(
        store: any JobStore, generator: (any SceneGenerator)? = nil, dataDirectory: String, limits: ServiceLimits = ServiceLimits(),
        concurrency: Int = 1, artifactLifetime: Double? = nil, videoFrames: SceneVideo.FrameSource? = nil,
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.log = log
        self.videoFrames = videoFrames
        self.store = store
        self.generator = generator
        self.dataDirectory = dataDirectory
        self.limits = limits
        self.concurrency = max(1, concurrency)
        self.artifactLifetime = artifactLifetime.flatMap { $0 > 0 ? $0 : nil }
        self.readiness = generator == nil ? .loading : .ready
    }

    /// Recovers interrupted jobs, then starts the workers (they wait until a generator is installed).
    public func start() throws {
        sweepTemporaryFiles()
        lastFileID = try store.largestFileID()
        for var job in try store.jobs(.running, completedBefore: nil) {
            removeArtifacts(job.fileID)
            if job.attempts >= limits.maxAttempts {
                job.status = .failed
                job.error = "interrupted \(job.attempts) times; giving up"
                job.completedAt = now()
                log("job \(job.id) failed: interrupted \(job.attempts) times")
            } else {
                job.status = .queued
                job.startedAt = nil
                log("job \(job.id) was running when the process stopped; queued again (attempt \(job.attempts + 1) of \(limits.maxAttempts))")
            }
            try store.update(job)
        }
        completedCount = try store.count(.completed)
        try expireArtifacts()
        try purgeFinishedJobs()
        for _ in 0..<concurrency { spawnWorker() }
        let shortest = [artifactLifetime, limits.jobRetention > 0 ? limits.jobRetention : nil].compactMap { $0 }.min()
        if let shortest {
            workers.append(Task { [weak self] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(min(60, max(0.05, shortest / 4))))
                    try? await self?.expireArtifacts()
                    try? await self?.purgeFinishedJobs()
                }
            })
        }
    }

    /// Ends the synchronous waits and event streams and stops claiming jobs, so a graceful shutdown is not held up.
    public nonisolated func beginShutdown() { stopping.store(true, ordering: .relaxed) }
    public nonisolated var isStopping: Bool { stopping.load(ordering: .relaxed) }

    /// At a graceful exit, running jobs go back to the queue as they were (the attempt not counted: a deploy is not a
    /// crash) and their partial files are removed.
    public func requeueRunningJobs() {
        beginShutdown()
        for (id, task) in running {
            task.cancel()
            guard var job = try? store.job(id: id), job.status == .running else { continue }
            job.status = .queued
            job.startedAt = nil
            job.attempts = max(0, job.attempts - 1)
            try? store.update(job)
        }
    }

    /// The names in the data folder.
    nonisolated func dataFileNames() -> [String] {
        guard let directory = opendir(dataDirectory) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            names.append(withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) })
        }
        return names
    }

    /// Files a killed process left half-written: the atomic writers' hidden temporaries and partial videos.
    func sweepTemporaryFiles() {
        for name in dataFileNames() where (name.hasPrefix(".") && name.hasSuffix(".tmp")) || name.contains(".partial-") {
            unlink("\(dataDirectory)/\(name)")
        }
    }

    public func stop() {
        for worker in workers { worker.cancel() }
        workers.removeAll()
        for task in running.values { task.cancel() }
    }

    /// Warms the generator up on a small request, then takes jobs; a failure leaves the service failed.
    public func install(_ generator: any SceneGenerator, name: String, warmUp: SceneRequest?) async {
        modelName = name
        if let warmUp {
            readiness = .warmingUp
            do {
                _ = try await generator.generate(warmUp, seed: 42, progress: { _ in })
            } catch {
                readiness = .failed("the warm-up generation failed: \(error)")
                return
            }
        }
        self.generator = generator
        readiness = .ready
    }

    public func failed(_ reason: String) { readiness = .failed(reason) }

    /// Makes video jobs possible (`/v1/videos`); without it they are refused with 503.
    public func installVideo(_ generator: any VideoGenerator) { videoGenerator = generator }

    func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_REALTIME, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }

    // MARK: Artifacts

    /// The artifact formats a finished job offers, by the file name the API serves. `flashWorldSPZ` is the SPZ
    /// FlashWorld's own server writes (what its web client downloads): opacity at least 0.00025, positions in camera
    /// 0's frame with no frame recorded, as Niantic's library writes them by default.
    public enum Artifact: String, CaseIterable, Sendable {
        case ply = "scene.ply", spz = "scene.spz", splat = "scene.splat", mp4 = "orbit.mp4", flashWorldSPZ = "flashworld.spz"
        /// A video job's MP4, written by the job itself.
        case video = "video.mp4"
        /// The ones `/v1` lists for a scene.
        static let listed: [Artifact] = [.ply, .spz, .splat, .mp4]
        var fileExtension: String { String(rawValue.split(separator: ".").last!) }
        /// What follows the file id in the data folder.
        var fileSuffix: String {
            switch self {
            case .flashWorldSPZ: "fw.spz"
            case .video: "video.mp4"
            default: fileExtension
            }
        }
    }

    /// The PLY is written when the job finishes; the others are made from it on first request.
    public nonisolated func artifactPath(_ fileID: String, _ artifact: Artifact = .ply) -> String {
        "\(dataDirectory)/\(fileID).\(artifact.fileSuffix)"
    }

    func removeArtifacts(_ fileID: String) {
        for artifact in Artifact.allCases { unlink(artifactPath(fileID, artifact)) }
    }

    /// Makes `target` with `make` on a Dispatch thread, once: callers asking for it meanwhile wait for the same work.
    func converting(_ target: String, _ make: @escaping @Sendable () throws -> Void) async throws {
        if let inFlight = conversions[target] { return try await inFlight.value }
        let work = Task { try await BlockingWork.run(make) }
        conversions[target] = work
        defer { conversions[target] = nil }
        try await work.value
        // A conversion adds a file: the budget may now be passed (the job being read is kept).
        let fileID = String(target.split(separator: "/").last?.split(separator: ".").first ?? "")
        try? enforceArtifactBudget(sparing: fileID)
    }

    func recordConversionFailure(_ target: String, _ reason: String) {
        if conversionFailures.count > 1000 { conversionFailures.removeAll() }
        conversionFailures[target] = reason
    }

    func takeConversionFailure(_ target: String) -> String? { conversionFailures.removeValue(forKey: target) }

    /// Finished jobs older than the lifetime lose their files and read as expired.
    public func expireArtifacts() throws {
        guard let lifetime = artifactLifetime else { return }
        let cutoff = now() - lifetime
        for var job in try store.jobs(.completed, completedBefore: cutoff) {
            removeArtifacts(job.fileID)
            job.status = .expired
            try store.update(job)
            completedCount -= 1
            log("job \(job.id) expired; its files were removed")
        }
    }

    /// The bytes of every job file in the data folder (finished scenes, conversions, videos).
    nonisolated func artifactBytes() -> Int64 {
        let suffixes = Artifact.allCases.map { "." + $0.fileSuffix }
        return dataFileNames().filter { name in suffixes.contains { name.hasSuffix($0) } }.reduce(Int64(0)) { total, name in
            var info = stat()
            return total + (stat("\(dataDirectory)/\(name)", &info) == 0 ? Int64(info.st_size) : 0)
        }
    }

    nonisolated func fileBytes(_ fileID: String) -> Int64 {
        Artifact.allCases.reduce(Int64(0)) { sum, artifact in
            var info = stat()
            return sum + (stat(artifactPath(fileID, artifact), &info) == 0 ? Int64(info.st_size) : 0)
        }
    }

    /// Keeps the job files within `artifactBudgetBytes`: the completed jobs that finished first expire first (their
    /// files removed, their rows kept as expired), never the one `sparing` (just finished or just asked for).
    public func enforceArtifactBudget(sparing fileID: String? = nil) throws {
        let budget = limits.artifactBudgetBytes
        guard budget > 0 else { return }
        var total = artifactBytes()
        guard total > budget else { return }
        let oldestFirst = try store.jobs(.completed, completedBefore: nil).sorted { ($0.completedAt ?? 0) < ($1.completedAt ?? 0) }
        for var job in oldestFirst where total > budget && job.fileID != fileID {
            total -= fileBytes(job.fileID)
            removeArtifacts(job.fileID)
            job.status = .expired
            try store.update(job)
            completedCount -= 1
            log("job \(job.id) expired early: the job files passed the \(budget >> 20) MiB artifact budget; its files were removed")
        }
    }

    /// Failed, cancelled and expired jobs older than the retention leave the store (their files went already), so the
    /// database does not grow without bound.
    public func purgeFinishedJobs(now current: Double? = nil) throws {
        guard limits.jobRetention > 0 else { return }
        let removed = try store.purgeFinished(before: (current ?? now()) - limits.jobRetention)
        if removed > 0 { log("purged \(removed) finished job\(removed == 1 ? "" : "s") older than the retention") }
    }

    /// Why the data folder cannot be written now (nil when it can): a probe file is created and removed, at most
    /// once a second. A folder that cannot take files fails every job, so submissions stop and /health says why.
    public nonisolated func storageProblem() -> String? {
        storageProbe.withLock { probe in
            let current = monotonicNow()
            if current - probe.checkedAt < 1 { return probe.problem }
            let path = "\(dataDirectory)/.write-probe-\(getpid()).tmp"
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            if fd >= 0 {
                close(fd)
                unlink(path)
                // A full disk still takes an empty file: count it as unwritable for artifacts.
                if let free = freeDiskBytes(), free < limits.minFreeDiskBytes {
                    probe.problem = "the data folder's disk has \(free >> 20) MiB free, under the \(limits.minFreeDiskBytes >> 20) MiB kept"
                } else {
                    probe.problem = nil
                }
            } else {
                probe.problem = "the data folder cannot be written (\(String(cString: strerror(errno))))"
            }
            probe.checkedAt = current
            return probe.problem
        }
    }

    /// Bytes free on the data folder's filesystem (nil when it cannot be read).
    nonisolated func freeDiskBytes() -> Int64? {
        var info = statvfs()
        guard statvfs(dataDirectory, &info) == 0 else { return nil }
        return Int64(info.f_bavail) * Int64(info.f_frsize)
    }

    // MARK: Jobs

    /// Accepts a request: checked (image decoding included) off the actor, then stored before this returns, so it
    /// survives a crash.
    public nonisolated func submit(_ body: [UInt8], strict: Bool = false) async throws -> (JobRecord, QueueInfo) {
        // Decoding the image and checking the cameras cost CPU: off the HTTP handlers, a bounded number at a time.
        let limits = self.limits
        let request = try await BlockingWork.parsing { () throws(ServiceError) in try FlashWorldRequest.parse(body, limits: limits, strict: strict) }
        let summary = JobSummary(kind: "scene", prompt: request.prompt, frames: request.frames, width: request.width, height: request.height, steps: 4)
        return try await enqueue(FlashWorldRequest.normalized(body) ?? body, seed: request.seed, summary: summary)
    }

    /// Accepts a video request (`/v1/videos`): parsed strictly against the video model's defaults, stored normalised.
    public nonisolated func submitVideo(_ body: [UInt8]) async throws -> (JobRecord, QueueInfo) {
        guard let defaults = await videoGenerator?.defaults else {
            throw ServiceError(503, "this server has no video model; start it with --video-model tiny-video or a Wan2.2-TI2V-5B folder")
        }
        // JSON and base64 decoding off the actor, like a scene's.
        let limits = self.limits
        let request = try await BlockingWork.parsing { () throws(ServiceError) in try VideoJobParser.parse(body, defaults: defaults, limits: limits) }
        let summary = JobSummary(
            kind: "video", prompt: request.prompt, frames: request.frames, width: request.width, height: request.height, steps: request.steps)
        return try await enqueue(VideoJobParser.normalized(request), seed: request.seed, summary: summary)
    }

    func enqueue(_ body: [UInt8], seed requested: Int64?, summary: JobSummary) throws -> (JobRecord, QueueInfo) {
        if case .failed(let reason) = readiness { throw ServiceError(503, "the service cannot generate: \(reason)") }
        // A job this server would take too long for is refused now, with the estimate and the limit.
        let megapixels = Double(summary.frames * summary.width * summary.height) / 1e6 * Double(max(summary.steps, 1)) / 4
        if limits.maxJobSeconds > 0, let rate = secondsPerMegapixel[summary.kind], rate * megapixels > limits.maxJobSeconds {
            metrics.count("rejected_too_costly")
            throw ServiceError(
                413, "this \(summary.kind) would take about \(Int(rate * megapixels)) s on this server, over max_job_seconds (\(Int(limits.maxJobSeconds)) s); ask for fewer frames, steps or pixels")
        }
        if let free = freeDiskBytes(), free < limits.minFreeDiskBytes {
            metrics.count("rejected_disk_full")
            throw ServiceError(507, "the server's data disk has \(free >> 20) MiB free, under the \(limits.minFreeDiskBytes >> 20) MiB it keeps; try again later")
        }
        // A job that cannot write its files would fail later and lose the work: refuse it now.
        if let problem = storageProblem() {
            metrics.count("rejected_storage")
            throw ServiceError(503, "\(problem); jobs are refused until it can, and queued ones wait")
        }
        guard try store.count(.queued) < limits.maxQueued else {
            metrics.count("rejected_queue_full")
            throw ServiceError(429, "the queue is full (\(limits.maxQueued) jobs); try again later")
        }
        var millis = Int64(now() * 1000)
        if millis <= lastFileID { millis = lastFileID + 1 }
        lastFileID = millis
        let seed = requested ?? Int64.random(in: 0..<(1 << 31))
        // The millisecond keeps ids in order; twelve random digits make a file id unguessable (FlashWorld's routes
        // take digits only, so it stays digits).
        let suffix = String(UInt64.random(in: 0..<1_000_000_000_000))
        let fileID = String(millis) + String(repeating: "0", count: 12 - suffix.count) + suffix
        var job = JobRecord(id: UUID().uuidString.lowercased(), fileID: fileID, request: body, createdAt: now(), seed: seed)
        job.summary = summary
        try store.insert(job)
        metrics.count("submitted")
        log("job \(job.id) queued (file \(job.fileID), seed \(seed))")
        wakeWorkers()
        return (job, try queueInfo(for: job.id))
    }

    public func queueInfo(for id: String) throws -> QueueInfo {
        let queued = try store.queuedIDs()
        let position = queued.firstIndex(of: id).map { $0 + 1 } ?? 0
        return QueueInfo(queuedCount: queued.count, runningCount: running.count, position: position)
    }

    /// A job and its place in the queue read together, so a job never reads as queued at position 0.
    public func jobWithQueue(id: String) throws -> (JobRecord, QueueInfo)? {
        guard let job = try store.jobWithoutRequest(id: id) else { return nil }
        return (job, try queueInfo(for: id))
    }

    /// Every queued job's 1-based position, from one read of the queue (listings).
    public func queuePositions() throws -> [String: Int] {
        Dictionary(uniqueKeysWithValues: try store.queuedIDs().enumerated().map { ($1, $0 + 1) })
    }

    public func job(id: String) throws -> JobRecord? { try store.job(id: id) }
    public func job(fileID: String) throws -> JobRecord? { try store.job(fileID: fileID) }
    public func recentJobs(status: JobRecord.Status?, limit: Int) throws -> [JobRecord] { try store.recentJobs(status: status, limit: limit) }
    public nonisolated func progress(of id: String) -> JobProgress? { progressBoard.get(id) }

    public func status() throws -> (queued: [String], running: [String], completed: Int) {
        (try store.queuedIDs(), running.keys.sorted(), completedCount)
    }

    /// Stops a job wherever it is: a queued one never runs, a running one stops at its next stage. Finished jobs
    /// cannot be cancelled (409).
    public func cancel(id: String) throws -> JobRecord {
        guard var job = try store.job(id: id) else { throw ServiceError(404, "no job \(id)") }
        guard !job.status.isFinished else { throw ServiceError(409, "job \(id) is already \(job.status.rawValue)") }
        running[id]?.cancel()
        job.status = .cancelled
        job.completedAt = now()
        job.error = "cancelled"
        try store.update(job)
        metrics.count("cancelled")
        log("job \(id) cancelled")
        return job
    }

    /// Cancels a job if it is active, removes its artifacts and forgets it.
    public func deleteJob(id: String) throws {
        guard let job = try store.job(id: id) else { throw ServiceError(404, "no job \(id)") }
        if !job.status.isFinished { _ = try cancel(id: id) }
        removeArtifacts(job.fileID)
        if job.status == .completed { completedCount -= 1 }
        try store.delete(id: id)
    }

    /// FlashWorld's delete: removes the artifact; a queued job is cancelled, a finished one forgotten. Returns the
    /// names removed.
    public func delete(fileID: String) throws -> [String] {
        guard var job = try store.job(fileID: fileID) else { return [] }
        var removed: [String] = []
        for artifact in Artifact.allCases where unlink(artifactPath(fileID, artifact)) == 0 {
            removed.append("\(fileID).\(artifact.fileSuffix)")
        }
        if !job.status.isFinished {
            // A deleted scene must not appear later: the job stops wherever it is.
            job = try cancel(id: job.id)
        } else {
            if job.status == .completed { completedCount -= 1 }
            try store.delete(id: job.id)
        }
        return removed
    }

    /// Waits until the job finishes (or `timeout` passes), for the synchronous image-to-3D endpoints.
    public func finished(id: String, timeout: Double) async throws -> JobRecord? {
        let deadline = now() + timeout
        while now() < deadline {
            if isStopping { throw ServiceError(503, "the server is shutting down; job \(id) is kept and runs after the restart") }
            // Running or queued is known without reading the stored request.
            if running[id] == nil, try !store.queuedIDs().contains(id) {
                if let job = try store.jobWithoutRequest(id: id), job.status.isFinished { return job }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        return nil
    }

    // MARK: Workers

    func spawnWorker() {
        workers.append(Task { [weak self] in
            while !Task.isCancelled {
                guard let self else { return }
                if await !self.runNext() { await self.idle() }
            }
        })
    }

    /// Parks an idle worker until a job arrives (or a short while passes, so a store shared with other hosts is seen).
    func idle() async {
        await withCheckedContinuation { continuation in
            waiters.append(continuation)
            Task { [weak self] in
                try? await Task.sleep(for: .milliseconds(500))
                await self?.wakeWorkers()
            }
        }
    }

    func wakeWorkers() {
        let parked = waiters
        waiters.removeAll()
        for continuation in parked { continuation.resume() }
    }

    /// Claims the oldest queued job and runs it; false when there was none (or no generator yet).
    func runNext() async -> Bool {
        // Queued jobs wait while the data folder cannot take their files, rather than failing for good.
        // Video jobs are only taken by a server with a video model; scene jobs behind them are not held up.
        guard !isStopping, let generator, readiness == .ready, storageProblem() == nil,
            var job = try? store.claimNext(startedAt: now(), includingVideo: videoGenerator != nil)
        else {
            return false
        }
        let id = job.id
        let board = progressBoard
        board.set(id, JobProgress(stage: "starting", fraction: 0))
        if VideoJobParser.isVideo(job.request) {
            await runVideo(&job)
            return true
        }
        let request: SceneRequest
        do {
            request = try FlashWorldRequest.parse(job.request, limits: limits)
        } catch {
            finish(&job, error: "\(error)")
            return true
        }
        log("job \(id) started (attempt \(job.attempts))")
        let seed = UInt64(bitPattern: job.seed)
        let task = Task { try await generator.generate(request, seed: seed, progress: { board.set(id, $0) }) }
        running[id] = RunningJob(task)
        let began = now()
        do {
            let scene = try await task.value
            board.set(id, JobProgress(stage: "writing", fraction: 0.99))
            let path = artifactPath(job.fileID)
            // Written off the actor beside the final name and renamed into place: a crash leaves no partial artifact.
            // The PLY, and the SPZ most clients take (so its first download is a plain read): both with the job.
            let spz = artifactPath(job.fileID, .spz)
            try await BlockingWork.run {
                try SplatFile.write(scene.cloud, toPath: path)
                try SplatFile.write(scene.cloud, toPath: spz)
            }
            job.fileSize = Int((try? InputSource(path: path).size) ?? 0)
            job.gaussians = scene.cloud.count
            job.timings = JSONText.encode(scene.timings.map { [$0.stage, $0.seconds] as [Any] })
            job.status = .completed
            metrics.observeGeneration(seconds: now() - began)
            finish(&job, error: nil)
        } catch {
            finish(&job, error: task.isCancelled ? "cancelled" : "\(error)")
        }
        return true
    }

    /// A video job: the generator writes the MP4 beside its final name and renames it into place.
    func runVideo(_ job: inout JobRecord) async {
        let (id, board) = (job.id, progressBoard)
        guard let videoGenerator else {
            // No video model (yet: it may still be loading, or the server was restarted without one): the job waits
            // in the queue, its attempt not counted, rather than failing. (claimNext skips video jobs until then.)
            running[id] = nil
            progressBoard.clear(id)
            job.status = .queued
            job.startedAt = nil
            job.attempts = max(0, job.attempts - 1)
            try? store.update(job)
            return
        }
        let request: VideoJobRequest
        do {
            request = try VideoJobParser.parse(job.request, defaults: videoGenerator.defaults, limits: limits)
        } catch {
            finish(&job, error: "\(error)")
            return
        }
        log("job \(id) started: video (attempt \(job.attempts))")
        let (seed, path) = (UInt64(bitPattern: job.seed), artifactPath(job.fileID, .video))
        let task = Task { try await videoGenerator.generate(request, seed: seed, to: path, progress: { board.set(id, $0) }) }
        running[id] = RunningJob(task)
        let began = now()
        do {
            let timings = try await task.value
            job.fileSize = Int((try? InputSource(path: path).size) ?? 0)
            job.timings = JSONText.encode(timings.map { [$0.stage, $0.seconds] as [Any] })
            job.status = .completed
            metrics.observeGeneration(seconds: now() - began)
            finish(&job, error: nil)
        } catch {
            finish(&job, error: task.isCancelled ? "cancelled" : "\(error)")
        }
    }

    /// Folds a finished job's duration into its kind's rate (seconds per four-step megapixel).
    func recordDuration(_ seconds: Double, of summary: JobSummary) {
        let megapixels = Double(summary.frames * summary.width * summary.height) / 1e6 * Double(max(summary.steps, 1)) / 4
        // Tiny jobs are mostly fixed overhead and would overstate the rate of large ones.
        guard megapixels >= 0.1, seconds > 0 else { return }
        let rate = seconds / megapixels
        secondsPerMegapixel[summary.kind] = secondsPerMegapixel[summary.kind].map { 0.7 * $0 + 0.3 * rate } ?? rate
    }

    func finish(_ job: inout JobRecord, error: String?) {
        running[job.id] = nil
        progressBoard.clear(job.id)
        job.completedAt = now()
        // A job that failed because the data folder stopped taking files goes back to the queue (its attempt counted)
        // and runs once the folder works again.
        if error != nil, error != "cancelled", storageProblem() != nil, job.attempts < limits.maxAttempts,
            let current = try? store.job(id: job.id), current.status == .running, current.startedAt == job.startedAt
        {
            removeArtifacts(job.fileID)
            job.status = .queued
            job.startedAt = nil
            job.completedAt = nil
            try? store.update(job)
            log("job \(job.id) could not write its files; queued again (attempt \(job.attempts) of \(limits.maxAttempts))")
            return
        }
        if let error {
            job.status = .failed
            job.error = error
        }
        // A job cancelled, deleted or re-queued while it ran keeps that outcome and its files go, unless another run
        // owns it now (a later claim, told apart by its start time), whose files these are.
        let current = try? store.job(id: job.id)
        guard let current, current.status == .running, current.startedAt == job.startedAt else {
            if current?.status != .running { removeArtifacts(job.fileID) }
            return
        }
        if job.status == .completed {
            completedCount += 1
            recordDuration((job.completedAt ?? 0) - (job.startedAt ?? 0), of: job.summary)
        }
        metrics.count(job.status == .completed ? "completed" : "failed")
        let tenths = Int(((job.completedAt ?? 0) - (job.startedAt ?? 0)) * 10)
        let seconds = "\(tenths / 10).\(tenths % 10)"
        log(job.status == .completed
            ? "job \(job.id) completed in \(seconds) s: \(job.gaussians.map { "\($0) Gaussians" } ?? "a video"), \(job.fileSize ?? 0) bytes"
            : "job \(job.id) failed after \(seconds) s: \(job.error ?? "")")
        try? store.update(job)
        if job.status == .completed { try? enforceArtifactBudget(sparing: job.fileID) }
    }
}

/// A running job's handle: enough to cancel it, whatever it produces.
struct RunningJob: Sendable {
    let cancel: @Sendable () -> Void
    init<T>(_ task: Task<T, any Error>) { cancel = { task.cancel() } }
}

/// Seconds on the monotonic clock.
func monotonicNow() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}
