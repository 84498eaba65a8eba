import FoundationEssentials
import Logging
import NIOCore
import NIOSSL
import PostgresNIO

/// Where `--store` points: a PostgreSQL URL, read the way libpq reads one (`postgres://user:password@host:port/db`,
/// `?host=/run/postgresql` for a socket folder, `?sslmode=disable|prefer|require`; `PGPASSWORD` when the URL has none).
public struct PostgresLocation: Sendable, Equatable {
    public var user: String
    public var password: String?
    public var host: String
    public var port: Int
    public var database: String
    /// The socket folder when `host` is a path (PostgreSQL's own convention); the socket is `.s.PGSQL.<port>` in it.
    public var socketFolder: String? { host.hasPrefix("/") ? host : nil }
    public var sslMode: String

    /// The URL as logs and errors show it: no password.
    public var redacted: String { "postgres://\(user)@\(socketFolder == nil ? "\(host):\(port)" : "[\(host)]")/\(database)" }

    public init(url text: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws(ServiceError) {
        func refuse(_ why: String) -> ServiceError {
            ServiceError(400, "store \"\(text)\": \(why); write it as postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE or sqlite")
        }
        var rest = Substring(text)
        guard let scheme = ["postgresql://", "postgres://"].first(where: { rest.hasPrefix($0) }) else {
            throw refuse("not a PostgreSQL URL")
        }
        rest = rest.dropFirst(scheme.count)
        var parameters: [String: String] = [:]
        if let question = rest.firstIndex(of: "?") {
            for pair in rest[rest.index(after: question)...].split(separator: "&") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2 else { throw refuse("the parameter \"\(pair)\" has no value") }
                parameters[String(parts[0])] = String(parts[1]).removingPercentEncoding ?? String(parts[1])
            }
            rest = rest[..<question]
        }
        guard let slash = rest.firstIndex(of: "/") else { throw refuse("it names no database") }
        database = String(rest[rest.index(after: slash)...]).removingPercentEncoding ?? ""
        guard !database.isEmpty else { throw refuse("it names no database") }
        var authority = rest[..<slash]
        var userPart: Substring?
        if let at = authority.lastIndex(of: "@") {
            userPart = authority[..<at]
            authority = authority[authority.index(after: at)...]
        }
        if let userPart, let colon = userPart.firstIndex(of: ":") {
            user = String(userPart[..<colon]).removingPercentEncoding ?? ""
            password = String(userPart[userPart.index(after: colon)...]).removingPercentEncoding
        } else {
            user = userPart.map { String($0).removingPercentEncoding ?? "" } ?? environment["PGUSER"] ?? environment["USER"] ?? "postgres"
            password = nil
        }
        if password == nil { password = environment["PGPASSWORD"] }
        guard !user.isEmpty else { throw refuse("its user is empty") }
        port = 5432
        if let colon = authority.lastIndex(of: ":"), !authority.hasSuffix("]") {
            guard let number = Int(authority[authority.index(after: colon)...]), (1...65535).contains(number) else {
                throw refuse("its port is not a number from 1 to 65535")
            }
            port = number
            authority = authority[..<colon]
        }
        if let number = parameters["port"] {
            guard let value = Int(number), (1...65535).contains(value) else { throw refuse("its port is not a number from 1 to 65535") }
            port = value
        }
        host = parameters["host"] ?? (authority.isEmpty ? "localhost" : String(authority))
        sslMode = parameters["sslmode"] ?? (host.hasPrefix("/") ? "disable" : "prefer")
        guard ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"].contains(sslMode) else {
            throw refuse("sslmode must be disable, prefer or require")
        }
    }

    var clientConfiguration: PostgresClient.Configuration {
        var configuration: PostgresClient.Configuration
        if let socketFolder {
            configuration = .init(unixSocketPath: "\(socketFolder)/.s.PGSQL.\(port)", username: user, password: password, database: database)
        } else {
            let tls: PostgresClient.Configuration.TLS
            switch sslMode {
            case "disable": tls = .disable
            case "allow", "prefer": tls = .prefer(.makeClientConfiguration())
            default: tls = .require(.makeClientConfiguration())
            }
            configuration = .init(host: host, port: port, username: user, password: password, database: database, tls: tls)
        }
        configuration.options.connectTimeout = .seconds(5)
        configuration.options.maximumConnections = 8
        return configuration
    }
}

