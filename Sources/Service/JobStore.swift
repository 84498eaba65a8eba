import CSQLite
import FoundationEssentials
import Synchronization

/// A generation job as the store keeps it: enough to answer every API and to run it again after a crash.
public struct JobRecord: Sendable, Equatable {
    public enum Status: String, Sendable {
        case queued, running, completed, failed, cancelled, expired

        public var isFinished: Bool { self != .queued && self != .running }
    }

    public var id: String
    public var fileID: String
    public var status: Status
    /// The request body as received (FlashWorld JSON), so a restarted server can run it.
    public var request: [UInt8]
    public var createdAt: Double
    public var startedAt: Double?
    public var completedAt: Double?
    public var error: String?
    public var attempts: Int
    /// The artifact's size once written.
    public var fileSize: Int?
    /// The noise seed, fixed at submission so a re-run after a crash gives the same scene.
    public var seed: Int64
    /// Seconds per stage of the finished run, as JSON `[["stage", seconds], …]`.
    public var timings: String?
    public var gaussians: Int?
    /// What listings and status reads show (kind, a prompt excerpt, size, steps), so they never read the request.
    public var summary = JobSummary()
    /// The claim's fencing token: raised by every claim, so a write carrying an older one is refused.
    public var fence: Int64 = 0
    /// Who holds the claim (host, process) and until when, while the job runs.
    public var worker: String?
    public var leaseExpiresAt: Double?

    public init(id: String, fileID: String, request: [UInt8], createdAt: Double, seed: Int64 = 0) {
        self.id = id
        self.fileID = fileID
        self.status = .queued
        self.request = request
        self.createdAt = createdAt
        self.attempts = 0
        self.seed = seed
    }
}

/// A job's request as listings show it: bounded whatever the request held.
public struct JobSummary: Codable, Sendable, Equatable {
    public var kind = "scene"
    public var prompt = ""
    public var frames = 0
    public var width = 0
    public var height = 0
    public var steps = 0
    /// The job whose scene this one grows (world expansion).
    public var extends: String?

    /// The longest prompt excerpt a listing shows.
    public static let promptLimit = 1000

    public init(
        kind: String = "scene", prompt: String = "", frames: Int = 0, width: Int = 0, height: Int = 0, steps: Int = 0, extends: String? = nil
    ) {
        self.kind = kind
        self.extends = extends
        self.prompt = prompt.count > Self.promptLimit ? String(prompt.prefix(Self.promptLimit)) + "…" : prompt
        (self.frames, self.width, self.height, self.steps) = (frames, width, height, steps)
    }

    var isEmpty: Bool { frames == 0 && prompt.isEmpty }
    var json: String { String(decoding: (try? JSONEncoder().encode(self)) ?? Data(), as: UTF8.self) }
    init(json: String) { self = (try? JSONDecoder().decode(JobSummary.self, from: Data(json.utf8))) ?? JobSummary() }
}

