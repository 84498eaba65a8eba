import Foundation
import Hummingbird
import Synchronization
import Testing

@testable import Service

/// Both stores keep the same promises about claims, leases and fences; PostgreSQL's are also kept across processes,
/// hosts and its own restarts.
struct SharedStoreTests {
    enum Kind: String, CaseIterable, Sendable { case sqlite, postgres }

    /// Two connections to one store (two workers, or two hosts) and what keeps the store alive.
    struct Stores: Sendable {
        let a: any JobStore
        let b: any JobStore
        let keepAlive: ThrowawayPostgres?
    }

    static func stores(_ kind: Kind) async throws -> Stores {
        switch kind {
        case .sqlite:
            let path = "\(temporaryFolder("store"))/jobs.sqlite"
            return Stores(a: try SQLiteJobStore(path: path), b: try SQLiteJobStore(path: path), keepAlive: nil)
        case .postgres:
            let cluster = try ThrowawayPostgres()
            return Stores(a: try await cluster.store(), b: try await cluster.store(), keepAlive: cluster)
        }
    }

    static func drain(_ store: any JobStore, _ worker: String) async throws -> [String] {
        var got: [String] = []
        while let job = try await store.claimNext(startedAt: 1, includingVideo: true, worker: worker, leaseSeconds: 30) { got.append(job.id) }
        return got
    }

    static func kinds() -> [Kind] { ThrowawayPostgres.available ? Kind.allCases : [.sqlite] }

    /// Claims from two connections at once never overlap, each takes jobs in queue order, and every job is claimed once.
    @Test(arguments: kinds()) func claimsAreAtomicAcrossConnections(kind: Kind) async throws {
        let stores = try await Self.stores(kind)
        for i in 0..<40 { try await stores.a.insert(JobRecord(id: "job-\(i)", fileID: String(1000 + i), request: [1, 2], createdAt: Double(i))) }
        async let fromA = Self.drain(stores.a, "a")
        async let fromB = Self.drain(stores.b, "b")
        let (first, second) = try await (fromA, fromB)
        #expect(Set(first).isDisjoint(with: second))
        #expect((first + second).count == 40 && Set(first + second).count == 40)
        let order = { (ids: [String]) in ids.map { Int($0.dropFirst(4))! } }
        #expect(order(first) == order(first).sorted() && order(second) == order(second).sorted())
        let claimed = try #require(try await stores.b.job(id: "job-0"))
        #expect(claimed.status == .running && claimed.attempts == 1 && claimed.fence == 1 && claimed.request == [1, 2])
        #expect(claimed.worker == "a" || claimed.worker == "b")
        let (running, queued) = (try await stores.a.ids(.running), try await stores.a.count(.queued))
        #expect(running.count == 40 && queued == 0)
        // Seeds, timings, summaries and counts come back as stored.
        var job = JobRecord(id: "x", fileID: "1", request: Array("{}".utf8), createdAt: 99, seed: 99)
        (job.timings, job.gaussians, job.summary) = ("[[\"a\",1]]", 12, JobSummary(kind: "video", prompt: "p", frames: 5, width: 64, height: 32, steps: 2))
        try await stores.a.insert(job)
        #expect(try await stores.b.job(id: "x") == job)
        #expect(try await stores.b.job(fileID: "1") == job)
        #expect(try await stores.b.jobWithoutRequest(id: "x")?.request == [])
        #expect(try await stores.b.largestFileID() == 1039)
        // A scene-only worker passes over the video job.
        #expect(try await stores.b.claimNext(startedAt: 2, includingVideo: false, worker: "b", leaseSeconds: 30) == nil)
        #expect(try await stores.b.claimNext(startedAt: 2, includingVideo: true, worker: "b", leaseSeconds: 30)?.id == "x")
    }