/// Jobs in PostgreSQL, shared by every `diorama serve` pointed at it: API nodes and GPU workers on many hosts. Claims
/// take the oldest queued job with `FOR UPDATE SKIP LOCKED`; each is a lease renewed by the worker's heartbeat and
/// fenced by a token, so a lapsed worker's late writes are refused. The schema is created and migrated by version on
/// start, under an advisory lock so nodes starting together migrate once.
public final class PostgresJobStore: JobStore {
    public let location: PostgresLocation
    let client: PostgresClient
    private let runner: Task<Void, Never>
    private let logger = Logger(label: "diorama.store")
    /// Seconds an operation may wait for the database (a connection included) before it fails as unavailable.
    let operationTimeout: Double
    public var isShared: Bool { true }

    /// Each migration moves the schema one version on; a database at a later version than this binary knows is refused.
    static let migrations: [String] = [
        """
        CREATE TABLE jobs (
            id TEXT PRIMARY KEY, seq BIGSERIAL, file_id TEXT UNIQUE NOT NULL, status TEXT NOT NULL, kind TEXT NOT NULL,
            request BYTEA NOT NULL, created_at DOUBLE PRECISION NOT NULL, started_at DOUBLE PRECISION,
            completed_at DOUBLE PRECISION, error TEXT, attempts BIGINT NOT NULL, file_size BIGINT, seed BIGINT NOT NULL,
            timings TEXT, gaussians BIGINT, summary TEXT NOT NULL, fence BIGINT NOT NULL DEFAULT 0, worker TEXT,
            lease_expires DOUBLE PRECISION);
        CREATE INDEX jobs_status ON jobs (status, created_at, seq);
        """
    ]

    /// Connects (waiting up to `timeout` seconds for the server) and brings the schema to this binary's version.
    public init(location: PostgresLocation, timeout: Double = 10) async throws {
        self.location = location
        self.operationTimeout = timeout
        let client = PostgresClient(configuration: location.clientConfiguration)
        self.client = client
        runner = Task { await client.run() }
        do {
            try await migrate()
        } catch {
            runner.cancel()
            throw error
        }
    }

    deinit { runner.cancel() }

    /// Stops the connection pool (the process is ending).
    public func close() { runner.cancel() }

    func migrate() async throws {
        let versions = Self.migrations
        try await timed("preparing the schema") { client, logger in
            try await client.withTransaction(logger: logger) { connection in
                // One node migrates; the others wait here, then find the work done.
                try await connection.query("SELECT pg_advisory_xact_lock(7415021)", logger: logger)
                try await connection.query("CREATE TABLE IF NOT EXISTS diorama_schema (version BIGINT NOT NULL)", logger: logger)
                var current: Int64 = 0
                for try await version in try await connection.query("SELECT MAX(version) FROM diorama_schema", logger: logger).decode(Int64?.self) {
                    current = version ?? 0
                }
                guard current <= Int64(versions.count) else {
                    throw JobStoreError(message: "the database's schema is version \(current), newer than this diorama knows (\(versions.count)); upgrade diorama")
                }
                for (index, migration) in versions.enumerated().dropFirst(Int(current)) {
                    for statement in migration.split(separator: ";") where !statement.allSatisfy(\.isWhitespace) {
                        try await connection.query(PostgresQuery(unsafeSQL: String(statement)), logger: logger)
                    }
                    try await connection.query("INSERT INTO diorama_schema (version) VALUES (\(Int64(index + 1)))", logger: logger)
                }
            }
        }
    }

