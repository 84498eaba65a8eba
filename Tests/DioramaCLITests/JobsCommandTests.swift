import Foundation
import Service
import Testing

/// `diorama jobs` on a SQLite store, through the binary as an operator runs it.
struct JobsCommandTests {
    static func diorama(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let process = Process()
        process.executableURL = repository.appendingPathComponent(".build/debug/diorama")
        process.arguments = arguments
        let (output, errors) = (Pipe(), Pipe())
        (process.standardOutput, process.standardError) = (output, errors)
        try process.run()
        let stdout = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, stdout, stderr)
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: ".build/debug/diorama"), "the debug binary is not built"))
    func listShowRequeueAndPurge() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("diorama-jobs-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let store = try SQLiteJobStore(path: "\(folder)/jobs.sqlite")
        for (index, status) in [JobRecord.Status.failed, .completed, .cancelled].enumerated() {
            var job = JobRecord(id: "job-\(status.rawValue)", fileID: String(100 + index), request: [], createdAt: Double(index))
            (job.status, job.attempts, job.completedAt) = (status, 3, 10)
            job.error = status == .failed ? "interrupted 3 times; giving up" : nil
            job.summary = JobSummary(prompt: "a \(status.rawValue) room", frames: 2, width: 64, height: 32, steps: 4)
            try store.insert(job)
        }
        let all = try Self.diorama(["jobs", "list", "--data-dir", folder])
        #expect(all.status == 0 && all.stdout.split(separator: "\n").count == 3, "\(all)")
        #expect(all.stdout.split(separator: "\n").first?.hasPrefix("job-cancelled  cancelled  scene") == true)
        let failed = try Self.diorama(["jobs", "list", "--data-dir", folder, "--status", "failed"])
        #expect(failed.stdout.hasPrefix("job-failed  failed") && failed.stdout.contains("\"a failed room\""))
        let shown = try Self.diorama(["jobs", "show", "job-failed", "--data-dir", folder])
        #expect(shown.stdout.contains("status: failed\n") && shown.stdout.contains("error: interrupted 3 times; giving up"))

        let requeued = try Self.diorama(["jobs", "requeue", "job-failed", "--data-dir", folder])
        #expect(requeued.status == 0 && requeued.stdout.hasPrefix("queued again: job-failed  queued"))
        let again = try #require(try store.job(id: "job-failed"))
        #expect(again.status == .queued && again.attempts == 0 && again.error == nil)
        let refused = try Self.diorama(["jobs", "requeue", "job-completed", "--data-dir", folder])
        #expect(refused.status == 64 && refused.stderr.hasPrefix("error: job job-completed is not in this store, or is queued or completed"))

        let purged = try Self.diorama(["jobs", "purge", "--data-dir", folder])
        #expect(purged.status == 0 && purged.stdout == "removed 1 finished job\n")
        #expect(try store.job(id: "job-cancelled") == nil && store.job(id: "job-completed") != nil)

        let missing = try Self.diorama(["jobs", "list", "--data-dir", "\(folder)/nowhere"])
        #expect(missing.status == 64 && missing.stderr.hasPrefix("error: no job store at \(folder)/nowhere/jobs.sqlite"))
        let badStatus = try Self.diorama(["jobs", "list", "--data-dir", folder, "--status", "done"])
        #expect(badStatus.status == 64 && badStatus.stderr.contains("--status must be queued, running"))
    }
}

/// `diorama bench store` on SQLite: every job claimed once, figures reported; a bad count is a usage error.
struct StoreBenchTests {
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: ".build/debug/diorama"), "the debug binary is not built"))
    func theStoreBenchClaimsEveryJobOnce() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("diorama-bench-\(UUID().uuidString)").path
        let run = try JobsCommandTests.diorama(["bench", "store", "--jobs", "60", "--workers", "4", "--readers", "1", "--dir", folder, "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        let figures = (try JSONSerialization.jsonObject(with: Data(run.stdout.utf8))) as? [String: Any] ?? [:]
        #expect(figures["claimed_twice"] as? Int == 0 && (figures["claims_per_second"] as? Double ?? 0) > 0, "\(figures)")
        #expect(!FileManager.default.fileExists(atPath: "\(folder)/bench-store.sqlite"), "the bench removes its store")
        let bad = try JobsCommandTests.diorama(["bench", "store", "--workers", "0"])
        #expect(bad.status == 64 && bad.stderr.contains("--workers 1 to 256"))
        let url = try JobsCommandTests.diorama(["bench", "store", "--store", "mysql://x/y"])
        #expect(url.status == 64 && url.stderr.contains("not a PostgreSQL URL"))
    }
}