    /// A lapsed claim is taken back and claimed again with a higher fence; the first worker's late outcome and renewals
    /// are refused, its files never published; the live claim settles with its files.
    @Test(arguments: kinds()) func fencesRefuseALapsedWorker(kind: Kind) async throws {
        let stores = try await Self.stores(kind)
        try await stores.a.insert(JobRecord(id: "j", fileID: "7", request: [], createdAt: 1))
        let first = try #require(try await stores.a.claimNext(startedAt: 100, includingVideo: true, worker: "w1", leaseSeconds: 5))
        #expect(first.fence == 1 && first.leaseExpiresAt == 105)
        #expect(try await stores.a.renewLeases([(id: "j", fence: 1)], until: 110) == [])
        // Not lapsed yet at 109: nothing is taken back.
        #expect(try await stores.b.reclaimLapsed(at: 109, everyRunning: false, maxAttempts: 3, discard: { _ in }).isEmpty)
        let discarded = Mutex<[String]>([])
        let taken = try await stores.b.reclaimLapsed(at: 111, everyRunning: false, maxAttempts: 3, discard: { job in discarded.withLock { $0.append(job.id) } })
        #expect(taken.map(\.id) == ["j"] && taken[0].status == .queued && discarded.withLock { $0 } == ["j"])
        let second = try #require(try await stores.b.claimNext(startedAt: 112, includingVideo: true, worker: "w2", leaseSeconds: 5))
        #expect(second.fence == 2 && second.attempts == 2 && second.worker == "w2")

        let published = Mutex(0)
        var late = first
        late.status = .completed
        #expect(try await stores.a.settle(late, publishing: { published.withLock { $0 += 1 } }) == false)
        #expect(published.withLock { $0 } == 0)
        #expect(try await stores.a.renewLeases([(id: "j", fence: 1)], until: 200) == ["j"])
        var done = second
        (done.status, done.completedAt, done.fileSize, done.worker, done.leaseExpiresAt) = (.completed, 113, 42, nil, nil)
        #expect(try await stores.b.settle(done, publishing: { published.withLock { $0 += 1 } }) == true)
        #expect(published.withLock { $0 } == 1)
        let stored = try #require(try await stores.a.job(id: "j"))
        #expect(stored.status == .completed && stored.fileSize == 42 && stored.worker == nil && stored.fence == 2)
        // A finished job cannot be cancelled; a publish that fails leaves the claim unsettled.
        #expect(try await stores.a.cancel(id: "j", at: 114) == nil)
        try await stores.a.insert(JobRecord(id: "k", fileID: "8", request: [], createdAt: 2))
        var claim = try #require(try await stores.a.claimNext(startedAt: 120, includingVideo: true, worker: "w1", leaseSeconds: 5))
        claim.status = .completed
        await #expect(throws: ServiceError.self) { try await stores.a.settle(claim, publishing: { throw ServiceError(500, "disk gone") }) }
        #expect(try await stores.b.job(id: "k")?.status == .running)
    }

    /// A cancel on one connection is seen by the worker on another at its next renewal; its outcome is refused.
    @Test(arguments: kinds()) func cancelsReachTheWorkerThroughItsLease(kind: Kind) async throws {
        let stores = try await Self.stores(kind)
        try await stores.a.insert(JobRecord(id: "c", fileID: "9", request: [], createdAt: 1))
        try await stores.a.insert(JobRecord(id: "q", fileID: "10", request: [], createdAt: 2))
        let before = try await stores.b.queuePlace(of: "q")
        #expect(before == (position: 2, queued: 2, running: 0))
        let claim = try #require(try await stores.a.claimNext(startedAt: 1, includingVideo: true, worker: "w", leaseSeconds: 30))
        let (waiting, running) = (try await stores.b.queuePlace(of: "q"), try await stores.b.queuePlace(of: "c"))
        #expect(waiting == (position: 1, queued: 1, running: 1) && running == (position: 0, queued: 1, running: 1))
        let cancelled = try #require(try await stores.b.cancel(id: "c", at: 5))
        #expect(cancelled.status == .cancelled && cancelled.error == "cancelled" && cancelled.worker == nil)
        #expect(try await stores.a.renewLeases([(id: "c", fence: claim.fence)], until: 40) == ["c"])
        var outcome = claim
        outcome.status = .completed
        #expect(try await stores.a.settle(outcome, publishing: {}) == false)
        #expect(try await stores.a.job(id: "c")?.status == .cancelled)
        // A queued job is cancelled at once and never claimed; deleting one leaves no trace.
        #expect(try await stores.b.cancel(id: "q", at: 6)?.status == .cancelled)
        #expect(try await stores.a.claimNext(startedAt: 7, includingVideo: true, worker: "w", leaseSeconds: 30) == nil)
        try await stores.b.delete(id: "q")
        #expect(try await stores.a.job(id: "q") == nil)
        #expect(try await stores.a.purgeFinished(before: 10) == 1)
    }

