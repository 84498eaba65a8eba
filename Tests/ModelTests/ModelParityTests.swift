import Checkpoints
import EngineCPU
import EngineCheck
import EngineCore
import Foundation
import ModelLoading
import Testing

@testable import Models

/// Tiny random-weight models saved by diffusers and transformers themselves (`tools/models/make_model_fixtures.py`),
/// with inputs and the reference outputs computed in float32 on the CPU.
enum ModelFixtures {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static func path(_ name: String) -> String { folder.appendingPathComponent(name).path }

    /// Every tensor of a safetensors file, as float32 (integers kept).
    static func tensors(_ name: String) throws -> [String: Tensor] {
        let checkpoint = try CheckpointReader.open(path: path(name))
        var out: [String: Tensor] = [:]
        for t in checkpoint.tensors { out[t.name] = try WeightLoader.tensor(from: t) }
        return out
    }
}

struct WanTransformerParityTests {
    @Test func tinyTransformerMatchesDiffusers() throws {
        let configuration = try readConfiguration(WanTransformerConfiguration.self, at: ModelFixtures.path("wan-tiny/config.json"))
        let weights = try ModelWeights.load(
            WanTransformer.parameterSpecs(configuration), from: ModelFixtures.path("wan-tiny/diffusion_pytorch_model.safetensors"))
        let model = try WanTransformer(configuration: configuration, weights: weights)
        let inputs = try ModelFixtures.tensors("wan-tiny/inputs.safetensors")
        let expected = try ModelFixtures.tensors("wan-tiny/outputs.safetensors")
        var trace = WanTransformer.Trace()
        let output = try model(inputs["hidden_states"]!, timestep: inputs["timestep"]!, text: inputs["encoder_hidden_states"]!, on: CPUBackend.shared, trace: &trace)
        #expect(output.shape == expected["sample"]!.shape)
        let error = relativeError(output, expected["sample"]!)
        #expect(error < 1e-4, "relative error \(error)")
    }

    @Test func shapesAndConfigurationsAreChecked() throws {
        var bad = WanTransformerConfiguration.flashWorld
        bad.qkNorm = "rms_norm"
        #expect(throws: ModelError.self) { try bad.validate() }
        #expect(WanTransformer.parameterSpecs(.flashWorld).first { $0.name == "patch_embedding.weight" }?.shape == [3072, 1174, 1, 2, 2])
        #expect(WanTransformer.parameterSpecs(.flashWorld).first { $0.name == "proj_out.weight" }?.shape == [4288, 3072])
    }
}

struct UMT5ParityTests {
    @Test func tinyEncoderMatchesTransformers() throws {
        let configuration = try readConfiguration(UMT5Configuration.self, at: ModelFixtures.path("umt5-tiny/config.json"))
        let checkpoint = try CheckpointReader.open(path: ModelFixtures.path("umt5-tiny/model.safetensors"))
        // The tied input embedding may be saved under its second name too.
        var specs = UMT5Encoder.parameterSpecs(configuration)
        if checkpoint.tensor(named: "encoder.embed_tokens.weight") != nil {
            specs.append(ParameterSpec("encoder.embed_tokens.weight", shape: [configuration.vocabSize, configuration.dModel]))
        }
        let weights = try ModelWeights.load(specs, from: ModelFixtures.path("umt5-tiny/model.safetensors"))
        let model = try UMT5Encoder(configuration: configuration, weights: weights)
        let inputs = try ModelFixtures.tensors("umt5-tiny/inputs.safetensors")
        let expected = try ModelFixtures.tensors("umt5-tiny/outputs.safetensors")
        let masked = try model(inputs["input_ids"]!, mask: inputs["attention_mask"]!, on: CPUBackend.shared)
        let error = relativeError(masked, expected["last_hidden_state"]!)
        #expect(error < 1e-4, "relative error \(error)")
    }
}