/// Where jobs live: SQLite in the data folder for one host, or PostgreSQL shared by many (`PostgresJobStore`).
///
/// A worker's claim on a job is a lease with a fencing token (`JobRecord.fence`, raised by every claim): the worker
/// renews the lease while it runs the job, and writes the outcome only while its token still holds, so a worker that was
/// paused or cut off past its lease can never overwrite what a later claim, a cancel or a delete decided.
public protocol JobStore: Sendable {
    /// Whether other processes, on this host or others, run jobs from this store: then a starting server waits for
    /// their leases to lapse instead of taking every running job for one its own crash interrupted.
    var isShared: Bool { get }
    func insert(_ job: JobRecord) async throws
    /// The status, times and results of a job no worker holds (expiring a finished one); the request and the claim are
    /// left as they are.
    func update(_ job: JobRecord) async throws
    func job(id: String) async throws -> JobRecord?
    func job(fileID: String) async throws -> JobRecord?
    /// The job without its stored request (status reads and event streams: constant size whatever the request was).
    func jobWithoutRequest(id: String) async throws -> JobRecord?
    /// Jobs in a state, oldest first (optionally only those finished before a time).
    func jobs(_ status: JobRecord.Status, completedBefore: Double?) async throws -> [JobRecord]
    /// The ids of the jobs in a state in queue order, without their requests (queue positions are read often).
    func ids(_ status: JobRecord.Status) async throws -> [String]
    func count(_ status: JobRecord.Status) async throws -> Int
    /// A job's 1-based place among the queued (0 when it is not queued), with the queued and running counts: counted
    /// where the jobs are, so a status read costs the same with ten or ten thousand jobs waiting.
    func queuePlace(of id: String) async throws -> (position: Int, queued: Int, running: Int)
    /// The largest numeric file id used, so new ids stay unique after a restart.
    func largestFileID() async throws -> Int64
    /// The newest jobs first, in any state or one, without their requests.
    func recentJobs(status: JobRecord.Status?, limit: Int) async throws -> [JobRecord]
    /// Atomically takes the oldest queued job (video jobs only when `includingVideo`): marks it running at `startedAt`
    /// under a lease held by `worker` for `leaseSeconds`, counts the attempt, raises its fence and returns it. Two
    /// workers, in one process or on two hosts, never get the same job.
    func claimNext(startedAt: Double, includingVideo: Bool, worker: String, leaseSeconds: Double) async throws -> JobRecord?
    /// Extends the leases of claimed jobs to `until`; returns the ids of those whose claim no longer holds (cancelled,
    /// deleted, or taken back after a lapse), whose work should stop.
    func renewLeases(_ claims: [(id: String, fence: Int64)], until: Double) async throws -> [String]
    /// Writes a claimed job's new state (finished, or queued again) only while the claim `job.fence` still holds,
    /// running `publish` (the artifacts' renames into place) first, inside the same transaction, so files and state
    /// appear together. False, and `publish` not run, when the claim was lost.
    func settle(_ job: JobRecord, publishing publish: @escaping @Sendable () throws -> Void) async throws -> Bool
    /// An operator's second chance: a failed, cancelled or expired job, or a running one whose worker is stuck (its
    /// claim ends: the worker's outcome will be refused), goes back to the queue with no attempts counted. Nil when no
    /// such job (a queued or completed one is left as it is).
    func requeue(id: String) async throws -> JobRecord?
    /// Cancels a queued or running job at `time` and returns it; nil when there was no such job still to cancel.
    func cancel(id: String, at time: Double) async throws -> JobRecord?
    /// Takes back running jobs whose lease ended before `time` (every running job when `everyRunning`: a single-host
    /// server's restart): queued again with the attempt kept, or failed once `maxAttempts` were used. `discard` runs for
    /// each inside the transaction (removing its partial files) before the change is committed.
    func reclaimLapsed(at time: Double, everyRunning: Bool, maxAttempts: Int, discard: @escaping @Sendable (JobRecord) -> Void) async throws -> [JobRecord]
    func delete(id: String) async throws
    /// Removes failed, cancelled and expired jobs that finished before `cutoff`; returns how many.
    func purgeFinished(before cutoff: Double) async throws -> Int
    /// Runs `body` while no other process sharing the store runs one under the same `name` (a conversion made once,
    /// whichever node is asked; the others wait, then find its file). A single-host store runs it at once.
    func exclusively(_ name: String, _ body: @escaping @Sendable () async throws -> Void) async throws
    /// Tells every process sharing the store (PostgreSQL's NOTIFY), at most once, and only those listening now.
    func announce(_ event: StoreEvent) async throws
    /// What other processes announce, for as long as the stream is read (reconnecting as needed); nil when no other
    /// process shares the store.
    func events() -> AsyncStream<StoreEvent>?
}

/// News between the processes sharing a store, so none has to poll for it: a job was queued (idle workers wake), a
/// job was cancelled or deleted (its worker stops at once), a running job's progress (event streams on every API node).
public enum StoreEvent: Codable, Sendable, Equatable {
    case queued
    case cancelled(id: String)
    case progress(id: String, stage: String, step: Int, steps: Int, fraction: Double)

    /// Payloads stay far below NOTIFY's 8000 bytes: a stage is a short phrase, cut if a generator ever made it long.
    var payload: String {
        var event = self
        if case .progress(let id, let stage, let step, let steps, let fraction) = self, stage.utf8.count > 200 {
            event = .progress(id: id, stage: String(stage.prefix(200)), step: step, steps: steps, fraction: fraction)
        }
        return String(decoding: (try? JSONEncoder().encode(event)) ?? Data(), as: UTF8.self)
    }

    init?(payload: String) {
        guard let event = try? JSONDecoder().decode(StoreEvent.self, from: Data(payload.utf8)) else { return nil }
        self = event
    }
}

extension JobRecord {
    /// A job taken back from a lapsed or interrupted claim: queued again, or failed for good after `maxAttempts`.
    mutating func reclaim(at time: Double, maxAttempts: Int) {
        worker = nil
        leaseExpiresAt = nil
        if attempts >= maxAttempts {
            status = .failed
            error = "interrupted \(attempts) times; giving up"
            completedAt = time
        } else {
            status = .queued
            startedAt = nil
        }
    }
}

