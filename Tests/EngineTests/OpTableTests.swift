import EngineCore
import Foundation
import Testing

@testable import EngineCPU
import EngineCheck

extension OpFixtures {
    static let folderURL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/ops")
    // A missing or malformed fixture is a broken checkout: fail loudly.
    static let shared = try! OpFixtures(folder: folderURL)
}

enum FusedFixtures {
    static let shared = try? OpFixtures(
        folder: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/fused"))
}

struct OpTableTests {
    @Test(arguments: OpFixtures.shared.manifest.cases)
    func cpuBackendMatchesPyTorch(_ c: OpFixtures.Case) throws {
        let inputs = try c.inputs.map(OpFixtures.shared.load)
        let outputs = try runCase(c, inputs: inputs, on: CPUBackend.shared)
        let expected = try c.outputs.map(OpFixtures.shared.load)
        // max over an axis also returns indices in PyTorch; the table returns the values.
        let compared = c.op == "max" ? 1 : expected.count
        #expect(outputs.count >= compared, "\(c.name): \(outputs.count) outputs")
        for (i, (mine, theirs)) in zip(outputs, expected).prefix(compared).enumerated() {
            let (ok, detail) = compare(mine, theirs, c.tolerance)
            #expect(ok, "\(c.name) output \(i): \(detail)")
        }
    }

    /// The fused ops against PyTorch's own arithmetic (`tools/engine/make_fused_fixtures.py`).
    @Test(arguments: FusedFixtures.shared?.manifest.cases ?? [])
    func fusedOpsMatchPyTorch(_ c: OpFixtures.Case) throws {
        let fixtures = try #require(FusedFixtures.shared)
        let outputs = try runCase(c, inputs: try c.inputs.map(fixtures.load), on: CPUBackend.shared)
        for (i, (mine, theirs)) in zip(outputs, try c.outputs.map(fixtures.load)).enumerated() {
            let (ok, detail) = compare(mine, theirs, c.tolerance)
            #expect(ok, "\(c.name) output \(i): \(detail)")
        }
    }

    @Test func everyFixtureOpIsCovered() {
        #expect(OpFixtures.shared.manifest.cases.count >= 70)
        let ops = Set(OpFixtures.shared.manifest.cases.map(\.op))
        for required in ["linear", "conv2d", "patch_embed_3d", "layer_norm", "t5_rms_norm", "channel_rms_norm", "silu", "gelu_tanh",
            "sigmoid", "softmax", "sdpa", "rope_apply", "rope_3d_frequencies", "timestep_embedding", "t5_relative_buckets",
            "embedding", "upsample_nearest2x", "avg_pool2x2", "pad", "concat", "split", "permute", "sum", "cast", "matmul"]
        {
            #expect(ops.contains(required), "no fixture for \(required)")
        }
    }
}
