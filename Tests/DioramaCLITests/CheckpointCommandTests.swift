import ArgumentParser
import Checkpoints
import Foundation
import Testing

@testable import DioramaCLI

struct CheckpointCommandTests {
    let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("CheckpointTests/Fixtures")

    func run(_ arguments: [String]) throws {
        var command = try DioramaCommand.parseAsRoot(arguments)
        try command.run()
    }

    @Test func convertWritesOneStateDictAsSafetensors() throws {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("diorama-cli-\(getpid()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        try run(["checkpoint", "convert", fixtures.appendingPathComponent("flashworld-like.ckpt").path, output,
                 "--prefix", "recon_decoder.", "--strip-prefix", "-q"])
        let converted = try CheckpointReader.open(path: output)
        #expect(converted.tensors.count == 15)
        #expect(converted.tensors.allSatisfy { !$0.name.hasPrefix("recon_decoder.") && $0.isDense })
        try run(["checkpoint", "inspect", output, "--limit", "0"])
    }

    @Test func badCheckpointsExitWithDataErrorsAndWriteNothing() {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("diorama-cli-bad-\(getpid()).safetensors").path
        for bad in ["corrupt/forbidden-global.pt", "corrupt/truncated.safetensors", "legacy.pt"] {
            #expect {
                try run(["checkpoint", "convert", fixtures.appendingPathComponent(bad).path, output, "-q"])
            } throws: { ($0 as? ExitCode)?.rawValue == 65 }
        }
        #expect(!FileManager.default.fileExists(atPath: output))
        #expect(throws: (any Error).self) { _ = try DioramaCommand.parseAsRoot(["checkpoint", "convert", "a.ckpt", "b.bin"]) }
        #expect(throws: (any Error).self) { _ = try DioramaCommand.parseAsRoot(["engine", "selftest", "--device", "tpu"]) }
    }
}