    /// A job whose workers keep vanishing fails after max_attempts; a restart of a single-host store takes back every
    /// running job whatever its lease.
    @Test(arguments: kinds()) func lapsesCountAttempts(kind: Kind) async throws {
        let stores = try await Self.stores(kind)
        try await stores.a.insert(JobRecord(id: "r", fileID: "11", request: [], createdAt: 1))
        for round in 0..<2 {
            let time = Double(round * 100)
            #expect(try await stores.a.claimNext(startedAt: time, includingVideo: true, worker: "w", leaseSeconds: 1) != nil)
            let taken = try await stores.b.reclaimLapsed(at: time + 10, everyRunning: false, maxAttempts: 2, discard: { _ in })
            #expect(taken.first?.status == (round == 0 ? .queued : .failed))
        }
        let failed = try #require(try await stores.a.job(id: "r"))
        #expect(failed.status == .failed && failed.attempts == 2 && failed.error?.contains("interrupted 2 times") == true)
        try await stores.a.insert(JobRecord(id: "s", fileID: "12", request: [], createdAt: 2))
        _ = try await stores.a.claimNext(startedAt: 1000, includingVideo: true, worker: "w", leaseSeconds: 3600)
        #expect(try await stores.b.reclaimLapsed(at: 1001, everyRunning: true, maxAttempts: 3, discard: { _ in }).map(\.id) == ["s"])
        #expect(try await stores.a.ids(.queued) == ["s"])
    }

    /// PostgreSQL stopped at once (as in a crash or failover): operations fail as unavailable within the timeout, and
    /// the same store works again, with its data, once the server is back.
    @Test(.enabled(if: ThrowawayPostgres.available, "PostgreSQL is not installed here (apt-get install postgresql)"))
    func aRestartedDatabaseIsReconnected() async throws {
        let cluster = try ThrowawayPostgres()
        let store = try await cluster.store(timeout: 8)
        try await store.insert(JobRecord(id: "kept", fileID: "1", request: [9], createdAt: 1))
        try cluster.stop()
        let began = Date()
        do {
            _ = try await store.count(.queued)
            Issue.record("a stopped database answered")
        } catch let error as JobStoreError {
            #expect(error.unavailable, "\(error)")
        }
        #expect(Date().timeIntervalSince(began) < 16, "bounded by the store's timeout, not hung")
        try cluster.start()
        var found: JobRecord?
        for _ in 0..<50 where found == nil {
            found = try? await store.job(id: "kept")
            if found == nil { try await Task.sleep(for: .milliseconds(200)) }
        }
        #expect(found?.request == [9])
        // A second start of the schema at the same version changes nothing.
        let again = try await cluster.store()
        #expect(try await again.count(.queued) == 1)
    }

    /// What one node announces, every other node listening hears, in order; a single-host store has no listeners.
    @Test(.enabled(if: ThrowawayPostgres.available, "PostgreSQL is not installed here (apt-get install postgresql)"))
    func announcementsReachTheOtherNodes() async throws {
        let cluster = try ThrowawayPostgres()
        let (speaker, listener) = (try await cluster.store(), try await cluster.store())
        let events = try #require(listener.events())
        let heard = Mutex<[StoreEvent]>([])
        let reader = Task { for await event in events { heard.withLock { $0.append(event) } } }
        defer { reader.cancel() }
        // The listener may still be connecting: announce until it hears one (workers' polling covers such a gap).
        for _ in 0..<100 where heard.withLock({ $0.isEmpty }) {
            try await speaker.announce(.queued)
            try await Task.sleep(for: .milliseconds(100))
        }
        let sent: [StoreEvent] = [.progress(id: "p", stage: "step 2 of 4", step: 2, steps: 4, fraction: 0.5), .cancelled(id: "p")]
        for event in sent { try await speaker.announce(event) }
        for _ in 0..<100 where heard.withLock({ $0.suffix(2) != sent[...] }) { try await Task.sleep(for: .milliseconds(50)) }
        let got = heard.withLock { $0 }
        #expect(got.first == .queued && Array(got.suffix(2)) == sent, "\(got)")
        #expect(try SQLiteJobStore(path: "\(temporaryFolder("quiet"))/jobs.sqlite").events() == nil)
    }

