import Cameras
import Checkpoints
import EngineCPU
import EngineCore
import Foundation
import Testing

@testable import FlashWorld
@testable import Models

/// A model folder in the public layout, written from the tiny model's weights: Wan2.2's diffusers subfolders plus a
/// FlashWorld checkpoint (`transformer.*`, `recon_decoder.*`), so the loader is exercised end to end.
struct ModelFolderTests {
    static func safetensors(_ tensors: [String: Tensor], prefix: String = "") -> [UInt8] {
        let names = tensors.keys.sorted()
        let items = names.map { name -> SafetensorsWriter.Item in
            let t = tensors[name]!
            return SafetensorsWriter.Item(name: prefix + name, dtype: .F32, shape: t.shape, byteCount: t.count * 4)
        }
        return SafetensorsWriter.header(for: items, metadata: ["format": "pt"]) + names.flatMap { tensors[$0]!.contiguousBytes() }
    }

    static func writeFolder(_ model: FlashWorldModel, to folder: URL) throws {
        let fm = FileManager.default
        for sub in ["tokenizer", "text_encoder", "transformer", "vae"] {
            try fm.createDirectory(at: folder.appendingPathComponent(sub), withIntermediateDirectories: true)
        }
        try fm.copyItem(atPath: ModelFixtures.path("tokenizer-tiny/tokenizer.json"), toPath: folder.appendingPathComponent("tokenizer/tokenizer.json").path)
        let encoder = JSONEncoder()
        try encoder.encode(model.textEncoder.configuration).write(to: folder.appendingPathComponent("text_encoder/config.json"))
        try Data(safetensors(model.textEncoder.weights.tensors)).write(to: folder.appendingPathComponent("text_encoder/model.safetensors"))
        try encoder.encode(model.transformer.configuration).write(to: folder.appendingPathComponent("transformer/config.json"))
        try encoder.encode(model.vaeEncoder.configuration).write(to: folder.appendingPathComponent("vae/config.json"))
        try Data(safetensors(model.vaeEncoder.weights.tensors)).write(to: folder.appendingPathComponent("vae/diffusion_pytorch_model.safetensors"))
        var combined: [String: Tensor] = [:]
        for (k, v) in model.transformer.weights.tensors { combined["transformer." + k] = v }
        for (k, v) in model.reconstruction.weights.tensors { combined["recon_decoder." + k] = v }
        try Data(safetensors(combined)).write(to: folder.appendingPathComponent("model.safetensors"))
    }

    @Test func aFolderInThePublicLayoutLoadsAndGenerates() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("diorama-model-\(getpid())")
        defer { try? FileManager.default.removeItem(at: folder) }
        // The fixture tokenizer has 2003 pieces; the text encoder's vocabulary must cover them.
        let original = try FlashWorldModel.tiny(seed: 11, vocabularySize: 2003, on: CPUBackend.shared)
        try Self.writeFolder(original, to: folder)
        let loaded = try ModelFolder.load(folder.path, on: CPUBackend.shared, precision: .float32)
        #expect(loaded.featureChannels == original.featureChannels && loaded.latentChannels == original.latentChannels)
        #expect(loaded.transformer.weights["blocks.1.ffn.net.2.weight"].floats() == original.transformer.weights["blocks.1.ffn.net.2.weight"].floats())
        #expect(loaded.reconstruction.weights["gs_head.gs_proj.bias"].floats() == original.reconstruction.weights["gs_head.gs_proj.bias"].floats())
        let path = CameraPath.keyframes([.forward], intrinsics: NormalizedIntrinsics(verticalFieldOfView: 60, width: 64, height: 32))
        var noise = SeededNoise(seed: 1)
        let result = try FlashWorldPipeline(model: loaded, backend: CPUBackend.shared).generate(
            GenerationRequest(prompt: "a tiny garden", cameras: path.cameras, frames: 2, width: 64, height: 32), noise: &noise)
        #expect(result.cloud.count == 2 * 2 * 16 * 32)
        // In the low memory mode the text encoder and the transformer are prepared on the host and stream; the
        // scene is the same.
        let low = try ModelFolder.load(folder.path, on: CPUBackend.shared, precision: .float32, memory: .low, host: CPUBackend.shared)
        #expect(low.textEncoder.streamsLayers && low.transformer.streamsBlocks)
        var again = SeededNoise(seed: 1)
        let streamed = try FlashWorldPipeline(model: low, backend: CPUBackend.shared).generate(
            GenerationRequest(prompt: "a tiny garden", cameras: path.cameras, frames: 2, width: 64, height: 32), noise: &again)
        #expect(streamed.cloud == result.cloud)
        // fp8-lean quantises the text encoder's linears as they load, as the prepared tiny model's are.
        let lean = try ModelFolder.load(folder.path, on: CPUBackend.shared, precision: .fp8Lean)
        let name = "encoder.block.1.layer.1.DenseReluDense.wo.weight"
        let prepared = try original.prepared(for: CPUBackend.shared, precision: .fp8Lean)
        #expect(lean.textEncoder.weights[name].dtype == .float8E4M3)
        #expect(lean.textEncoder.weights[name].floats() == prepared.textEncoder.weights[name].floats())
        #expect(lean.textEncoder.weights[ModelPrecision.scaleName(name)].floats() == prepared.textEncoder.weights[ModelPrecision.scaleName(name)].floats())
    }

    @Test func brokenFoldersAreNamedBeforeAnyWork() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("diorama-broken-\(getpid())")
        defer { try? FileManager.default.removeItem(at: folder) }
        try Self.writeFolder(try FlashWorldModel.tiny(seed: 12, vocabularySize: 2003, on: CPUBackend.shared), to: folder)
        // No FlashWorld checkpoint.
        try FileManager.default.moveItem(at: folder.appendingPathComponent("model.safetensors"), to: folder.appendingPathComponent("other.safetensors"))
        #expect { _ = try ModelFolder.load(folder.path, on: CPUBackend.shared, precision: .float32) } throws: { "\($0)".contains("model.ckpt") }
        // A checkpoint with a weight of the wrong shape: the report names it.
        var broken = try FlashWorldModel.tiny(seed: 12, vocabularySize: 2003, on: CPUBackend.shared).transformer.weights.tensors
        broken["proj_out.bias"] = try Tensor([1, 2, 3], shape: [3])
        var combined: [String: Tensor] = [:]
        for (k, v) in broken { combined["transformer." + k] = v }
        for (k, v) in try FlashWorldModel.tiny(seed: 12, vocabularySize: 2003, on: CPUBackend.shared).reconstruction.weights.tensors { combined["recon_decoder." + k] = v }
        try Data(Self.safetensors(combined)).write(to: folder.appendingPathComponent("model.safetensors"))
        #expect { _ = try ModelFolder.load(folder.path, on: CPUBackend.shared, precision: .float32) } throws: { "\($0)".contains("wrong shape proj_out.bias") }
        // Not a model folder at all.
        #expect { _ = try ModelFolder.load(folder.appendingPathComponent("vae").path, on: CPUBackend.shared, precision: .float32) } throws: { "\($0)".contains("tokenizer/tokenizer.json is missing") }
    }
}
