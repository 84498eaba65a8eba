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

    /// The longest prompt excerpt a listing shows.
    public static let promptLimit = 1000

    public init(kind: String = "scene", prompt: String = "", frames: Int = 0, width: Int = 0, height: Int = 0, steps: Int = 0) {
        self.kind = kind
        self.prompt = prompt.count > Self.promptLimit ? String(prompt.prefix(Self.promptLimit)) + "…" : prompt
        (self.frames, self.width, self.height, self.steps) = (frames, width, height, steps)
    }

    var isEmpty: Bool { frames == 0 && prompt.isEmpty }
    var json: String { String(decoding: (try? JSONEncoder().encode(self)) ?? Data(), as: UTF8.self) }
    init(json: String) { self = (try? JSONDecoder().decode(JobSummary.self, from: Data(json.utf8))) ?? JobSummary() }
}

/// Where jobs live. SQLite on one machine; a PostgreSQL store for many GPU hosts implements the same protocol.
public protocol JobStore: Sendable {
    func insert(_ job: JobRecord) throws
    func update(_ job: JobRecord) throws
    func job(id: String) throws -> JobRecord?
    func job(fileID: String) throws -> JobRecord?
    /// The job without its stored request (status reads and event streams: constant size whatever the request was).
    func jobWithoutRequest(id: String) throws -> JobRecord?
    /// Jobs in a state, oldest first (optionally only those finished before a time).
    func jobs(_ status: JobRecord.Status, completedBefore: Double?) throws -> [JobRecord]
    /// The ids of queued jobs in queue order, without their requests (queue positions are read often).
    func queuedIDs() throws -> [String]
    func count(_ status: JobRecord.Status) throws -> Int
    /// The largest numeric file id used, so new ids stay unique after a restart.
    func largestFileID() throws -> Int64
    /// The newest jobs first, in any state or one, without their requests.
    func recentJobs(status: JobRecord.Status?, limit: Int) throws -> [JobRecord]
    /// Atomically takes the oldest queued job (video jobs only when `includingVideo`): marks it running at `startedAt`,
    /// counts the attempt, and returns it.
    /// Two workers (or two hosts sharing a store) never get the same job; PostgreSQL would use
    /// `SELECT … FOR UPDATE SKIP LOCKED` where SQLite uses one `UPDATE … RETURNING`.
    func claimNext(startedAt: Double, includingVideo: Bool) throws -> JobRecord?
    func delete(id: String) throws
    /// Removes failed, cancelled and expired jobs that finished before `cutoff`; returns how many.
    func purgeFinished(before cutoff: Double) throws -> Int
}

public struct JobStoreError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// The default store: one SQLite file in the data folder (write-ahead log, synchronous commits), its connection
/// confined behind a lock.
public final class SQLiteJobStore: JobStore, @unchecked Sendable {
    private let lock = Mutex(())
    private var db: OpaquePointer?
    public let path: String

