import ArgumentParser
import Dispatch
import Synchronization
import FlashWorld
import Hummingbird
import Service

#if canImport(Glibc)
    import Glibc
#endif

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve FlashWorld's HTTP API with durable jobs (SQLite) and the tiny or a real model.",
        discussion: """
            Endpoints, as FlashWorld's clients call them: POST /generate (request JSON; 202 with task_id, file_id and
            the queue), GET /task/{id}, GET /download/{file_id} (the PLY), DELETE /delete/{file_id}, GET /status.
            Jobs are stored in DATA/jobs.sqlite before /generate answers; a job that was running when the process
            died is run again (at most 3 attempts) and its partial file discarded. The queue holds at most
            --max-queued jobs (429 beyond). image_prompt must be a data URL or base64: server paths are never read.
            """)

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "Port.")
    var port = 7860

    @Option(help: "Folder for the job database and the artifacts.")
    var dataDir = "diorama-data"

    @Option(help: "tiny, or a model folder.")
    var model = "tiny"

    @Option(help: "Most jobs waiting at once.")
    var maxQueued = 64

    func validate() throws {
        guard (1...65535).contains(port) else { throw ValidationError("--port must be 1 to 65535") }
        guard maxQueued > 0 else { throw ValidationError("--max-queued must be positive") }
    }

    /// The command line stays synchronous; the server runs on Swift's concurrency pool until it stops.
    func run() throws {
        let outcome = ServeOutcome()
        let done = DispatchSemaphore(value: 0)
        let command = self
        Task {
            do { try await command.serve() } catch { outcome.set(error) }
            done.signal()
        }
        done.wait()
        if let error = outcome.error { throw error }
    }

    func serve() async throws {
        mkdir(dataDir, 0o755)
        let store = try SQLiteJobStore(path: "\(dataDir)/jobs.sqlite")
        let flashWorld = model == "tiny" ? try FlashWorldModel.tiny() : try ModelFolder.load(model)
        var limits = ServiceLimits()
        limits.maxQueued = maxQueued
        let service = GenerationService(
            store: store, generator: FlashWorldSceneGenerator(model: flashWorld), dataDirectory: dataDir, limits: limits)
        try await service.start()
        let app = Application(router: FlashWorldRoutes.router(service: service), configuration: .init(address: .hostname(host, port: port)))
        print("serving the \(flashWorld.name) model on http://\(host):\(port) (data in \(dataDir))")
        try await app.runService()
    }
}

/// The server's error, handed back to the blocked command-line thread.
final class ServeOutcome: Sendable {
    private let state = Mutex<(any Error)?>(nil)
    func set(_ error: any Error) { state.withLock { $0 = error } }
    var error: (any Error)? { state.withLock { $0 } }
}
