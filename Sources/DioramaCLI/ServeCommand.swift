import ArgumentParser
import Dispatch
import FlashWorld
import FoundationEssentials
import Hummingbird
import HummingbirdCore
import ModelHub
import Service
import Synchronization
import Video

#if canImport(Glibc)
    import Glibc
#endif

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the studio and the HTTP APIs (FlashWorld, image-to-3D, /v1) with durable jobs.",
        discussion: helpText(
            """
            Open http://HOST:PORT/ for the studio. APIs: FlashWorld's (POST /generate JSON, GET /task/{id},
            GET /download/{file_id}, DELETE /delete/{file_id}, GET /status); the image-to-3D service's (multipart
            POST /generate and /generate-spz, POST /generate_from_base64, GET /health); and /v1 (jobs, progress
            events, PLY/SPZ/.splat/MP4 artifacts; POST /v1/videos with --video-model); GET /openapi.json documents them
            all, GET /metrics is Prometheus.

            Jobs are stored in DATA/jobs.sqlite before a request is answered; a job that was running when the
            process died is run again (up to max_attempts) and its partial files discarded. The server listens at
            once: /health says loading, then warming_up, then ready (or failed, with the reason).

            Many servers, on many hosts, share one queue with --store postgres://USER@HOST/DB and a folder of job files
            every one of them mounts (--artifacts): --role api nodes answer clients, --role worker nodes run jobs (one per GPU) and answer
            only /health and /metrics. A worker's claim is a lease renewed every lease_seconds/3; a worker killed or
            cut off loses its job to another after lease_seconds.

            Settings come from --config FILE (JSON), then DIORAMA_* environment variables, then flags:
            \(ServiceConfiguration.settingsHelp)
            """))

    @Option(help: "A JSON file of settings (keys as listed below).")
    var config: String?

    @Option(help: "Address to listen on (default 127.0.0.1).")
    var host: String?

    @Option(help: "Port (default 7860, as FlashWorld).")
    var port: Int?

    @Option(help: "Folder for the job database and the artifacts (default diorama-data); with a shared store, one every node mounts.")
    var dataDir: String?

    @Option(help: "Folder for the job files, if not the data folder: with a shared store, one every node mounts (NFS, a cloud file share).")
    var artifacts: String?

    @Option(help: "sqlite (default: DATA/jobs.sqlite, one server), or postgres://USER[:PASSWORD]@HOST[:PORT]/DB shared by many (PGPASSWORD is read too).")
    var store: String?

    @Option(help: "all (default), api (answers clients, runs no jobs) or worker (runs jobs; serves /health and /metrics only). api and worker need --store postgres://...")
    var role: String?

    @Option(help: "Seconds a worker's claim on a job lasts without a heartbeat (default 30).")
    var leaseSeconds: Double?

    @Option(help: "tiny, flashworld (after `diorama model pull flashworld`), or a model folder (default tiny).")
    var model: String?

    @Option(help: "FlashWorld checkpoint, when it is not in the model folder.")
    var checkpoint: String?

    @Option(help: "tiny-video, wan2.2-ti2v-5b (after `diorama model pull`), or a Wan2.2-TI2V-5B-Diffusers folder: serves POST /v1/videos (default: no video model).")
    var videoModel: String?

    @Option(help: "auto (the GPU when one works), cuda or cpu (default auto).")
    var device: String?

    @Option(help: "fp32, bf16, fp8 or fp8-lean (default: fp8 on GPUs from sm_89, bf16 on older GPUs, fp32 on the CPU).")
    var precision: String?

    @Option(help: "Bearer token API calls must carry (prefer DIORAMA_TOKEN: flags show in process lists).")
    var token: String?

    @Option(help: "Origins allowed to call the API from browsers: comma-separated, * for any (default), empty for none.")
    var corsOrigins: String?

    @Option(help: "Most jobs waiting at once; 429 beyond (default 64).")
    var maxQueued: Int?

    @Option(help: "Jobs running at once on the device (default 1).")
    var maxConcurrent: Int?

    @Option(help: "auto (default: from the GPU's free memory), full, balanced (the text encoder in host memory, run layer by layer) or low (the transformer's blocks streamed too).")
    var memory: String?

    @Option(help: "Seconds an idle connection stays open (default 30).")
    var idleTimeout: Int?

    @Option(help: "Seconds a request's head may take to arrive once the connection is ready for it (default 30).")
    var headerTimeout: Int?

    @Option(help: "Seconds a request's body may take to arrive after its head (default 120).")
    var bodyTimeout: Int?

    @Option(help: "Open connections at most (default 1024); more wait until one closes.")
    var maxConnections: Int?

    @Option(help: "Seconds finished jobs' files are kept, 0 for ever (default 604800, a week).")
    var artifactLifetime: Double?

    @Flag(help: "Report ready without the warm-up generation.")
    var noWarmUp = false

    /// The settings after the file, the environment and the flags, in that order.
    func resolvedConfiguration() throws -> ServiceConfiguration {
        var configuration = ServiceConfiguration()
        do throws(ServiceError) {
            if let file = config ?? ProcessInfo.processInfo.environment["DIORAMA_CONFIG"] {
                guard let bytes = FileManager.default.contents(atPath: file) else { throw ServiceError(400, "cannot read the config file \(file)") }
                try configuration.apply(file: [UInt8](bytes), name: file)
            }
            try configuration.apply(environment: ProcessInfo.processInfo.environment)
            let flags: [(String, String?)] = [
                ("host", host), ("port", port.map(String.init)), ("data_dir", dataDir), ("artifacts", artifacts), ("store", store), ("role", role),
                ("lease_seconds", leaseSeconds.map { String($0) }), ("model", model), ("checkpoint", checkpoint), ("video_model", videoModel),
                ("device", device), ("precision", precision), ("memory", memory),
                ("token", token), ("cors_origins", corsOrigins), ("max_queued", maxQueued.map(String.init)),
                ("max_concurrent", maxConcurrent.map(String.init)), ("artifact_lifetime", artifactLifetime.map { String($0) }),
                ("idle_timeout", idleTimeout.map(String.init)), ("header_timeout", headerTimeout.map(String.init)),
                ("body_timeout", bodyTimeout.map(String.init)), ("max_connections", maxConnections.map(String.init)),
            ]
            for (key, value) in flags { if let value { try configuration.set(key, value) } }
            if noWarmUp { configuration.warmUp = false }
            configuration = try configuration.validated()
        } catch {
            throw ValidationError(error.message)
        }
        // A model name (`diorama model pull`) becomes its folder in the hub cache before anything starts.
        try reportingErrors { () throws(HubError) in
            if configuration.model != "tiny" {
                (configuration.model, configuration.checkpoint) = try ModelArgument.resolve(configuration.model, checkpoint: configuration.checkpoint)
            }
            if let video = configuration.videoModel, video != "tiny-video" {
                configuration.videoModel = try ModelArgument.resolve(video, checkpoint: nil).folder
            }
        }
        return configuration
    }

    /// The command line stays synchronous; the server runs on Swift's concurrency pool until it stops.
    func run() throws {
        let configuration = try resolvedConfiguration()
        // A busy port is said in one line before anything is created (the data folder included).
        if let problem = Self.portProblem(host: configuration.host, port: configuration.port) {
            printError("error: \(problem)\n")
            throw ExitCode(69)
        }
        do {
            try waitingFor { try await Self.serve(configuration) }
        } catch {
            printError("error: \(error)\n")
            throw ExitCode(74)
        }
    }

    /// Why `host:port` cannot be listened on (in use, not permitted, not an address of this machine), or nil.
    static func portProblem(host: String, port: Int) -> String? {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE
        var found: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &found) == 0, let info = found else {
            return "cannot listen on \(host): it is not an address or name of this machine"
        }
        defer { freeaddrinfo(found) }
        let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) != 0 else { return nil }
        switch errno {
        case EADDRINUSE: return "port \(port) on \(host) is in use; choose another with --port"
        case EACCES: return "port \(port) needs privileges on this machine; choose one above 1023 with --port"
        case EADDRNOTAVAIL: return "cannot listen on \(host): it is not an address of this machine"
        default: return "cannot listen on \(host):\(port): \(String(cString: strerror(errno)))"
        }
    }

    static func serve(_ configuration: ServiceConfiguration) async throws {
        let directory = configuration.dataDirectory
        guard mkdir(directory, 0o755) == 0 || errno == EEXIST else {
            throw ValidationError("cannot create the data folder \(directory): \(String(cString: strerror(errno)))")
        }
        var lock: Int32 = -1
        defer { if lock >= 0 { close(lock) } }
        if configuration.store == "sqlite" {
            // One server per SQLite store: a second would re-queue the first one's running jobs as if it had crashed.
            lock = open("\(directory)/lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            guard lock >= 0, flock(lock, LOCK_EX | LOCK_NB) == 0 else {
                throw ValidationError("another diorama serve is using \(directory); stop it, give a different --data-dir, or share a --store postgres://...")
            }
        }
        let store = try await JobStores.open(configuration.store, sqlitePath: "\(directory)/jobs.sqlite")
        if let shared = store as? PostgresJobStore {
            log("jobs in PostgreSQL at \(shared.location.redacted), role \(configuration.role.rawValue)")
        }
        let files = configuration.artifactsDirectory ?? directory
        guard mkdir(files, 0o755) == 0 || errno == EEXIST else {
            throw ValidationError("cannot create the artifacts folder \(files): \(String(cString: strerror(errno)))")
        }
        let service = GenerationService(
            store: store, dataDirectory: files, limits: configuration.limits, concurrency: configuration.maxConcurrent,
            artifactLifetime: configuration.artifactLifetime, videoFrames: DeviceChoice(device: configuration.device).videoFrames,
            role: configuration.role, log: { log($0) })
        try await service.start()
        if configuration.role == .api {
            // Jobs run on the workers; this node only needs to know what they serve.
            await service.acceptJobsForWorkers(modelName: configuration.model)
            if let video = configuration.videoModel {
                let defaults = video == "tiny-video" ? VideoDefaults.tiny : try VideoModelFolder.defaults(video)
                await service.acceptVideoJobsForWorkers(modelName: video, defaults: defaults)
            }
        } else {
            // Listen first, so /health can say what is happening while the model loads and warms up.
            Task.detached {
                do {
                    let options = DeviceChoice(device: configuration.device, precision: configuration.precision)
                    let backend = try options.backend()
                    let precision = options.modelPrecision(for: backend)
                    let flashWorld = try DeviceChoice.loadModel(
                        configuration.model, checkpoint: configuration.checkpoint, on: backend, precision: precision,
                        memory: FlashWorldMemoryMode(rawValue: configuration.memory))
                    log("model \(flashWorld.name) on \(backend.device) in \(precision), memory \(flashWorld.memoryMode.rawValue)")
                    // The video model first: ready means every model the settings name can take its jobs.
                    if let videoModel = configuration.videoModel {
                        let video =
                            videoModel == "tiny-video"
                            ? try WanVideoModel.tiny(on: backend).prepared(for: backend, precision: precision)
                            : try VideoModelFolder.load(videoModel, on: backend, precision: precision)
                        await service.installVideo(WanVideoGenerator(model: video, backend: backend))
                        log("video model \(video.name) on \(backend.device) in \(precision)")
                    }
                    let warmUp = configuration.warmUp ? FlashWorldSceneGenerator.warmUpRequest() : nil
                    await service.install(FlashWorldSceneGenerator(model: flashWorld, backend: backend, renderer: DeviceChoice.viewRenderer(for: backend)), name: flashWorld.name, warmUp: warmUp)
                    let readiness = await service.readiness
                    if readiness == .ready {
                        log("ready: the \(flashWorld.name) model")
                    } else {
                        printError("error: \(readiness)\n")
                    }
                } catch {
                    printError("error: the model did not load: \(error)\n")
                    await service.failed("the model did not load: \(error)")
                }
            }
        }
        // Hummingbird stops gracefully on SIGTERM and SIGINT, waiting for open requests; the service's own waits and
        // event streams end first so that wait is short. Queued and running jobs stay in the store for the restart.
        let signals = [SIGTERM, SIGINT].map { number in
            let source = DispatchSource.makeSignalSource(signal: number)
            source.setEventHandler { service.beginShutdown() }
            source.resume()
            return source
        }
        defer { signals.forEach { $0.cancel() } }
        // Request bodies of tens of megabytes are freed into glibc's per-thread arenas, which keep them: handing the
        // free pages back every few seconds keeps the resident size flat under a stream of large uploads.
        let trimmer = Task.detached {
            // glibc's malloc_trim, looked up at run time (malloc.h is not part of the Glibc module).
            typealias Trim = @convention(c) (Int) -> Int32
            guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return }
            let trim = unsafeBitCast(symbol, to: Trim.self)
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(5))
                _ = trim(0)
            }
        }
        defer { trimmer.cancel() }
        let router = DioramaServer.router(service: service, configuration: configuration)
        // Idle connections are closed and open ones capped, so thousands of silent sockets cannot starve /health.
        let app = Application(
            router: router, server: DioramaServer.httpServer(configuration: configuration),
            configuration: .init(
                address: .hostname(configuration.host, port: configuration.port), serverName: "diorama",
                availableConnectionsDelegate: MaximumAvailableConnections(configuration.maxConnections)),
            // Said once the socket listens, not before.
            onServerRunning: { _ in
                log("serving the studio and APIs on http://\(configuration.host):\(configuration.port)/ (data in \(directory)\(files == directory ? "" : ", job files in \(files)"))")
            })

        if configuration.token == nil && configuration.host != "127.0.0.1" && configuration.host != "localhost" {
            printError("warning: listening on \(configuration.host) without a token; set DIORAMA_TOKEN to require one\n")
        }
        try await app.runService()
        await service.requeueRunningJobs()
    }
}

/// A line on standard output, written at once (not buffered), so a supervisor or log file sees each event as it happens.
func log(_ line: String) {
    let text = line + "\n"
    _ = text.withCString { write(1, $0, strlen($0)) }
}

/// Runs `work` on Swift's concurrency pool and blocks the (synchronous) command-line thread until it ends: its
/// value, or its error rethrown here.
func waitingFor<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) throws -> T {
    let outcome = Mutex<Result<T, any Error>?>(nil)
    let done = DispatchSemaphore(value: 0)
    Task {
        let result: Result<T, any Error>
        do { result = .success(try await work()) } catch { result = .failure(error) }
        outcome.withLock { $0 = result }
        done.signal()
    }
    done.wait()
    return try outcome.withLock { $0! }.get()
}
