import Cameras
import EngineCore
import FlashWorld
import FoundationEssentials
import SplatCore
import SplatIO
import Synchronization
import Video

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
    /// When each job's progress was last told to the other processes sharing the store.
    private let announced = Mutex<[String: Double]>([:])
    func set(_ id: String, _ progress: JobProgress) { entries.withLock { $0[id] = progress } }
    /// Progress another process announced: kept for reading here, bounded since nobody here sees those jobs end.
    func setRemote(_ id: String, _ progress: JobProgress) {
        entries.withLock {
            if $0.count > 10_000 { $0.removeAll() }
            $0[id] = progress
        }
    }
    /// Whether `id`'s progress is due to be announced again: at most four times a second, and always when done.
    func isDue(_ id: String, _ progress: JobProgress) -> Bool {
        let now = monotonicNow()
        return announced.withLock {
            guard progress.fraction >= 1 || now - ($0[id] ?? 0) >= 0.25 else { return false }
            $0[id] = now
            return true
        }
    }
    func clear(_ id: String) {
        entries.withLock { $0[id] = nil }
        announced.withLock { $0[id] = nil }
    }
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
    /// Voxels along the longest side of a scene's `scene.glb` grid.
    public let meshResolution: Int
    public let concurrency: Int
    /// Whether this process answers clients, runs jobs, or both (`--role`).
    public nonisolated let role: ServiceRole
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
    /// Jobs this process runs, by id: the claim and a way to cancel each (scene and video jobs alike).
    var running: [String: RunningJob] = [:]
    /// Who this process is in the store's leases: host, process and a random part, so a restarted process is new.
    public nonisolated let workerID: String
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
        concurrency: Int = 1, artifactLifetime: Double? = nil, videoFrames: SceneVideo.FrameSource? = nil, role: ServiceRole = .all,
        meshResolution: Int = 128, log: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.role = role
        self.meshResolution = min(max(meshResolution, 16), 1024)
        self.log = log
        self.videoFrames = videoFrames
        self.store = store
        self.generator = generator
        self.dataDirectory = dataDirectory
        self.limits = limits
        self.concurrency = max(1, concurrency)
        self.artifactLifetime = artifactLifetime.flatMap { $0 > 0 ? $0 : nil }
        self.readiness = generator == nil ? .loading : .ready
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, host.count - 1)
        let name = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        self.workerID = "\(name):\(getpid()):\(UUID().uuidString.prefix(8).lowercased())"
    }

    /// Recovers interrupted jobs, then starts the workers (they wait until a generator is installed) and the heartbeat
    /// that keeps their leases and takes back jobs whose workers vanished.
    public func start() async throws {
        sweepTemporaryFiles()
        lastFileID = try await store.largestFileID()
        try await sweepOrphanedExtensionBases()
        // One host owns an unshared store: whatever it shows running, this process's crash interrupted.
        if !store.isShared { try await reclaimInterrupted(everyRunning: true) }
        try await expireArtifacts()
        try await purgeFinishedJobs()
        if role != .api { for _ in 0..<concurrency { spawnWorker() } }
        if let events = store.events() {
            workers.append(Task { [weak self] in
                for await event in events { await self?.handle(event) }
            })
        }
        workers.append(Task { [weak self] in
            while !Task.isCancelled {
                guard let interval = self?.limits.leaseSeconds else { return }
                try? await Task.sleep(for: .seconds(max(0.05, interval / 3)))
                await self?.heartbeat()
            }
        })
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
    /// crash), unless their claim was lost meanwhile.
    public func requeueRunningJobs() async {
        beginShutdown()
        for (_, run) in running {
            run.cancel()
            await handBack(run.claim)
        }
    }

    /// Puts a claimed job back in the queue as it was, its attempt not counted (not the job's failure: a deploy, a
    /// broken device, a missing video model), unless the claim was lost meanwhile.
    func handBack(_ claim: JobRecord) async {
        var job = claim
        job.status = .queued
        job.startedAt = nil
        job.attempts = max(0, job.attempts - 1)
        (job.worker, job.leaseExpiresAt) = (nil, nil)
        _ = try? await store.settle(job, publishing: {})
    }

    /// What another process sharing the store announced.
    func handle(_ event: StoreEvent) {
        switch event {
        case .queued:
            wakeWorkers()
        case .cancelled(let id):
            guard running[id]?.lost == false else { return }
            running[id]?.lost = true
            running[id]?.cancel()
            log("job \(id) was cancelled or deleted on another node; its run here stops")
        case .progress(let id, let stage, let step, let steps, let fraction):
            if running[id] == nil { progressBoard.setRemote(id, JobProgress(stage: stage, step: step, steps: steps, fraction: fraction)) }
        }
    }

    /// Tells the other processes sharing the store, without holding up the caller.
    nonisolated func announce(_ event: StoreEvent) {
        guard store.isShared else { return }
        let store = self.store
        Task { try? await store.announce(event) }
    }

    /// Where a running job's progress goes: this process's board, and the other processes' through the store.
    nonisolated func progressSink(for id: String) -> @Sendable (JobProgress) -> Void {
        let board = progressBoard
        return { [weak self] progress in
            board.set(id, progress)
            if board.isDue(id, progress) {
                self?.announce(.progress(id: id, stage: progress.stage, step: progress.step, steps: progress.steps, fraction: progress.fraction))
            }
        }
    }

    /// Renews this process's leases (stopping the runs whose claim was lost: cancelled, deleted or taken back on
    /// another host) and takes back other workers' jobs whose leases lapsed.
    func heartbeat() async {
        let claims = running.filter { !$0.value.lost }.map { (id: $0.key, fence: $0.value.claim.fence) }
        if !claims.isEmpty, let lost = try? await store.renewLeases(claims, until: now() + limits.leaseSeconds) {
            for id in lost where running[id]?.lost == false {
                running[id]?.lost = true
                running[id]?.cancel()
                log("job \(id) was cancelled, deleted or taken back elsewhere; its run here stops")
            }
        }
        try? await reclaimInterrupted(everyRunning: false)
    }

    /// Jobs whose worker stopped without finishing them (a crash here, or a lapsed lease anywhere): queued again with
    /// their partial files removed, or failed after `maxAttempts`.
    func reclaimInterrupted(everyRunning: Bool) async throws {
        let reclaimed = try await store.reclaimLapsed(
            at: now(), everyRunning: everyRunning, maxAttempts: limits.maxAttempts, discard: { [self] in removeArtifacts($0.fileID) })
        for job in reclaimed {
            let cause = everyRunning ? "was running when the process stopped" : "lost its worker (its lease lapsed)"
            log(job.status == .failed
                ? "job \(job.id) failed: interrupted \(job.attempts) times"
                : "job \(job.id) \(cause); queued again (attempt \(job.attempts + 1) of \(limits.maxAttempts))")
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

    /// Files a killed process left half-written: the atomic writers' hidden temporaries and partial videos. In a
    /// folder other hosts share, only those a day old (never a live worker's).
    func sweepTemporaryFiles() {
        let current = now()
        for name in dataFileNames() where (name.hasPrefix(".") && name.hasSuffix(".tmp")) || name.contains(".partial-") {
            var info = stat()
            let path = "\(dataDirectory)/\(name)"
            if store.isShared, stat(path, &info) != 0 || current - Double(info.st_mtim.tv_sec) < 24 * 3600 { continue }
            unlink(path)
        }
    }

    /// A growing job's base lives while the job is queued or running; one left by a crash between its link and its
    /// job's insert, or by a job that finished elsewhere, goes. In a shared folder only day-old ones are looked at.
    func sweepOrphanedExtensionBases() async throws {
        let suffix = "." + Artifact.extensionBase.fileSuffix
        let current = now()
        for name in dataFileNames() where name.hasSuffix(suffix) && !name.hasPrefix(".") {
            let path = "\(dataDirectory)/\(name)"
            var info = stat()
            if store.isShared, stat(path, &info) != 0 || current - Double(info.st_mtim.tv_sec) < 24 * 3600 { continue }
            let fileID = String(name.dropLast(suffix.count))
            if let job = try await store.job(fileID: fileID), !job.status.isFinished { continue }
            unlink(path)
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

    /// An API node queues jobs for the workers that share its store: it is ready without loading a model.
    public func acceptJobsForWorkers(modelName name: String) {
        modelName = name
        readiness = .ready
    }

    /// How many jobs this process runs now.
    public var runningHere: Int { running.count }

    /// Makes video jobs possible (`/v1/videos`); without it they are refused with 503.
    public func installVideo(_ generator: any VideoGenerator) { videoGenerator = generator }

    /// The video model an API node takes jobs for (its workers run them), known by name and defaults only.
    var videoForWorkers: (name: String, defaults: VideoDefaults)?

    /// An API node accepts video jobs checked against `defaults`; workers with the model run them.
    public func acceptVideoJobsForWorkers(modelName name: String, defaults: VideoDefaults) { videoForWorkers = (name, defaults) }

    /// The video model jobs are taken for here (run here, or by the workers sharing the store): name and defaults.
    public var videoOffer: (name: String, defaults: VideoDefaults)? {
        videoGenerator.map { ($0.name, $0.defaults) } ?? videoForWorkers
    }

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
        /// The scene as a coloured triangle mesh (binary glTF, `diorama mesh`'s defaults at a service's grid).
        case glb = "scene.glb"
        /// A closed, decimated mesh without colours for physics (`diorama mesh --collider`'s defaults).
        case collider = "collider.glb"
        /// An equirectangular 360° view from where the scene was generated (`diorama render --panorama`).
        case panorama = "panorama.png"
        /// A video job's MP4, written by the job itself.
        case video = "video.mp4"
        /// The scene a growing job starts from, linked from its parent's PLY when the job is queued; never served.
        case extensionBase = "base.ply"
        /// The ones `/v1` lists for a scene.
        static let listed: [Artifact] = [.ply, .spz, .splat, .mp4, .glb, .collider, .panorama]
        /// Made from the PLY on first request.
        var isMadeOnRequest: Bool { [.splat, .mp4, .glb, .collider, .panorama].contains(self) }
        var fileExtension: String { String(rawValue.split(separator: ".").last!) }
        /// Its key among a `/v1` job's artifact links: the extension, or the name where two share one.
        var linkKey: String {
            switch self {
            case .collider: "collider"
            case .panorama: "panorama"
            default: fileExtension
            }
        }
        /// What follows the file id in the data folder.
        var fileSuffix: String {
            switch self {
            case .flashWorldSPZ: "fw.spz"
            case .video, .collider, .panorama, .extensionBase: rawValue
            default: fileExtension
            }
        }
    }

    /// The PLY is written when the job finishes; the others are made from it on first request.
    public nonisolated func artifactPath(_ fileID: String, _ artifact: Artifact = .ply) -> String {
        "\(dataDirectory)/\(fileID).\(artifact.fileSuffix)"
    }

    nonisolated func removeArtifacts(_ fileID: String) {
        for artifact in Artifact.allCases { unlink(artifactPath(fileID, artifact)) }
    }

    /// Makes `target` with `make` on a Dispatch thread, once: callers asking for it meanwhile wait for the same work.
    func converting(_ target: String, _ make: @escaping @Sendable () throws -> Void) async throws {
        if let inFlight = conversions[target] { return try await inFlight.value }
        // Once across the nodes sharing the store too: one converts, the others wait and find its file.
        let (store, name) = (self.store, "convert \(target.split(separator: "/").last ?? "")")
        let work = Task {
            try await store.exclusively(name) {
                if access(target, R_OK) == 0 { return }
                try await BlockingWork.run(make)
            }
        }
        conversions[target] = work
        defer { conversions[target] = nil }
        try await work.value
        // A conversion adds a file: the budget may now be passed (the job being read is kept).
        let fileID = String(target.split(separator: "/").last?.split(separator: ".").first ?? "")
        try? await enforceArtifactBudget(sparing: fileID)
    }

    func recordConversionFailure(_ target: String, _ reason: String) {
        if conversionFailures.count > 1000 { conversionFailures.removeAll() }
        conversionFailures[target] = reason
    }

    func takeConversionFailure(_ target: String) -> String? { conversionFailures.removeValue(forKey: target) }

    /// Finished jobs older than the lifetime lose their files and read as expired.
    public func expireArtifacts() async throws {
        guard let lifetime = artifactLifetime else { return }
        let cutoff = now() - lifetime
        for var job in try await store.jobs(.completed, completedBefore: cutoff) {
            removeArtifacts(job.fileID)
            job.status = .expired
            try await store.update(job)
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
    public func enforceArtifactBudget(sparing fileID: String? = nil) async throws {
        let budget = limits.artifactBudgetBytes
        guard budget > 0 else { return }
        var total = artifactBytes()
        guard total > budget else { return }
        let oldestFirst = try await store.jobs(.completed, completedBefore: nil).sorted { ($0.completedAt ?? 0) < ($1.completedAt ?? 0) }
        for var job in oldestFirst where total > budget && job.fileID != fileID {
            total -= fileBytes(job.fileID)
            removeArtifacts(job.fileID)
            job.status = .expired
            try await store.update(job)
            log("job \(job.id) expired early: the job files passed the \(budget >> 20) MiB artifact budget; its files were removed")
        }
    }

    /// Failed, cancelled and expired jobs older than the retention leave the store (their files went already), so the
    /// database does not grow without bound.
    public func purgeFinishedJobs(now current: Double? = nil) async throws {
        guard limits.jobRetention > 0 else { return }
        let removed = try await store.purgeFinished(before: (current ?? now()) - limits.jobRetention)
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
        guard let defaults = await videoOffer?.defaults else {
            throw ServiceError(503, "this server has no video model; start it with --video-model tiny-video or a Wan2.2-TI2V-5B folder")
        }
        // JSON and base64 decoding off the actor, like a scene's.
        let limits = self.limits
        let request = try await BlockingWork.parsing { () throws(ServiceError) in try VideoJobParser.parse(body, defaults: defaults, limits: limits) }
        let summary = JobSummary(
            kind: "video", prompt: request.prompt, frames: request.frames, width: request.width, height: request.height, steps: request.steps)
        return try await enqueue(VideoJobParser.normalized(request), seed: request.seed, summary: summary)
    }

    /// Stores a job. `preparing` runs with the new job's file id just before it is stored (a growing job's scene is
    /// linked into place then); a job that cannot be stored leaves no such file behind.
    func enqueue(
        _ body: [UInt8], seed requested: Int64?, summary: JobSummary, preparing: (@Sendable (String) throws -> Void)? = nil
    ) async throws -> (JobRecord, QueueInfo) {
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
        guard try await store.count(.queued) < limits.maxQueued else {
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
        if let preparing {
            try preparing(fileID)
            do {
                try await store.insert(job)
            } catch {
                removeArtifacts(fileID)
                throw error
            }
        } else {
            try await store.insert(job)
        }
        metrics.count("submitted")
        log("job \(job.id) queued (file \(job.fileID), seed \(seed))")
        wakeWorkers()
        announce(.queued)
        return (job, try await queueInfo(for: job.id))
    }

    public func queueInfo(for id: String) async throws -> QueueInfo {
        let place = try await store.queuePlace(of: id)
        return QueueInfo(queuedCount: place.queued, runningCount: place.running, position: place.position)
    }

    /// A job and its place in the queue read together, so a job never reads as queued at position 0.
    public func jobWithQueue(id: String) async throws -> (JobRecord, QueueInfo)? {
        guard let job = try await store.jobWithoutRequest(id: id) else { return nil }
        return (job, try await queueInfo(for: id))
    }

    /// Every queued job's 1-based position, from one read of the queue (listings).
    public func queuePositions() async throws -> [String: Int] {
        Dictionary(uniqueKeysWithValues: try await store.ids(.queued).enumerated().map { ($1, $0 + 1) })
    }

    public func job(id: String) async throws -> JobRecord? { try await store.job(id: id) }
    public func job(fileID: String) async throws -> JobRecord? { try await store.job(fileID: fileID) }
    public func recentJobs(status: JobRecord.Status?, limit: Int) async throws -> [JobRecord] {
        try await store.recentJobs(status: status, limit: limit)
    }
    public nonisolated func progress(of id: String) -> JobProgress? { progressBoard.get(id) }

    /// How many jobs wait, run (on every host sharing the store) and are kept completed.
    public func counts() async throws -> (queued: Int, running: Int, completed: Int) {
        (try await store.count(.queued), try await store.count(.running), try await store.count(.completed))
    }

    /// The queue, the running jobs (on every host sharing the store) and how many completed jobs are kept.
    public func status() async throws -> (queued: [String], running: [String], completed: Int) {
        (try await store.ids(.queued), try await store.ids(.running), try await store.count(.completed))
    }

    /// Stops a job wherever it is: a queued one never runs, a running one stops at its next stage (here at once, on
    /// another host at its worker's next heartbeat). Finished jobs cannot be cancelled (409).
    public func cancel(id: String) async throws -> JobRecord {
        guard let job = try await store.cancel(id: id, at: now()) else {
            guard let job = try await store.jobWithoutRequest(id: id) else { throw ServiceError(404, "no job \(id)") }
            throw ServiceError(409, "job \(id) is already \(job.status.rawValue)")
        }
        // A cancelled job never runs again: a growing job's base goes with it.
        unlink(artifactPath(job.fileID, .extensionBase))
        // Marked lost first, so the echo of the announcement below is not taken for another node's cancel.
        running[id]?.lost = true
        running[id]?.cancel()
        announce(.cancelled(id: id))
        metrics.count("cancelled")
        log("job \(id) cancelled")
        return job
    }

    /// Cancels a job if it is active, removes its artifacts and forgets it.
    public func deleteJob(id: String) async throws {
        guard let job = try await store.jobWithoutRequest(id: id) else { throw ServiceError(404, "no job \(id)") }
        if !job.status.isFinished { _ = try? await cancel(id: id) }
        removeArtifacts(job.fileID)
        try await store.delete(id: id)
    }

    /// FlashWorld's delete: removes the artifact; a queued job is cancelled, a finished one forgotten. Returns the
    /// names removed.
    public func delete(fileID: String) async throws -> [String] {
        guard let job = try await store.job(fileID: fileID) else { return [] }
        var removed: [String] = []
        for artifact in Artifact.allCases where unlink(artifactPath(fileID, artifact)) == 0 {
            removed.append("\(fileID).\(artifact.fileSuffix)")
        }
        if !job.status.isFinished {
            // A deleted scene must not appear later: the job stops wherever it is.
            _ = try? await cancel(id: job.id)
        } else {
            try await store.delete(id: job.id)
        }
        return removed
    }

    /// Waits until the job finishes (or `timeout` passes), for the synchronous image-to-3D endpoints.
    public func finished(id: String, timeout: Double) async throws -> JobRecord? {
        let deadline = now() + timeout
        while now() < deadline {
            if isStopping { throw ServiceError(503, "the server is shutting down; job \(id) is kept and runs after the restart") }
            // Read without the stored request: constant cost whatever the job asked for.
            if let job = try await store.jobWithoutRequest(id: id), job.status.isFinished { return job }
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

    /// Parks an idle worker until a job arrives (announced here or by another process sharing the store), or a while
    /// passes: a look at the store that also finds what an announcement missed (one sent while the listener reconnected).
    func idle() async {
        let patience = store.isShared ? 2000 : 500
        await withCheckedContinuation { continuation in
            waiters.append(continuation)
            Task { [weak self] in
                try? await Task.sleep(for: .milliseconds(patience))
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
            let claimed = try? await store.claimNext(
                startedAt: now(), includingVideo: videoGenerator != nil, worker: workerID, leaseSeconds: limits.leaseSeconds)
        else {
            return false
        }
        var job = claimed
        let id = job.id
        progressBoard.set(id, JobProgress(stage: "starting", fraction: 0))
        if VideoJobParser.isVideo(job.request) {
            await runVideo(&job)
            return true
        }
        let request: SceneRequest
        do {
            request = try FlashWorldRequest.parse(job.request, limits: limits, stored: true)
        } catch {
            await finish(&job, error: "\(error)")
            return true
        }
        log("job \(id) started (attempt \(job.attempts))")
        let seed = UInt64(bitPattern: job.seed)
        let progress = progressSink(for: id)
        let task: Task<GeneratedScene, any Error>
        if let parent = request.extends {
            // A growing job: the scene linked in when it was queued, grown along the request's cameras.
            let base = artifactPath(job.fileID, .extensionBase)
            task = Task {
                let (world, description) = try await BlockingWork.run {
                    do {
                        return try SplatFile.read(InputSource(path: base))
                    } catch {
                        throw ServiceError(500, "the scene of job \(parent) that this job grows cannot be read: \(error)")
                    }
                }
                return try await generator.extend(world, metadata: description.metadata, request: request, seed: seed, progress: progress)
            }
        } else {
            task = Task { try await generator.generate(request, seed: seed, progress: progress) }
        }
        running[id] = RunningJob(task, claim: job)
        let began = now()
        // The files are written under names of this claim's own and renamed into place only as the claim settles.
        let outputs = [Artifact.ply, .spz].map { (from: claimPath(job, $0), to: artifactPath(job.fileID, $0)) }
        do {
            let scene = try await task.value
            progressBoard.set(id, JobProgress(stage: "writing", fraction: 0.99))
            // Written off the actor: the PLY, and the SPZ most clients take (so its first download is a plain read).
            try await BlockingWork.run {
                let options = SplatWriteOptions(metadata: scene.metadata)
                try SplatFile.write(scene.cloud, toPath: outputs[0].from, format: .ply, options: options)
                try SplatFile.write(scene.cloud, toPath: outputs[1].from, format: .spz, options: options)
            }
            job.fileSize = Int((try? InputSource(path: outputs[0].from).size) ?? 0)
            job.gaussians = scene.cloud.count
            job.timings = JSONText.encode(scene.timings.map { [$0.stage, $0.seconds] as [Any] })
            job.status = .completed
            metrics.observeGeneration(seconds: now() - began)
            await finish(&job, error: nil, publishing: outputs)
        } catch let failure as EngineError where failure.kind == .device && !task.isCancelled {
            await deviceFailed(job, failure, discarding: outputs)
        } catch {
            await finish(&job, error: task.isCancelled ? "cancelled" : "\(error)", publishing: outputs)
        }
        return true
    }

    /// The device itself failed (a driver or hardware error, not the job's doing): the job goes back to the queue with
    /// its attempt not counted, for a worker whose device works, and this process takes no more jobs; /health says why
    /// (503), so an orchestrator restarts it.
    func deviceFailed(_ job: JobRecord, _ failure: EngineError, discarding outputs: [(from: String, to: String)]) async {
        running[job.id] = nil
        progressBoard.clear(job.id)
        for output in outputs { unlink(output.from) }
        readiness = .failed("the device failed (\(failure.message)); this process takes no more jobs: restart it")
        await handBack(job)
        log("the device failed while job \(job.id) ran (\(failure.message)); the job is queued again and this process takes no more jobs")
    }

    /// Where a claim writes an artifact before it settles: hidden, and named by the claim, so a worker whose lease
    /// lapsed never writes over the files of the claim that followed.
    nonisolated func claimPath(_ job: JobRecord, _ artifact: Artifact) -> String {
        "\(dataDirectory)/.\(job.fileID).\(job.fence).\(artifact.fileSuffix).tmp"
    }

    /// A video job: the generator writes the MP4 under the claim's name, renamed into place as the claim settles.
    func runVideo(_ job: inout JobRecord) async {
        let id = job.id
        guard let videoGenerator else {
            // No video model (yet: it may still be loading, or the server was restarted without one): the job waits
            // in the queue, its attempt not counted, rather than failing. (claimNext skips video jobs until then.)
            progressBoard.clear(id)
            await handBack(job)
            return
        }
        let request: VideoJobRequest
        do {
            request = try VideoJobParser.parse(job.request, defaults: videoGenerator.defaults, limits: limits)
        } catch {
            await finish(&job, error: "\(error)")
            return
        }
        log("job \(id) started: video (attempt \(job.attempts))")
        let output = (from: claimPath(job, .video), to: artifactPath(job.fileID, .video))
        let seed = UInt64(bitPattern: job.seed)
        let progress = progressSink(for: id)
        let task = Task { try await videoGenerator.generate(request, seed: seed, to: output.from, progress: progress) }
        running[id] = RunningJob(task, claim: job)
        let began = now()
        do {
            let timings = try await task.value
            job.fileSize = Int((try? InputSource(path: output.from).size) ?? 0)
            job.timings = JSONText.encode(timings.map { [$0.stage, $0.seconds] as [Any] })
            job.status = .completed
            metrics.observeGeneration(seconds: now() - began)
            await finish(&job, error: nil, publishing: [output])
        } catch let failure as EngineError where failure.kind == .device && !task.isCancelled {
            await deviceFailed(job, failure, discarding: [output])
        } catch {
            await finish(&job, error: task.isCancelled ? "cancelled" : "\(error)", publishing: [output])
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

    /// Settles a claimed job: its outcome and its files (`publishing`, claim-named file to final name) land together,
    /// only while the claim holds. A job cancelled, deleted or taken back while it ran keeps that outcome; the files of
    /// this run are removed.
    func finish(_ job: inout JobRecord, error: String?, publishing outputs: [(from: String, to: String)] = []) async {
        running[job.id] = nil
        progressBoard.clear(job.id)
        defer { for output in outputs { unlink(output.from) } }
        job.completedAt = now()
        (job.worker, job.leaseExpiresAt) = (nil, nil)
        // A job that failed because the data folder stopped taking files goes back to the queue (its attempt counted)
        // and runs once the folder works again.
        if error != nil, error != "cancelled", storageProblem() != nil, job.attempts < limits.maxAttempts {
            var again = job
            again.status = .queued
            again.startedAt = nil
            again.completedAt = nil
            if (try? await store.settle(again, publishing: {})) == true {
                log("job \(job.id) could not write its files; queued again (attempt \(job.attempts) of \(limits.maxAttempts))")
                return
            }
        }
        if let error {
            job.status = .failed
            job.error = error
        }
        let published = job.status == .completed ? outputs : []
        let settled: Bool
        do {
            settled = try await store.settle(job) {
                do {
                    for output in published where rename(output.from, output.to) != 0 {
                        throw ServiceError(500, "cannot move \(output.from) into place: \(String(cString: strerror(errno)))")
                    }
                } catch {
                    for output in published { unlink(output.to) }
                    throw error
                }
            }
        } catch {
            // The store could not take the outcome: the lease lapses and another run does the job again.
            log("job \(job.id) finished but its outcome could not be stored (\(error)); it runs again once its lease lapses")
            return
        }
        guard settled else {
            log("job \(job.id) was cancelled, deleted or taken back while it ran; this run's files were removed")
            return
        }
        // Settled for good (completed or failed): a growing job's base is no longer needed. (A claim taken back keeps
        // it for the run that follows; a requeued failure is told its scene is gone.)
        unlink(artifactPath(job.fileID, .extensionBase))
        if job.status == .completed { recordDuration((job.completedAt ?? 0) - (job.startedAt ?? 0), of: job.summary) }
        metrics.count(job.status == .completed ? "completed" : "failed")
        let tenths = Int(((job.completedAt ?? 0) - (job.startedAt ?? 0)) * 10)
        let seconds = "\(tenths / 10).\(tenths % 10)"
        log(job.status == .completed
            ? "job \(job.id) completed in \(seconds) s: \(job.gaussians.map { "\($0) Gaussians" } ?? "a video"), \(job.fileSize ?? 0) bytes"
            : "job \(job.id) failed after \(seconds) s: \(job.error ?? "")")
        if job.status == .completed { try? await enforceArtifactBudget(sparing: job.fileID) }
    }
}

/// A running job's claim and handle: enough to renew its lease and to cancel it, whatever it produces.
struct RunningJob: Sendable {
    /// The job as claimed, without its request.
    let claim: JobRecord
    let cancel: @Sendable () -> Void
    /// Set once a renewal found the claim gone: the run is being stopped and its lease is not renewed again.
    var lost = false
    init<T>(_ task: Task<T, any Error>, claim: JobRecord) {
        var light = claim
        light.request = []
        self.claim = light
        cancel = { task.cancel() }
    }
}

/// Seconds on the monotonic clock.
func monotonicNow() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}