    public init(path: String) throws {
        self.path = path
        var handle: OpaquePointer?
        guard sqlite3_open_v2(path, &handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nil) == SQLITE_OK else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            sqlite3_close(handle)
            throw JobStoreError(message: "\(path): \(message)")
        }
        db = handle
        // Another connection (a second worker process or host) may hold the write lock for a moment: wait, not fail.
        sqlite3_busy_timeout(handle, 10_000)
        try execute("PRAGMA journal_mode=WAL")
        try execute("PRAGMA synchronous=FULL")
        try execute("""
            CREATE TABLE IF NOT EXISTS jobs (
                id TEXT PRIMARY KEY, file_id TEXT UNIQUE NOT NULL, status TEXT NOT NULL, request BLOB NOT NULL,
                created_at REAL NOT NULL, started_at REAL, completed_at REAL, error TEXT, attempts INTEGER NOT NULL,
                file_size INTEGER, seed INTEGER NOT NULL DEFAULT 0, timings TEXT, gaussians INTEGER)
            """)
        // Stores made before seeds and timings were kept gain the columns.
        var existing: Set<String> = []
        try query("PRAGMA table_info(jobs)", row: { s in if let name = sqlite3_column_text(s, 1) { existing.insert(String(cString: name)) } })
        for (column, type) in [("seed", "INTEGER NOT NULL DEFAULT 0"), ("timings", "TEXT"), ("gaussians", "INTEGER"), ("summary", "TEXT NOT NULL DEFAULT ''")]
        where !existing.contains(column) {
            try execute("ALTER TABLE jobs ADD COLUMN \(column) \(type)")
        }
        try execute("CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created_at)")
    }

    deinit { sqlite3_close(db) }

    private func execute(_ sql: String) throws {
        try lock.withLock { _ in
            var message: UnsafeMutablePointer<CChar>?
            guard sqlite3_exec(db, sql, nil, nil, &message) == SQLITE_OK else {
                let text = message.map { String(cString: $0) } ?? "error"
                sqlite3_free(message)
                throw JobStoreError(message: "\(path): \(text)")
            }
        }
    }

    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    /// Runs `sql` with `bind` filling its parameters and `row` reading each result row.
    private func query(_ sql: String, bind: (OpaquePointer?) -> Void = { _ in }, row: (OpaquePointer?) -> Void = { _ in }) throws {
        try lock.withLock { _ in
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
    }

    private func bindAll(_ s: OpaquePointer?, _ job: JobRecord) {
        sqlite3_bind_text(s, 1, job.id, -1, Self.transient)
        sqlite3_bind_text(s, 2, job.fileID, -1, Self.transient)
        sqlite3_bind_text(s, 3, job.status.rawValue, -1, Self.transient)
        _ = job.request.withUnsafeBytes { sqlite3_bind_blob(s, 4, $0.baseAddress, Int32($0.count), Self.transient) }
        sqlite3_bind_double(s, 5, job.createdAt)
        if let v = job.startedAt { sqlite3_bind_double(s, 6, v) } else { sqlite3_bind_null(s, 6) }
        if let v = job.completedAt { sqlite3_bind_double(s, 7, v) } else { sqlite3_bind_null(s, 7) }
        if let v = job.error { sqlite3_bind_text(s, 8, v, -1, Self.transient) } else { sqlite3_bind_null(s, 8) }
        sqlite3_bind_int64(s, 9, Int64(job.attempts))
        if let v = job.fileSize { sqlite3_bind_int64(s, 10, Int64(v)) } else { sqlite3_bind_null(s, 10) }
        sqlite3_bind_int64(s, 11, job.seed)
        if let v = job.timings { sqlite3_bind_text(s, 12, v, -1, Self.transient) } else { sqlite3_bind_null(s, 12) }
        if let v = job.gaussians { sqlite3_bind_int64(s, 13, Int64(v)) } else { sqlite3_bind_null(s, 13) }
        sqlite3_bind_text(s, 14, job.summary.json, -1, Self.transient)
    }

    private static func record(_ s: OpaquePointer?) -> JobRecord {
        func text(_ i: Int32) -> String? { sqlite3_column_text(s, i).map { String(cString: $0) } }
        func real(_ i: Int32) -> Double? { sqlite3_column_type(s, i) == SQLITE_NULL ? nil : sqlite3_column_double(s, i) }
        let blob = sqlite3_column_blob(s, 3)
        let count = Int(sqlite3_column_bytes(s, 3))
        let request = blob.map { Array(UnsafeRawBufferPointer(start: $0, count: count)) } ?? []
        var job = JobRecord(id: text(0) ?? "", fileID: text(1) ?? "", request: request, createdAt: real(4) ?? 0)
        job.status = JobRecord.Status(rawValue: text(2) ?? "failed") ?? .failed
        job.startedAt = real(5)
        job.completedAt = real(6)
        job.error = text(7)
        job.attempts = Int(sqlite3_column_int64(s, 8))
        job.fileSize = sqlite3_column_type(s, 9) == SQLITE_NULL ? nil : Int(sqlite3_column_int64(s, 9))
        job.seed = sqlite3_column_int64(s, 10)
        job.timings = text(11)
        job.gaussians = sqlite3_column_type(s, 12) == SQLITE_NULL ? nil : Int(sqlite3_column_int64(s, 12))
        job.summary = JobSummary(json: text(13) ?? "")
        return job
    }

    static let columns = "id, file_id, status, request, created_at, started_at, completed_at, error, attempts, file_size, seed, timings, gaussians, summary"
    /// The same columns with an empty request in its place.
    static let lightColumns = columns.replacing("request,", with: "X'' AS request,")

    public func insert(_ job: JobRecord) throws {
        try query("INSERT INTO jobs (\(Self.columns)) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", bind: { self.bindAll($0, job) })
    }

    /// Everything but the request, which never changes after the insert (and may be absent from a light record).
    public func update(_ job: JobRecord) throws {
        try query(
            "UPDATE jobs SET id=?1, file_id=?2, status=?3, created_at=?5, started_at=?6, completed_at=?7, error=?8, attempts=?9, file_size=?10, seed=?11, timings=?12, gaussians=?13, summary=?14 WHERE id=?1",
            bind: { self.bindAll($0, job) })
    }

    public func jobWithoutRequest(id: String) throws -> JobRecord? { try one("SELECT \(Self.lightColumns) FROM jobs WHERE id=?", id) }

    private func one(_ sql: String, _ key: String) throws -> JobRecord? {
        var found: JobRecord?
        try query(sql, bind: { sqlite3_bind_text($0, 1, key, -1, Self.transient) }, row: { found = Self.record($0) })
        return found
    }

    public func job(id: String) throws -> JobRecord? { try one("SELECT \(Self.columns) FROM jobs WHERE id=?", id) }
    public func job(fileID: String) throws -> JobRecord? { try one("SELECT \(Self.columns) FROM jobs WHERE file_id=?", fileID) }

    public func jobs(_ status: JobRecord.Status, completedBefore: Double? = nil) throws -> [JobRecord] {
        var found: [JobRecord] = []
        try query(
            "SELECT \(Self.columns) FROM jobs WHERE status=?1 AND (?2 IS NULL OR completed_at < ?2) ORDER BY created_at, rowid",
            bind: { s in
                sqlite3_bind_text(s, 1, status.rawValue, -1, Self.transient)
                if let completedBefore { sqlite3_bind_double(s, 2, completedBefore) } else { sqlite3_bind_null(s, 2) }
            }, row: { found.append(Self.record($0)) })
        return found
    }

    public func queuedIDs() throws -> [String] {
        var ids: [String] = []
        try query(
            "SELECT id FROM jobs WHERE status='queued' ORDER BY created_at, rowid",
            row: { s in if let text = sqlite3_column_text(s, 0) { ids.append(String(cString: text)) } })
        return ids
    }

    public func count(_ status: JobRecord.Status) throws -> Int {
        var n = 0
        try query(
            "SELECT COUNT(*) FROM jobs WHERE status=?", bind: { sqlite3_bind_text($0, 1, status.rawValue, -1, Self.transient) },
            row: { n = Int(sqlite3_column_int64($0, 0)) })
        return n
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
            bind: { s in if let status { sqlite3_bind_text(s, 1, status.rawValue, -1, Self.transient) } }, row: { found.append(Self.record($0)) })
        return found
    }

    public func claimNext(startedAt: Double, includingVideo: Bool = true) throws -> JobRecord? {
        var claimed: JobRecord?
        try query(
            """
            UPDATE jobs SET status='running', started_at=?1, attempts=attempts+1
            WHERE id=(SELECT id FROM jobs WHERE status='queued' AND (?2 OR summary NOT LIKE '%"kind":"video"%')
                      ORDER BY created_at, rowid LIMIT 1) AND status='queued'
            RETURNING \(Self.columns)
            """,
            bind: {
                sqlite3_bind_double($0, 1, startedAt)
                sqlite3_bind_int($0, 2, includingVideo ? 1 : 0)
            }, row: { claimed = Self.record($0) })
        return claimed
    }

    public func delete(id: String) throws {
        try query("DELETE FROM jobs WHERE id=?", bind: { sqlite3_bind_text($0, 1, id, -1, Self.transient) })
    }

    public func purgeFinished(before cutoff: Double) throws -> Int {
        var removed = 0
        try query(
            "DELETE FROM jobs WHERE status IN ('failed', 'cancelled', 'expired') AND completed_at < ?1 RETURNING id",
            bind: { sqlite3_bind_double($0, 1, cutoff) }, row: { _ in removed += 1 })
        return removed
    }
}
