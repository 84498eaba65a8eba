import Cameras
import EngineCPU
import EngineCheck
import EngineCore
import Testing

@testable import FlashWorld
@testable import Models

/// The dtype policy decided at load: weights converted once (FP8 block linears with their scales, trimmed causal
/// kernels, the head's rescaling), and generation in reduced precision staying close to float32.
struct PrecisionTests {
    let cpu = CPUBackend.shared

    @Test func fp8QuantisationKeepsTheLargestWeightAt448() throws {
        let weight = try Tensor([0.5, -2, 0.25, 1, 0, -0.001], shape: [2, 3])
        let (quantized, scale) = try ModelPrecision.quantizedFP8(weight, on: cpu)
        #expect(quantized.dtype == .float8E4M3)
        #expect(scale.floats() == [2.0 / 448])
        let restored = try cpu.multiply(try cpu.cast(quantized, to: .float32), scale).floats()
        #expect(restored[1] == -2, "amax maps to ±448 exactly")
        #expect(zip(restored, weight.floats()).allSatisfy { abs($0 - $1) <= 0.07 * max(abs($1), 0.01) })
    }

    @Test func preparationConvertsOnceAndKeepsTheFunction() throws {
        let model = try FlashWorldModel.tiny(on: cpu)
        let fp8 = try model.prepared(for: cpu, precision: .fp8)
        let blockWeight = "blocks.0.attn1.to_q.weight"
        #expect(fp8.transformer.weights[blockWeight].dtype == .float8E4M3)
        #expect(fp8.transformer.weights.optional("blocks.0.attn1.to_q.weight_scale")?.count == 1)
        #expect(fp8.transformer.weights["patch_embedding.weight"].dtype == .bfloat16)
        #expect(fp8.transformer.activationType == .bfloat16 && fp8.reconstruction.activationType == .bfloat16)
        // Causal kernels arrive at their last tap, 4D, once.
        #expect(fp8.vaeEncoder.weights.tensors.values.allSatisfy { $0.rank <= 4 })
        // The head's rescaled projection equals the per-call one.
        let float32 = try model.prepared(for: cpu, precision: .float32)
        let head = GaussianHead(weights: float32.reconstruction.weights)
        let unprepared = try GaussianHead(weights: model.reconstruction.weights).projection(on: cpu)
        let prepared = try head.projection(on: cpu)
        #expect(prepared.weight.floats() == unprepared.weight.floats() && prepared.bias.floats() == unprepared.bias.floats())
    }

    /// bf16 and FP8 runs of the whole loop on the CPU oracle's ops: finite, and near the float32 scene.
    /// fp8-lean stores the text encoder's linears in e4m3 with their scales (half of bf16's bytes). Three mantissa bits
    /// cost more than bf16's eight: on the tiny random model the context's RMS error is about 10% of its RMS against
    /// bf16's 1.8% (both against float32), which is why it is an option for small cards and not the default.
    @Test func theLeanTextEncoderStaysNearBF16() throws {
        let model = try FlashWorldModel.tiny(on: cpu)
        let lean = try model.prepared(for: cpu, precision: .fp8Lean), fp8 = try model.prepared(for: cpu, precision: .fp8)
        let name = "encoder.block.0.layer.1.DenseReluDense.wi_0.weight"
        #expect(lean.textEncoder.weights[name].dtype == .float8E4M3 && lean.textEncoder.weights.optional(ModelPrecision.scaleName(name)) != nil)
        #expect(lean.textEncoder.weights["encoder.block.0.layer.0.layer_norm.weight"].dtype == .bfloat16)
        #expect(ModelPrecision(name: "fp8-lean") == .fp8Lean && ModelPrecision(name: "fp4") == nil)
        func context(_ m: FlashWorldModel) throws -> Tensor {
            try m.textEncoder.context(for: "a small boat", tokenizer: m.tokenizer, length: m.textLength, on: cpu)
        }
        let f32 = try model.prepared(for: cpu, precision: .float32)
        func rms(_ a: Tensor, _ b: Tensor) -> Double {
            let (x, y) = (a.floats(), b.floats())
            let d = zip(x, y).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }, n = y.reduce(0.0) { $0 + Double($1) * Double($1) }
            return (d / max(n, 1e-30)).squareRoot()
        }
        let (leanError, bf16Error) = (rms(try context(lean), try context(f32)), rms(try context(fp8), try context(f32)))
        #expect(leanError > bf16Error && leanError < 0.15, "RMS error against float32: fp8-lean \(leanError), bf16 \(bf16Error)")
    }

    @Test(arguments: [ModelPrecision.bfloat16, .fp8, .fp8Lean])
    func reducedPrecisionStaysNearFloat32(_ precision: ModelPrecision) throws {
        let intrinsics = NormalizedIntrinsics(verticalFieldOfView: 60, width: 64, height: 64)
        let path = CameraPath.keyframes([.forward, .orbitLeft], intrinsics: intrinsics)
        let request = GenerationRequest(prompt: "a small boat", cameras: path.cameras, frames: 2, width: 64, height: 64)
        let model = try FlashWorldModel.tiny(on: cpu)
        func scene(_ precision: ModelPrecision) throws -> [Float] {
            var noise = SeededNoise(seed: 8)
            let prepared = try model.prepared(for: cpu, precision: precision)
            return try FlashWorldPipeline(model: prepared, backend: cpu).generate(request, noise: &noise).cloud.positions
        }
        let reference = try scene(.float32), reduced = try scene(precision)
        #expect(reduced.allSatisfy { $0.isFinite })
        let error = relativeError(try Tensor(reduced, shape: [reduced.count]), try Tensor(reference, shape: [reference.count]))
        #expect(error < 0.1, "\(precision): positions differ by \(error) of the largest")
    }
}
