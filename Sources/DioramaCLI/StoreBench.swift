import ArgumentParser
import Foundation
import Service
import Synchronization

/// `diorama bench store`: the job store under a queue of thousands and many workers, SQLite or PostgreSQL.
struct StoreBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Claim throughput and latency with many workers, and status reads meanwhile, on a job store.",
        discussion: helpText(
            """
            Queues --jobs jobs (ids bench-…, removed at the end), then --workers workers, each with its own
            connection as separate processes would have, claim and settle them as fast as the store lets them, while
            --readers readers do what an API node's status read does (the job, its queue position, the running count).
            Give a scratch database: --store postgres://USER@HOST/DB, or sqlite (a file in --dir).
            """))

    @Option(help: "sqlite, or postgres://USER@HOST/DB (a scratch database).")
    var store = "sqlite"

    @Option(help: "Jobs queued before the workers start.")
    var jobs = 10_000

    @Option(help: "Workers claiming at once, each with its own connection.")
    var workers = 16

    @Option(help: "Readers doing status reads while the workers claim.")
    var readers = 1

    @Option(help: "Folder for the SQLite file.")
    var dir = "bench-data"

    @Flag(help: "Print one JSON line instead of a table.")
    var json = false

    func validate() throws {
        guard jobs > 0, (1...256).contains(workers), (0...64).contains(readers) else {
            throw ValidationError("--jobs must be positive, --workers 1 to 256 and --readers 0 to 64")
        }
        if store != "sqlite" {
            do { _ = try PostgresLocation(url: store) } catch { throw ValidationError(error.message) }
        }
    }

    struct Result: Sendable {
        var queueSeconds = 0.0
        var claimSeconds = 0.0
        var claimLatencies: [Double] = []
        var settleLatencies: [Double] = []
        var reads = 0
        var claimedTwice = 0

        var claimsPerSecond: Double { Double(claimLatencies.count) / max(claimSeconds, 1e-9) }
        var readsPerSecond: Double { Double(reads) / max(claimSeconds, 1e-9) }
        static func percentile(_ values: [Double], _ p: Double) -> Double {
            guard !values.isEmpty else { return 0 }
            let sorted = values.sorted()
            return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)]
        }
    }

    /// What the workers and readers share.
    final class Tally: Sendable {
        let claimed = Mutex<Set<String>>([])
        let twice = Atomic<Int>(0)
        let done = Atomic<Bool>(false)
        let reads = Atomic<Int>(0)
    }

    /// A connection to the store as one process would hold it.
    static func open(_ store: String, dir: String) async throws -> any JobStore {
        if store == "sqlite" { mkdir(dir, 0o755) }
        return try await JobStores.open(store, sqlitePath: "\(dir)/bench-store.sqlite")
    }

    func run() throws {
        let result = try waitingFor { try await measure() }
        let ms = { (seconds: Double) in String(format: "%.2f ms", seconds * 1000) }
        if json {
            let fields: [String: Any] = [
                    "store": store == "sqlite" ? "sqlite" : "postgres", "jobs": jobs, "workers": workers, "readers": readers,
                    "queue_seconds": result.queueSeconds, "claims_per_second": result.claimsPerSecond,
                    "claim_p50_ms": Result.percentile(result.claimLatencies, 0.5) * 1000, "claim_p99_ms": Result.percentile(result.claimLatencies, 0.99) * 1000,
                    "settle_p99_ms": Result.percentile(result.settleLatencies, 0.99) * 1000, "status_reads_per_second": result.readsPerSecond,
                    "claimed_twice": result.claimedTwice,
                ]
            print(String(decoding: try JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys]), as: UTF8.self))
            return
        }
        print("store \(store == "sqlite" ? "sqlite" : "postgres"): \(jobs) jobs, \(workers) workers, \(readers) readers")
        print("  queue:   \(String(format: "%.2f", result.queueSeconds)) s (\(Int(Double(jobs) / max(result.queueSeconds, 1e-9))) inserts/s)")
        print("  claims:  \(Int(result.claimsPerSecond))/s over \(String(format: "%.2f", result.claimSeconds)) s (claim and settle)")
        print("  claim latency: p50 \(ms(Result.percentile(result.claimLatencies, 0.5))), p99 \(ms(Result.percentile(result.claimLatencies, 0.99)))")
        print("  settle latency: p99 \(ms(Result.percentile(result.settleLatencies, 0.99)))")
        print("  status reads meanwhile: \(Int(result.readsPerSecond))/s")
        if result.claimedTwice > 0 { print("  ERROR: \(result.claimedTwice) jobs were claimed twice") }
    }

    func measure() async throws -> Result {
        let (store, dir, workers, readers) = (self.store, self.dir, self.workers, self.readers)
        let setup = try await Self.open(store, dir: dir)
        let prefix = "bench-\(UInt32.random(in: 0...UInt32.max))-"
        let ids = (0..<jobs).map { "\(prefix)\($0)" }
        var result = Result()
        let began = monotonicSeconds()
        // Queued from four connections, as API nodes would.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for part in 0..<4 {
                let connection = part == 0 ? setup : try await Self.open(store, dir: dir)
                group.addTask {
                    for index in stride(from: part, to: ids.count, by: 4) {
                        var job = JobRecord(id: ids[index], fileID: "9\(index)", request: Array(#"{"text_prompt": "bench"}"#.utf8), createdAt: Double(index))
                        job.summary = JobSummary(prompt: "bench", frames: 24, width: 704, height: 480, steps: 4)
                        try await connection.insert(job)
                    }
                }
            }
            try await group.waitForAll()
        }
        result.queueSeconds = monotonicSeconds() - began

        let connections = try await withThrowingTaskGroup(of: (any JobStore).self) { group in
            for _ in 0..<(workers + readers) { group.addTask { try await Self.open(store, dir: dir) } }
            return try await group.reduce(into: [any JobStore]()) { $0.append($1) }
        }
        let tally = Tally()
        let start = monotonicSeconds()
        let latencies = try await withThrowingTaskGroup(of: ([Double], [Double]).self) { group in
            for reader in 0..<readers {
                let connection = connections[workers + reader]
                group.addTask {
                    while !tally.done.load(ordering: .relaxed) {
                        let id = ids.randomElement()!
                        _ = try await connection.jobWithoutRequest(id: id)
                        _ = try await connection.queuePlace(of: id)
                        tally.reads.add(1, ordering: .relaxed)
                    }
                    return ([], [])
                }
            }
            for worker in 0..<workers {
                let connection = connections[worker]
                group.addTask {
                    var (claims, settles): ([Double], [Double]) = ([], [])
                    while true {
                        let t0 = monotonicSeconds()
                        guard var job = try await connection.claimNext(startedAt: t0, includingVideo: true, worker: "bench-\(worker)", leaseSeconds: 60) else { break }
                        let t1 = monotonicSeconds()
                        claims.append(t1 - t0)
                        if !tally.claimed.withLock({ $0.insert(job.id).inserted }) { tally.twice.add(1, ordering: .relaxed) }
                        (job.status, job.completedAt) = (.completed, t1)
                        _ = try await connection.settle(job, publishing: {})
                        settles.append(monotonicSeconds() - t1)
                    }
                    return (claims, settles)
                }
            }
            // Readers stop only once every worker has found the queue empty, so the first `workers` to end are workers.
            var all: ([Double], [Double]) = ([], [])
            var ended = 0
            for try await (claims, settles) in group {
                all.0 += claims
                all.1 += settles
                ended += 1
                if ended == workers { tally.done.store(true, ordering: .relaxed) }
            }
            return all
        }
        result.claimSeconds = monotonicSeconds() - start
        (result.claimLatencies, result.settleLatencies) = latencies
        result.reads = tally.reads.load(ordering: .relaxed)
        result.claimedTwice = tally.twice.load(ordering: .relaxed)
        if store == "sqlite" {
            for suffix in ["", "-wal", "-shm"] { unlink("\(dir)/bench-store.sqlite\(suffix)") }
        } else {
            for id in ids { try await setup.delete(id: id) }
        }
        return result
    }
}