    /// How many run inside `convert 1.splat` at once (and at most), and how many ran under another name.
    final class Occupancy: Sendable {
        let state = Mutex((now: 0, most: 0, other: 0))
    }

    static func occupy(_ store: PostgresJobStore, _ name: String, _ inside: Occupancy) async throws {
        try await store.exclusively(name) {
            inside.state.withLock {
                if name == "convert 1.splat" { $0.now += 1; $0.most = max($0.most, $0.now) } else { $0.other += 1 }
            }
            try await Task.sleep(for: .milliseconds(150))
            inside.state.withLock { if name == "convert 1.splat" { $0.now -= 1 } }
        }
    }

    /// Work under one name runs on one node at a time (conversions made once across nodes); other names run beside it.
    @Test(.enabled(if: ThrowawayPostgres.available, "PostgreSQL is not installed here (apt-get install postgresql)"))
    func exclusiveWorkIsOneAtATime() async throws {
        let cluster = try ThrowawayPostgres()
        let (a, b) = (try await cluster.store(), try await cluster.store())
        let inside = Occupancy()
        let began = Date()
        async let first: Void = Self.occupy(a, "convert 1.splat", inside)
        async let second: Void = Self.occupy(b, "convert 1.splat", inside)
        async let third: Void = Self.occupy(b, "convert 2.splat", inside)
        _ = try await (first, second, third)
        #expect(inside.state.withLock { $0.most } == 1 && inside.state.withLock { $0.other } == 1)
        #expect(Date().timeIntervalSince(began) >= 0.3)
        // A failure inside still releases the lock.
        await #expect(throws: ServiceError.self) { try await a.exclusively("convert 1.splat") { throw ServiceError(500, "no") } }
        try await b.exclusively("convert 1.splat") {}
    }

    /// A store that cannot be reached is a 503 worth retrying; a store that answers with a problem is a 500.
    @Test func anUnreachableStoreIs503WithRetryAfter() {
        let answer = HTTPResponses.error(JobStoreError(message: "PostgreSQL at postgres://a@b:5432/c did not answer in 10 s", unavailable: true))
        #expect(answer.status.code == 503 && answer.headers[.retryAfter] == "5")
        #expect(HTTPResponses.error(JobStoreError(message: "the schema is newer than this diorama")).status.code == 500)
    }

    /// The store URL is read as libpq reads it, and mistakes are named.
    @Test func postgresURLs() throws {
        let plain = try PostgresLocation(url: "postgres://ann:s%40cret@db.example:6543/jobs?sslmode=require", environment: [:])
        #expect(plain.user == "ann" && plain.password == "s@cret" && plain.host == "db.example" && plain.port == 6543)
        #expect(plain.database == "jobs" && plain.sslMode == "require" && plain.redacted == "postgres://ann@db.example:6543/jobs")
        let socket = try PostgresLocation(url: "postgresql://ann@/jobs?host=/run/postgresql", environment: ["PGPASSWORD": "pw"])
        #expect(socket.socketFolder == "/run/postgresql" && socket.port == 5432 && socket.password == "pw" && socket.sslMode == "disable")
        for bad in ["mysql://a@b/c", "postgres://a@b", "postgres://a@b:99999/c", "postgres://a@b/c?sslmode=maybe", "postgres://a@b/c?port"] {
            #expect(throws: ServiceError.self) { try PostgresLocation(url: bad, environment: [:]) }
        }
        var configuration = ServiceConfiguration()
        try configuration.set("role", "worker")
        #expect(throws: ServiceError.self) { try configuration.validated() }
        try configuration.set("store", "postgres://a@b/c")
        #expect(try configuration.validated().role == .worker)
        #expect(throws: ServiceError.self) { try configuration.set("role", "gpu") }
        #expect(throws: ServiceError.self) { try configuration.set("lease_seconds", "0.5") }
    }
}
