import Foundation
import Testing

@testable import Service

struct JobStoreTests {
    /// Two connections to one store file (two hosts, or two workers) claiming at once never get the same job, and
    /// every job is claimed exactly once in queue order per connection.
    @Test func claimsAreAtomicAcrossConnections() async throws {
        let folder = temporaryFolder("claims")
        let a = try SQLiteJobStore(path: "\(folder)/jobs.sqlite"), b = try SQLiteJobStore(path: "\(folder)/jobs.sqlite")
        for i in 0..<40 { try a.insert(JobRecord(id: "job-\(i)", fileID: String(1000 + i), request: [], createdAt: Double(i))) }
        async let fromA = Task.detached { var got: [String] = []; while let job = try a.claimNext(startedAt: 1) { got.append(job.id) }; return got }.value
        async let fromB = Task.detached { var got: [String] = []; while let job = try b.claimNext(startedAt: 2) { got.append(job.id) }; return got }.value
        let (first, second) = try await (fromA, fromB)
        #expect(Set(first).isDisjoint(with: second))
        #expect((first + second).count == 40 && Set(first + second).count == 40)
        let order = { (ids: [String]) in ids.map { Int($0.dropFirst(4))! } }
        #expect(order(first) == order(first).sorted() && order(second) == order(second).sorted())
        let claimed = try #require(try a.job(id: "job-0"))
        #expect(claimed.status == .running && claimed.attempts == 1 && claimed.startedAt != nil)
        #expect(try a.claimNext(startedAt: 3) == nil)
        // Seeds, timings and counts are kept.
        var job = JobRecord(id: "x", fileID: "1", request: Array("{}".utf8), createdAt: 99, seed: 99)
        job.timings = "[[\"a\",1]]"
        job.gaussians = 12
        try a.insert(job)
        #expect(try b.job(id: "x") == job)
    }
}
