import ArgumentParser
import Foundation
import Service

/// `diorama jobs`: what an operator needs on a store, whichever server (or none) is running on it.
struct JobsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs",
        abstract: "List, inspect, requeue and purge the jobs of a store (SQLite in a data folder, or PostgreSQL).",
        discussion: helpText(
            """
            The store is the one `diorama serve` uses: --store (or DIORAMA_STORE) sqlite reads DATA/jobs.sqlite of
            --data-dir (or DIORAMA_DATA_DIR, default diorama-data); a postgres:// URL reads the shared store. It works
            beside running servers: a requeued job is picked up by the next idle worker.
            """),
        subcommands: [List.self, Show.self, Requeue.self, Purge.self])

    struct StoreOptions: ParsableArguments {
        @Option(help: "sqlite (DATA/jobs.sqlite) or postgres://USER@HOST/DB (default: DIORAMA_STORE, else sqlite).")
        var store: String?

        @Option(help: "The data folder of a SQLite store (default: DIORAMA_DATA_DIR, else diorama-data).")
        var dataDir: String?

        /// The store, opened: an absent SQLite file is an error, never a new empty store.
        func open() async throws -> any JobStore {
            let environment = ProcessInfo.processInfo.environment
            let choice = store ?? environment["DIORAMA_STORE"] ?? "sqlite"
            let path = "\(dataDir ?? environment["DIORAMA_DATA_DIR"] ?? "diorama-data")/jobs.sqlite"
            guard choice != "sqlite" || FileManager.default.fileExists(atPath: path) else {
                throw ValidationError("no job store at \(path); give --data-dir (the folder diorama serve uses) or --store postgres://...")
            }
            do {
                return try await JobStores.open(choice, sqlitePath: path)
            } catch let error as ServiceError {
                throw ValidationError(error.message)
            }
        }
    }

    /// A job in one line of a listing.
    static func line(_ job: JobRecord) -> String {
        let created = Date(timeIntervalSince1970: job.createdAt).ISO8601Format()
        let prompt = job.summary.prompt.count > 40 ? String(job.summary.prompt.prefix(39)) + "…" : job.summary.prompt
        let fields = [job.id, job.status.rawValue, job.summary.kind, created, "attempts \(job.attempts)", job.worker ?? "-", prompt.isEmpty ? "-" : "\"\(prompt)\""]
        return fields.joined(separator: "  ")
    }

    /// Every field an operator may want, one per line.
    static func details(_ job: JobRecord) -> String {
        func time(_ seconds: Double?) -> String { seconds.map { Date(timeIntervalSince1970: $0).ISO8601Format() } ?? "-" }
        let rows: [(String, String)] = [
            ("id", job.id), ("file id", job.fileID), ("status", job.status.rawValue), ("kind", job.summary.kind),
            ("prompt", job.summary.prompt), ("size", "\(job.summary.frames) frames at \(job.summary.width)x\(job.summary.height), \(job.summary.steps) steps"),
            ("seed", String(job.seed)), ("created", time(job.createdAt)), ("started", time(job.startedAt)), ("completed", time(job.completedAt)),
            ("attempts", String(job.attempts)), ("claim", job.worker.map { "\($0), fence \(job.fence), lease until \(time(job.leaseExpiresAt))" } ?? "none (fence \(job.fence))"),
            ("error", job.error ?? "-"), ("file size", job.fileSize.map(String.init) ?? "-"), ("Gaussians", job.gaussians.map(String.init) ?? "-"),
            ("timings", job.timings ?? "-"),
        ]
        return rows.map { "\($0.0): \($0.1)" }.joined(separator: "\n")
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The newest jobs first: id, status, kind, created, attempts, worker, prompt.")
        @OptionGroup var options: StoreOptions
        @Option(help: "Only jobs in this state: queued, running, completed, failed, cancelled or expired.")
        var status: String?
        @Option(help: "How many jobs at most (default 50).")
        var limit = 50

        func validate() throws {
            if let status, JobRecord.Status(rawValue: status) == nil {
                throw ValidationError("--status must be queued, running, completed, failed, cancelled or expired, not \(status)")
            }
            guard limit > 0 else { throw ValidationError("--limit must be positive") }
        }

        func run() throws {
            let (options, status, limit) = (self.options, self.status, self.limit)
            let jobs = try waitingFor { try await options.open().recentJobs(status: status.flatMap(JobRecord.Status.init), limit: limit) }
            if jobs.isEmpty { print("no jobs") }
            for job in jobs { print(JobsCommand.line(job)) }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Everything the store keeps about one job (not its request).")
        @OptionGroup var options: StoreOptions
        @Argument(help: "The job's id.")
        var id: String

        func run() throws {
            let (options, id) = (self.options, self.id)
            guard let job = try waitingFor({ try await options.open().jobWithoutRequest(id: id) }) else {
                throw ValidationError("no job \(id) in this store")
            }
            print(JobsCommand.details(job))
        }
    }

    struct Requeue: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a failed, cancelled or expired job again, or take a stuck running job back from its worker.")
        @OptionGroup var options: StoreOptions
        @Argument(help: "The job's id.")
        var id: String

        func run() throws {
            let (options, id) = (self.options, self.id)
            let requeued: JobRecord? = try waitingFor {
                let store = try await options.open()
                guard let job = try await store.requeue(id: id) else { return nil }
                try? await store.announce(.queued)
                return job
            }
            guard let requeued else {
                throw ValidationError("job \(id) is not in this store, or is queued or completed already (nothing to requeue)")
            }
            print("queued again: \(JobsCommand.line(requeued))")
        }
    }

    struct Purge: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove failed, cancelled and expired jobs that finished long enough ago.")
        @OptionGroup var options: StoreOptions
        @Option(help: "Only those that finished at least this many seconds ago (default 0: all of them).")
        var olderThan: Double = 0

        func validate() throws {
            guard olderThan >= 0, olderThan.isFinite else { throw ValidationError("--older-than must be 0 or more seconds") }
        }

        func run() throws {
            let (options, cutoff) = (self.options, Date().timeIntervalSince1970 - olderThan)
            let removed = try waitingFor { try await options.open().purgeFinished(before: cutoff) }
            print("removed \(removed) finished job\(removed == 1 ? "" : "s")")
        }
    }
}
