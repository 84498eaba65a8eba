import Checkpoints
import EngineCore
import Testing

@testable import ModelLoading

struct WeightLoaderTests {
    let checkpoint = try! CheckpointReader.open(path: CheckpointFixtures.path("flashworld-like.ckpt"))

    /// The specs a module holding exactly the transformer's tensors would declare.
    var transformerSpecs: [ParameterSpec] {
        checkpoint.tensors.filter { $0.name.hasPrefix("transformer.") }.map {
            ParameterSpec(String($0.name.dropFirst("transformer.".count)), shape: $0.shape)
        }
    }

    @Test func matchingSpecsLoadStrictly() throws {
        let specs = transformerSpecs
        let weights = try WeightLoader.load(specs, from: checkpoint, prefix: "transformer.", source: "flashworld-like.ckpt")
        #expect(weights.count == specs.count)
        let patch = try #require(weights["patch_embedding.weight"])
        #expect(patch.dtype == .bfloat16 && patch.shape == [8, 6, 1, 2, 2])
        // Values as torch stored them (the manifest's first elements).
        #expect(Array(patch.floats().prefix(3)) == [-0.53515625, -0.11279296875, -1.53125])
        // A dtype the module asks for is converted on load.
        let asFloat = try WeightLoader.load(
            [ParameterSpec("patch_embedding.weight", shape: [8, 6, 1, 2, 2], dtype: .float32)], from: checkpoint,
            prefix: "transformer.", strict: false, source: "flashworld-like.ckpt")
        #expect(asFloat["patch_embedding.weight"]?.dtype == .float32)
        #expect(asFloat["patch_embedding.weight"]?.floats() == patch.floats())
    }

    @Test func everyMismatchIsReportedWithItsPathAndShapes() {
        var specs = transformerSpecs
        let dropped = specs.removeLast()
        specs[0].shape = specs[0].shape.map { $0 + 1 }
        specs.append(ParameterSpec("blocks.99.attn1.to_q.weight", shape: [4, 4]))
        #expect {
            _ = try WeightLoader.load(specs, from: checkpoint, prefix: "transformer.", source: "model.ckpt")
        } throws: { error in
            guard let report = error as? WeightLoadError else { return false }
            let text = report.description
            return report.missing.map(\.name) == ["blocks.99.attn1.to_q.weight"]
                && report.unexpected.map(\.name) == [dropped.name]
                && report.mismatched.map(\.name) == [specs[0].name]
                && text.contains("missing     blocks.99.attn1.to_q.weight [4, 4]")
                && text.contains("wrong shape \(specs[0].name)")
        }
    }
}
