import EngineCore
import Foundation
import Testing

@testable import Service

/// A worker whose device broke stops taking work, and the job it was running goes back to the queue for another.
struct DeviceHealthTests {
    /// A generator on a device that fails the way a lost GPU does: a driver error, not the request's fault.
    struct BrokenDevice: SceneGenerator {
        func generate(_ request: SceneRequest, seed: UInt64, progress: @escaping @Sendable (JobProgress) -> Void) async throws -> GeneratedScene {
            throw EngineError(.device, "cuStreamSynchronize: an illegal memory access was encountered")
        }
    }

    @Test func aBrokenDeviceStopsTakingWorkAndHandsItsJobBack() async throws {
        let folder = temporaryFolder("device")
        let service = GenerationService(store: try SQLiteJobStore(path: "\(folder)/jobs.sqlite"), generator: BrokenDevice(), dataDirectory: folder)
        try await service.start()
        let (job, _) = try await service.submit(Array(buffer: requestBody()))
        var readiness = await service.readiness
        for _ in 0..<200 where readiness == .ready {
            try await Task.sleep(for: .milliseconds(25))
            readiness = await service.readiness
        }
        guard case .failed(let reason) = readiness else {
            Issue.record("still \(readiness) after the device failed")
            return
        }
        #expect(reason.contains("illegal memory access") && reason.contains("restart"))
        let stored = try #require(try await service.job(id: job.id))
        #expect(stored.status == .queued && stored.attempts == 0 && stored.worker == nil)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".tmp") }.isEmpty)
        await #expect(throws: ServiceError.self) { try await service.submit(Array(buffer: requestBody())) }
        await service.stop()
    }
}