/// The store a `store` setting names: `sqlite` (the file at `sqlitePath`) or a PostgreSQL URL.
public enum JobStores {
    public static func open(_ choice: String, sqlitePath: String) async throws -> any JobStore {
        if choice == "sqlite" { return try SQLiteJobStore(path: sqlitePath) }
        return try await PostgresJobStore(location: PostgresLocation(url: choice))
    }
}

public struct JobStoreError: Error, CustomStringConvertible {
    public var message: String
    /// The store cannot be reached for now (a database restarting, a network cut): worth trying again (503).
    public var unavailable = false
    public var description: String { message }
    public init(message: String, unavailable: Bool = false) {
        self.message = message
        self.unavailable = unavailable
    }
}

/// The default store: one SQLite file in the data folder (write-ahead log, synchronous commits), its connection
/// confined behind a lock. One server owns it (the data folder's lock file says so), so it is not shared.
public final class SQLiteJobStore: JobStore, @unchecked Sendable {
    private let lock = Mutex(())
    private var db: OpaquePointer?
    public let path: String
    public var isShared: Bool { false }

    public init(path: String) throws {
        self.path = path
        var handle: OpaquePointer?
        guard sqlite3_open_v2(path, &handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nil) == SQLITE_OK else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            sqlite3_close(handle)
            throw JobStoreError(message: "\(path): \(message)")
        }
        db = handle
        // Another connection (a second worker process) may hold the write lock for a moment: wait, not fail.
        sqlite3_busy_timeout(handle, 10_000)
        try locked {
            try execute("PRAGMA journal_mode=WAL")
            try execute("PRAGMA synchronous=FULL")
            try execute("""
                CREATE TABLE IF NOT EXISTS jobs (
                    id TEXT PRIMARY KEY, file_id TEXT UNIQUE NOT NULL, status TEXT NOT NULL, request BLOB NOT NULL,
                    created_at REAL NOT NULL, started_at REAL, completed_at REAL, error TEXT, attempts INTEGER NOT NULL,
                    file_size INTEGER, seed INTEGER NOT NULL DEFAULT 0, timings TEXT, gaussians INTEGER)
                """)
            // Stores made before seeds, timings, summaries and leases were kept gain the columns.
            var existing: Set<String> = []
            try run("PRAGMA table_info(jobs)", row: { s in if let name = sqlite3_column_text(s, 1) { existing.insert(String(cString: name)) } })
            let added = [
                ("seed", "INTEGER NOT NULL DEFAULT 0"), ("timings", "TEXT"), ("gaussians", "INTEGER"), ("summary", "TEXT NOT NULL DEFAULT ''"),
                ("fence", "INTEGER NOT NULL DEFAULT 0"), ("worker", "TEXT"), ("lease_expires", "REAL"),
            ]
            for (column, type) in added where !existing.contains(column) {
                try execute("ALTER TABLE jobs ADD COLUMN \(column) \(type)")
            }
            try execute("CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created_at)")
        }
    }

    deinit { sqlite3_close(db) }

    /// Holds the connection for `body`'s statements, so a transaction's are not interleaved with another thread's.
    private func locked<T>(_ body: () throws -> T) throws -> T { try lock.withLock { _ in try body() } }

    private func execute(_ sql: String) throws {
        var message: UnsafeMutablePointer<CChar>?
        guard sqlite3_exec(db, sql, nil, nil, &message) == SQLITE_OK else {
            let text = message.map { String(cString: $0) } ?? "error"
            sqlite3_free(message)
            throw JobStoreError(message: "\(path): \(text)")
        }
    }

    /// A transaction that takes the write lock at once, committed when `body` returns and rolled back when it throws.
    private func transaction<T>(_ body: () throws -> T) throws -> T {
        try locked {
            try execute("BEGIN IMMEDIATE")
            do {
                let result = try body()
                try execute("COMMIT")
                return result
            } catch {
                try? execute("ROLLBACK")
                throw error
            }
        }
    }

    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    /// Runs `sql` with `bind` filling its parameters and `row` reading each result row (the caller holds the lock).
    private func run(_ sql: String, bind: (OpaquePointer?) -> Void = { _ in }, row: (OpaquePointer?) -> Void = { _ in }) throws {
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &statement, nil) == SQLITE_OK else {
            throw JobStoreError(message: "\(path): \(String(cString: sqlite3_errmsg(db)))")
        }
        defer { sqlite3_finalize(statement) }
        bind(statement)
        while true {
            let status = sqlite3_step(statement)
            if status == SQLITE_ROW { row(statement); continue }
            guard status == SQLITE_DONE else { throw JobStoreError(message: "\(path): \(String(cString: sqlite3_errmsg(db)))") }
            return
        }
    }

    private func query(_ sql: String, bind: (OpaquePointer?) -> Void = { _ in }, row: (OpaquePointer?) -> Void = { _ in }) throws {
        try locked { try run(sql, bind: bind, row: row) }
    }

    private static func bindText(_ s: OpaquePointer?, _ index: Int32, _ value: String?) {
        if let value { sqlite3_bind_text(s, index, value, -1, transient) } else { sqlite3_bind_null(s, index) }
    }

    private static func bindReal(_ s: OpaquePointer?, _ index: Int32, _ value: Double?) {
        if let value { sqlite3_bind_double(s, index, value) } else { sqlite3_bind_null(s, index) }
    }

    private static func bindInteger(_ s: OpaquePointer?, _ index: Int32, _ value: Int64?) {
        if let value { sqlite3_bind_int64(s, index, value) } else { sqlite3_bind_null(s, index) }
    }

    private func bindAll(_ s: OpaquePointer?, _ job: JobRecord) {
        Self.bindText(s, 1, job.id)
        Self.bindText(s, 2, job.fileID)
        Self.bindText(s, 3, job.status.rawValue)
        _ = job.request.withUnsafeBytes { sqlite3_bind_blob(s, 4, $0.baseAddress, Int32($0.count), Self.transient) }
        Self.bindReal(s, 5, job.createdAt)
        Self.bindReal(s, 6, job.startedAt)
        Self.bindReal(s, 7, job.completedAt)
        Self.bindText(s, 8, job.error)
        Self.bindInteger(s, 9, Int64(job.attempts))
        Self.bindInteger(s, 10, job.fileSize.map(Int64.init))
        Self.bindInteger(s, 11, job.seed)
        Self.bindText(s, 12, job.timings)
        Self.bindInteger(s, 13, job.gaussians.map(Int64.init))
        Self.bindText(s, 14, job.summary.json)
        Self.bindInteger(s, 15, job.fence)
        Self.bindText(s, 16, job.worker)
        Self.bindReal(s, 17, job.leaseExpiresAt)
    }

    private static func record(_ s: OpaquePointer?) -> JobRecord {
        func text(_ i: Int32) -> String? { sqlite3_column_text(s, i).map { String(cString: $0) } }
        func real(_ i: Int32) -> Double? { sqlite3_column_type(s, i) == SQLITE_NULL ? nil : sqlite3_column_double(s, i) }
        func integer(_ i: Int32) -> Int64? { sqlite3_column_type(s, i) == SQLITE_NULL ? nil : sqlite3_column_int64(s, i) }
        let blob = sqlite3_column_blob(s, 3)
        let count = Int(sqlite3_column_bytes(s, 3))
        let request = blob.map { Array(UnsafeRawBufferPointer(start: $0, count: count)) } ?? []
        var job = JobRecord(id: text(0) ?? "", fileID: text(1) ?? "", request: request, createdAt: real(4) ?? 0)
        job.status = JobRecord.Status(rawValue: text(2) ?? "failed") ?? .failed
        job.startedAt = real(5)
        job.completedAt = real(6)
        job.error = text(7)
        job.attempts = Int(integer(8) ?? 0)
        job.fileSize = integer(9).map(Int.init)
        job.seed = integer(10) ?? 0
        job.timings = text(11)
        job.gaussians = integer(12).map(Int.init)
        job.summary = JobSummary(json: text(13) ?? "")
        job.fence = integer(14) ?? 0
        job.worker = text(15)
        job.leaseExpiresAt = real(16)
        return job
    }

    static let columns =
        "id, file_id, status, request, created_at, started_at, completed_at, error, attempts, file_size, seed, timings, gaussians, summary, fence, worker, lease_expires"
    /// The same columns with an empty request in its place.
    static let lightColumns = columns.replacing("request,", with: "X'' AS request,")
    /// What a status change writes: everything but the request and the claim.
    static let statusColumns = "status=?3, started_at=?6, completed_at=?7, error=?8, attempts=?9, file_size=?10, timings=?12, gaussians=?13, summary=?14"
    /// A claim's end: its status change, and the claim's holder and lease as the record has them (none).
    static let settling = "UPDATE jobs SET \(statusColumns), worker=?16, lease_expires=?17 WHERE id=?1"

    public func insert(_ job: JobRecord) throws {
        try query("INSERT INTO jobs (\(Self.columns)) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", bind: { self.bindAll($0, job) })
    }

    public func update(_ job: JobRecord) throws {
        try query("UPDATE jobs SET \(Self.statusColumns) WHERE id=?1", bind: { self.bindAll($0, job) })
    }

    public func jobWithoutRequest(id: String) throws -> JobRecord? { try one("SELECT \(Self.lightColumns) FROM jobs WHERE id=?", id) }

    private func one(_ sql: String, _ key: String) throws -> JobRecord? {
        var found: JobRecord?
        try query(sql, bind: { Self.bindText($0, 1, key) }, row: { found = Self.record($0) })
        return found
    }

    public func job(id: String) throws -> JobRecord? { try one("SELECT \(Self.columns) FROM jobs WHERE id=?", id) }
    public func job(fileID: String) throws -> JobRecord? { try one("SELECT \(Self.columns) FROM jobs WHERE file_id=?", fileID) }

    public func jobs(_ status: JobRecord.Status, completedBefore: Double? = nil) throws -> [JobRecord] {
        var found: [JobRecord] = []
        try query(
            "SELECT \(Self.columns) FROM jobs WHERE status=?1 AND (?2 IS NULL OR completed_at < ?2) ORDER BY created_at, rowid",
            bind: { s in
                Self.bindText(s, 1, status.rawValue)
                Self.bindReal(s, 2, completedBefore)
            }, row: { found.append(Self.record($0)) })
        return found
    }

    public func ids(_ status: JobRecord.Status) throws -> [String] {
        var ids: [String] = []
        try query(
            "SELECT id FROM jobs WHERE status=? ORDER BY created_at, rowid", bind: { Self.bindText($0, 1, status.rawValue) },
            row: { s in if let text = sqlite3_column_text(s, 0) { ids.append(String(cString: text)) } })
        return ids
    }

    public func count(_ status: JobRecord.Status) throws -> Int {
        var n = 0
        try query("SELECT COUNT(*) FROM jobs WHERE status=?", bind: { Self.bindText($0, 1, status.rawValue) }, row: { n = Int(sqlite3_column_int64($0, 0)) })
        return n
    }

    public func queuePlace(of id: String) throws -> (position: Int, queued: Int, running: Int) {
        var place = (position: 0, queued: 0, running: 0)
        try query(
            """
            SELECT (SELECT COUNT(*) FROM jobs q, jobs j WHERE j.id=?1 AND j.status='queued' AND q.status='queued'
                        AND (q.created_at < j.created_at OR (q.created_at = j.created_at AND q.rowid <= j.rowid))),
                   (SELECT COUNT(*) FROM jobs WHERE status='queued'), (SELECT COUNT(*) FROM jobs WHERE status='running')
            """, bind: { Self.bindText($0, 1, id) },
            row: { s in place = (Int(sqlite3_column_int64(s, 0)), Int(sqlite3_column_int64(s, 1)), Int(sqlite3_column_int64(s, 2))) })
        return place
    }

    public func largestFileID() throws -> Int64 {
        var largest: Int64 = 0
        // The millisecond prefix (file ids carry random digits after it).
        try query("SELECT MAX(CAST(substr(file_id, 1, 13) AS INTEGER)) FROM jobs", row: { largest = sqlite3_column_int64($0, 0) })
        return largest
    }

    public func recentJobs(status: JobRecord.Status?, limit: Int) throws -> [JobRecord] {
        var found: [JobRecord] = []
        let filter = status == nil ? "" : "WHERE status=?1 "
        try query(
            "SELECT \(Self.lightColumns) FROM jobs \(filter)ORDER BY created_at DESC, rowid DESC LIMIT \(max(0, limit))",
            bind: { s in if let status { Self.bindText(s, 1, status.rawValue) } }, row: { found.append(Self.record($0)) })
        return found
    }

    public func claimNext(startedAt: Double, includingVideo: Bool = true, worker: String = "", leaseSeconds: Double = 30) throws -> JobRecord? {
        var claimed: JobRecord?
        try query(
            """
            UPDATE jobs SET status='running', started_at=?1, attempts=attempts+1, fence=fence+1, worker=?3, lease_expires=?1+?4
            WHERE id=(SELECT id FROM jobs WHERE status='queued' AND (?2 OR summary NOT LIKE '%"kind":"video"%')
                      ORDER BY created_at, rowid LIMIT 1) AND status='queued'
            RETURNING \(Self.columns)
            """,
            bind: {
                sqlite3_bind_double($0, 1, startedAt)
                sqlite3_bind_int($0, 2, includingVideo ? 1 : 0)
                Self.bindText($0, 3, worker)
                sqlite3_bind_double($0, 4, leaseSeconds)
            }, row: { claimed = Self.record($0) })
        return claimed
    }

    public func renewLeases(_ claims: [(id: String, fence: Int64)], until: Double) throws -> [String] {
        try transaction {
            var lost: [String] = []
            for claim in claims {
                var held = false
                try run(
                    "UPDATE jobs SET lease_expires=?1 WHERE id=?2 AND fence=?3 AND status='running' RETURNING id",
                    bind: { s in
                        sqlite3_bind_double(s, 1, until)
                        Self.bindText(s, 2, claim.id)
                        sqlite3_bind_int64(s, 3, claim.fence)
                    }, row: { _ in held = true })
                if !held { lost.append(claim.id) }
            }
            return lost
        }
    }

    public func settle(_ job: JobRecord, publishing publish: @escaping @Sendable () throws -> Void) throws -> Bool {
        try transaction {
            var held = false
            try run(
                "SELECT 1 FROM jobs WHERE id=?1 AND fence=?15 AND status='running'", bind: { self.bindAll($0, job) }, row: { _ in held = true })
            guard held else { return false }
            try publish()
            try run(Self.settling, bind: { self.bindAll($0, job) })
            return true
        }
    }

    public func requeue(id: String) throws -> JobRecord? {
        var found: JobRecord?
        try query(
            """
            UPDATE jobs SET status='queued', started_at=NULL, completed_at=NULL, error=NULL, attempts=0, worker=NULL, lease_expires=NULL
            WHERE id=?1 AND status IN ('failed', 'cancelled', 'expired', 'running') RETURNING \(Self.lightColumns)
            """, bind: { Self.bindText($0, 1, id) }, row: { found = Self.record($0) })
        return found
    }

    public func cancel(id: String, at time: Double) throws -> JobRecord? {
        try locked {
            var found: JobRecord?
            try run(
                """
                UPDATE jobs SET status='cancelled', completed_at=?2, error='cancelled', worker=NULL, lease_expires=NULL
                WHERE id=?1 AND status IN ('queued', 'running') RETURNING \(Self.lightColumns)
                """,
                bind: { s in
                    Self.bindText(s, 1, id)
                    sqlite3_bind_double(s, 2, time)
                }, row: { found = Self.record($0) })
            return found
        }
    }

    public func reclaimLapsed(at time: Double, everyRunning: Bool = false, maxAttempts: Int, discard: @escaping @Sendable (JobRecord) -> Void) throws -> [JobRecord] {
        try transaction {
            var lapsed: [JobRecord] = []
            try run(
                "SELECT \(Self.lightColumns) FROM jobs WHERE status='running' AND (?2 OR COALESCE(lease_expires, 0) < ?1) ORDER BY created_at, rowid",
                bind: { s in
                    sqlite3_bind_double(s, 1, time)
                    sqlite3_bind_int(s, 2, everyRunning ? 1 : 0)
                }, row: { lapsed.append(Self.record($0)) })
            for index in lapsed.indices {
                discard(lapsed[index])
                lapsed[index].reclaim(at: time, maxAttempts: maxAttempts)
                try run(Self.settling, bind: { self.bindAll($0, lapsed[index]) })
            }
            return lapsed
        }
    }

    public func delete(id: String) throws {
        try query("DELETE FROM jobs WHERE id=?", bind: { Self.bindText($0, 1, id) })
    }

    /// One host owns the file: nobody else to tell, nothing to hear, no one to wait for.
    public func exclusively(_ name: String, _ body: @escaping @Sendable () async throws -> Void) async throws { try await body() }
    public func announce(_ event: StoreEvent) {}
    public func events() -> AsyncStream<StoreEvent>? { nil }

    public func purgeFinished(before cutoff: Double) throws -> Int {
        var removed = 0
        try query(
            "DELETE FROM jobs WHERE status IN ('failed', 'cancelled', 'expired') AND completed_at < ?1 RETURNING id",
            bind: { sqlite3_bind_double($0, 1, cutoff) }, row: { _ in removed += 1 })
        return removed
    }
}