    /// Runs `body` against the database, failing as unavailable after `operationTimeout` seconds (a server that is down
    /// or unreachable leaves a connection request waiting) and naming what went wrong in PostgreSQL's own words.
    func timed<T: Sendable>(_ what: String, _ body: @escaping @Sendable (PostgresClient, Logger) async throws -> T) async throws -> T {
        let (client, logger, timeout, location) = (self.client, self.logger, operationTimeout, self.location)
        do {
            return try await withThrowingTaskGroup(of: T?.self) { group in
                group.addTask { try await body(client, logger) }
                group.addTask {
                    try await Task.sleep(for: .seconds(timeout))
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let result = first else {
                    throw JobStoreError(message: "PostgreSQL at \(location.redacted) did not answer in \(Int(timeout)) s", unavailable: true)
                }
                return result
            }
        } catch let error as PSQLError {
            throw Self.storeError(error, location: location, doing: what)
        } catch let error as PostgresTransactionError {
            // What went wrong inside the transaction is the error; a failed BEGIN, COMMIT or ROLLBACK is the database's.
            if let inner = error.closureError { throw (inner as? PSQLError).map { Self.storeError($0, location: location, doing: what) } ?? inner }
            let database = [error.beginError, error.commitError, error.rollbackError].compactMap { $0 as? PSQLError }.first
            throw database.map { Self.storeError($0, location: location, doing: what) } ?? JobStoreError(message: "PostgreSQL at \(location.redacted), \(what): \(error)", unavailable: true)
        }
    }

    static func storeError(_ error: PSQLError, location: PostgresLocation, doing what: String) -> JobStoreError {
        if let message = error.serverInfo?[.message] {
            let state = error.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
            // Class 08 is a connection problem, 57P0x an operator or crash shutdown, 53 too few resources: all pass.
            let passing = error.serverInfo?[.sqlState].map { $0.hasPrefix("08") || $0.hasPrefix("57P") || $0.hasPrefix("53") } ?? false
            return JobStoreError(message: "PostgreSQL at \(location.redacted), \(what): \(message)\(state)", unavailable: passing)
        }
        let cause = error.underlying.map { ": \($0)" } ?? ""
        return JobStoreError(message: "PostgreSQL at \(location.redacted), \(what): \(error.code)\(cause)", unavailable: true)
    }

    // MARK: Rows

    static let columns =
        "id, file_id, status, request, created_at, started_at, completed_at, error, attempts, file_size, seed, timings, gaussians, summary, fence, worker, lease_expires"
    static let lightColumns = columns.replacing("request,", with: "''::bytea AS request,")

    static func record(_ row: PostgresRow) throws -> JobRecord {
        let cells = row.makeRandomAccess()
        let request = try cells["request"].decode(ByteBuffer.self)
        var job = JobRecord(
            id: try cells["id"].decode(String.self), fileID: try cells["file_id"].decode(String.self),
            request: Array(request.readableBytesView), createdAt: try cells["created_at"].decode(Double.self),
            seed: try cells["seed"].decode(Int64.self))
        job.status = JobRecord.Status(rawValue: try cells["status"].decode(String.self)) ?? .failed
        job.startedAt = try cells["started_at"].decode(Double?.self)
        job.completedAt = try cells["completed_at"].decode(Double?.self)
        job.error = try cells["error"].decode(String?.self)
        job.attempts = Int(try cells["attempts"].decode(Int64.self))
        job.fileSize = try cells["file_size"].decode(Int64?.self).map(Int.init)
        job.timings = try cells["timings"].decode(String?.self)
        job.gaussians = try cells["gaussians"].decode(Int64?.self).map(Int.init)
        job.summary = JobSummary(json: try cells["summary"].decode(String.self))
        job.fence = try cells["fence"].decode(Int64.self)
        job.worker = try cells["worker"].decode(String?.self)
        job.leaseExpiresAt = try cells["lease_expires"].decode(Double?.self)
        return job
    }

    static func records(_ rows: PostgresRowSequence) async throws -> [JobRecord] {
        var found: [JobRecord] = []
        for try await row in rows { found.append(try record(row)) }
        return found
    }

    /// The status, times and results of `job`, as `UPDATE … SET` assignments (the request and the claim untouched).
    static func statusAssignments(_ job: JobRecord) -> PostgresQuery.StringInterpolation {
        var sql = PostgresQuery.StringInterpolation(literalCapacity: 200, interpolationCount: 9)
        sql.appendLiteral("status=")
        sql.appendInterpolation(job.status.rawValue)
        sql.appendLiteral(", started_at=")
        sql.appendInterpolation(job.startedAt)
        sql.appendLiteral(", completed_at=")
        sql.appendInterpolation(job.completedAt)
        sql.appendLiteral(", error=")
        sql.appendInterpolation(job.error)
        sql.appendLiteral(", attempts=")
        sql.appendInterpolation(Int64(job.attempts))
        sql.appendLiteral(", file_size=")
        sql.appendInterpolation(job.fileSize.map(Int64.init))
        sql.appendLiteral(", timings=")
        sql.appendInterpolation(job.timings)
        sql.appendLiteral(", gaussians=")
        sql.appendInterpolation(job.gaussians.map(Int64.init))
        sql.appendLiteral(", summary=")
        sql.appendInterpolation(job.summary.json)
        return sql
    }

    /// `UPDATE jobs SET <status>, worker, lease_expires WHERE id=…` for a job whose claim ends.
    static func settling(_ job: JobRecord) -> PostgresQuery {
        var query = PostgresQuery(stringInterpolation: statusAssignments(job))
        query.sql = "UPDATE jobs SET " + query.sql + ", worker=NULL, lease_expires=NULL WHERE id=$\(query.binds.count + 1)"
        query.binds.append(job.id)
        return query
    }

    // MARK: JobStore

    public func insert(_ job: JobRecord) async throws {
        try await timed("storing a job") { client, logger in
            _ = try await client.query(
                """
                INSERT INTO jobs (id, file_id, status, kind, request, created_at, started_at, completed_at, error, attempts,
                    file_size, seed, timings, gaussians, summary, fence, worker, lease_expires)
                VALUES (\(job.id), \(job.fileID), \(job.status.rawValue), \(job.summary.kind), \(ByteBuffer(bytes: job.request)),
                    \(job.createdAt), \(job.startedAt), \(job.completedAt), \(job.error), \(Int64(job.attempts)),
                    \(job.fileSize.map(Int64.init)), \(job.seed), \(job.timings), \(job.gaussians.map(Int64.init)),
                    \(job.summary.json), \(job.fence), \(job.worker), \(job.leaseExpiresAt))
                """, logger: logger)
        }
    }

    public func update(_ job: JobRecord) async throws {
        var query = PostgresQuery(stringInterpolation: Self.statusAssignments(job))
        query.sql = "UPDATE jobs SET " + query.sql + " WHERE id=$\(query.binds.count + 1)"
        query.binds.append(job.id)
        try await timed("updating a job") { [query] client, logger in _ = try await client.query(query, logger: logger) }
    }

    func one(_ query: PostgresQuery, _ what: String) async throws -> JobRecord? {
        try await timed(what) { client, logger in try await Self.records(client.query(query, logger: logger)).first }
    }

    public func job(id: String) async throws -> JobRecord? {
        try await one("SELECT \(unescaped: Self.columns) FROM jobs WHERE id=\(id)", "reading a job")
    }

    public func job(fileID: String) async throws -> JobRecord? {
        try await one("SELECT \(unescaped: Self.columns) FROM jobs WHERE file_id=\(fileID)", "reading a job")
    }

    public func jobWithoutRequest(id: String) async throws -> JobRecord? {
        try await one("SELECT \(unescaped: Self.lightColumns) FROM jobs WHERE id=\(id)", "reading a job")
    }

    public func jobs(_ status: JobRecord.Status, completedBefore: Double?) async throws -> [JobRecord] {
        try await timed("listing jobs") { client, logger in
            try await Self.records(
                client.query(
                    """
                    SELECT \(unescaped: Self.columns) FROM jobs WHERE status=\(status.rawValue)
                    AND (\(completedBefore)::double precision IS NULL OR completed_at < \(completedBefore)) ORDER BY created_at, seq
                    """, logger: logger))
        }
    }

    public func ids(_ status: JobRecord.Status) async throws -> [String] {
        try await timed("reading the queue") { client, logger in
            var ids: [String] = []
            let rows = try await client.query("SELECT id FROM jobs WHERE status=\(status.rawValue) ORDER BY created_at, seq", logger: logger)
            for try await id in rows.decode(String.self) { ids.append(id) }
            return ids
        }
    }

    public func count(_ status: JobRecord.Status) async throws -> Int {
        try await timed("counting jobs") { client, logger in
            var n: Int64 = 0
            for try await value in try await client.query("SELECT COUNT(*) FROM jobs WHERE status=\(status.rawValue)", logger: logger).decode(Int64.self) {
                n = value
            }
            return Int(n)
        }
    }

    public func queuePlace(of id: String) async throws -> (position: Int, queued: Int, running: Int) {
        try await timed("reading the queue") { client, logger in
            var place = (position: 0, queued: 0, running: 0)
            let rows = try await client.query(
                """
                SELECT (SELECT COUNT(*) FROM jobs q, jobs j WHERE j.id=\(id) AND j.status='queued' AND q.status='queued'
                            AND (q.created_at, q.seq) <= (j.created_at, j.seq)),
                       (SELECT COUNT(*) FROM jobs WHERE status='queued'), (SELECT COUNT(*) FROM jobs WHERE status='running')
                """, logger: logger)
            for try await (position, queued, running) in rows.decode((Int64, Int64, Int64).self) {
                place = (Int(position), Int(queued), Int(running))
            }
            return place
        }
    }

    public func largestFileID() async throws -> Int64 {
        try await timed("reading file ids") { client, logger in
            var largest: Int64 = 0
            // The millisecond prefix (file ids carry random digits after it).
            let rows = try await client.query("SELECT MAX(CAST(substr(file_id, 1, 13) AS BIGINT)) FROM jobs", logger: logger)
            for try await value in rows.decode(Int64?.self) { largest = value ?? 0 }
            return largest
        }
    }

    public func recentJobs(status: JobRecord.Status?, limit: Int) async throws -> [JobRecord] {
        try await timed("listing jobs") { client, logger in
            try await Self.records(
                client.query(
                    """
                    SELECT \(unescaped: Self.lightColumns) FROM jobs WHERE (\(status?.rawValue)::text IS NULL OR status=\(status?.rawValue))
                    ORDER BY created_at DESC, seq DESC LIMIT \(Int64(max(0, limit)))
                    """, logger: logger))
        }
    }

    public func claimNext(startedAt: Double, includingVideo: Bool, worker: String, leaseSeconds: Double) async throws -> JobRecord? {
        try await one(
            """
            UPDATE jobs SET status='running', started_at=\(startedAt), attempts=attempts+1, fence=fence+1, worker=\(worker),
                lease_expires=\(startedAt + leaseSeconds)
            WHERE id=(SELECT id FROM jobs WHERE status='queued' AND (\(includingVideo) OR kind <> 'video')
                      ORDER BY created_at, seq LIMIT 1 FOR UPDATE SKIP LOCKED)
            RETURNING \(unescaped: Self.columns)
            """, "claiming a job")
    }

    public func renewLeases(_ claims: [(id: String, fence: Int64)], until: Double) async throws -> [String] {
        let (ids, fences) = (claims.map(\.id), claims.map(\.fence))
        let held = try await timed("renewing leases") { client, logger in
            var held: Set<String> = []
            let rows = try await client.query(
                """
                UPDATE jobs SET lease_expires=\(until) FROM unnest(\(ids)::text[], \(fences)::bigint[]) AS claim(id, fence)
                WHERE jobs.id=claim.id AND jobs.fence=claim.fence AND jobs.status='running' RETURNING jobs.id
                """, logger: logger)
            for try await id in rows.decode(String.self) { held.insert(id) }
            return held
        }
        return ids.filter { !held.contains($0) }
    }

    public func settle(_ job: JobRecord, publishing publish: @escaping @Sendable () throws -> Void) async throws -> Bool {
        let update = Self.settling(job)
        return try await timed("storing a job's outcome") { client, logger in
            try await client.withTransaction(logger: logger) { connection in
                // The row stays locked until the commit: a lapse sweep skips it, a cancel waits for it.
                let rows = try await connection.query(
                    "SELECT 1 FROM jobs WHERE id=\(job.id) AND fence=\(job.fence) AND status='running' FOR UPDATE", logger: logger)
                var held = false
                for try await _ in rows { held = true }
                guard held else { return false }
                try publish()
                try await connection.query(update, logger: logger)
                return true
            }
        }
    }

    public func requeue(id: String) async throws -> JobRecord? {
        try await one(
            """
            UPDATE jobs SET status='queued', started_at=NULL, completed_at=NULL, error=NULL, attempts=0, worker=NULL, lease_expires=NULL
            WHERE id=\(id) AND status IN ('failed', 'cancelled', 'expired', 'running') RETURNING \(unescaped: Self.lightColumns)
            """, "queueing a job again")
    }

    public func cancel(id: String, at time: Double) async throws -> JobRecord? {
        try await one(
            """
            UPDATE jobs SET status='cancelled', completed_at=\(time), error='cancelled', worker=NULL, lease_expires=NULL
            WHERE id=\(id) AND status IN ('queued', 'running') RETURNING \(unescaped: Self.lightColumns)
            """, "cancelling a job")
    }

    public func reclaimLapsed(at time: Double, everyRunning: Bool, maxAttempts: Int, discard: @escaping @Sendable (JobRecord) -> Void) async throws -> [JobRecord] {
        try await timed("taking back lapsed jobs") { client, logger in
            try await client.withTransaction(logger: logger) { connection in
                // Rows a worker is settling are locked: skipped now, and no longer running once it commits.
                var lapsed = try await Self.records(
                    connection.query(
                        """
                        SELECT \(unescaped: Self.lightColumns) FROM jobs WHERE status='running'
                        AND (\(everyRunning) OR COALESCE(lease_expires, 0) < \(time)) ORDER BY created_at, seq FOR UPDATE SKIP LOCKED
                        """, logger: logger))
                for index in lapsed.indices {
                    discard(lapsed[index])
                    lapsed[index].reclaim(at: time, maxAttempts: maxAttempts)
                    try await connection.query(Self.settling(lapsed[index]), logger: logger)
                }
                return lapsed
            }
        }
    }

    public func delete(id: String) async throws {
        try await timed("deleting a job") { client, logger in _ = try await client.query("DELETE FROM jobs WHERE id=\(id)", logger: logger) }
    }

    public func purgeFinished(before cutoff: Double) async throws -> Int {
        try await timed("purging finished jobs") { client, logger in
            var removed = 0
            let rows = try await client.query(
                "DELETE FROM jobs WHERE status IN ('failed', 'cancelled', 'expired') AND completed_at < \(cutoff) RETURNING id", logger: logger)
            for try await _ in rows { removed += 1 }
            return removed
        }
    }

    /// A session advisory lock on one leased connection: released by the unlock, or by PostgreSQL itself when the
    /// holder's connection ends (a node that dies mid-conversion holds nobody up).
    public func exclusively(_ name: String, _ body: @escaping @Sendable () async throws -> Void) async throws {
        let (logger, location) = (self.logger, self.location)
        do {
            try await client.withConnection { connection in
                try await connection.query("SELECT pg_advisory_lock(hashtext(\(name)))", logger: logger)
                let outcome: Result<Void, any Error>
                do {
                    try await body()
                    outcome = .success(())
                } catch {
                    outcome = .failure(error)
                }
                _ = try? await connection.query("SELECT pg_advisory_unlock(hashtext(\(name)))", logger: logger)
                try outcome.get()
            }
        } catch let error as PSQLError {
            throw Self.storeError(error, location: location, doing: "waiting for \(name)")
        }
    }

    /// The channel every node listens on.
    static let channel = "diorama_events"

    public func announce(_ event: StoreEvent) async throws {
        let payload = event.payload
        try await timed("announcing an event") { client, logger in
            _ = try await client.query("SELECT pg_notify(\(Self.channel), \(payload))", logger: logger)
        }
    }

    public func events() -> AsyncStream<StoreEvent>? {
        let (stream, continuation) = AsyncStream.makeStream(of: StoreEvent.self, bufferingPolicy: .bufferingNewest(1000))
        let client = self.client
        let listener = Task {
            while !Task.isCancelled {
                do {
                    try await client.withConnection { connection in
                        try await connection.listen(on: Self.channel) { notifications in
                            for try await notification in notifications {
                                if let event = StoreEvent(payload: notification.payload) { continuation.yield(event) }
                            }
                        }
                    }
                } catch {
                    // The connection went (a restart, a network cut): listen again shortly; what was missed meanwhile,
                    // the workers' polling and heartbeats still find.
                    try? await Task.sleep(for: .seconds(1))
                }
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in listener.cancel() }
        return stream
    }
}
