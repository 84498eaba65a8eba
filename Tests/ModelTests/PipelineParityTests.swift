import Cameras
import EngineCPU
import EngineCheck
import EngineCore
import Foundation
import SplatCore
import Testing

@testable import FlashWorld
@testable import Models

/// The whole generation against FlashWorld's own loop (`tools/models/make_pipeline_fixtures.py`): a model folder in the
/// public layout with the real checkpoint's trimmed decoder kernels, the API's request JSON, the conditioning image and
/// every random draw of the reference run. The renders are the loop's fragile part (a Gaussian's footprint crossing a
/// pixel centre flips it), so each tensor is held to its own float32-vs-float64 noise floor from the manifest.
struct PipelineParityTests {
    static let folder = ModelFixtures.path("pipeline-tiny")

    struct Run {
        var result: GenerationResult
        var seen: [String: Tensor]
        var expected: [String: Tensor]
        var floors: [String: Double]
    }

    static let run: Result<Run, any Error> = Result {
        let model = try ModelFolder.load(folder, on: CPUBackend.shared, precision: .float32)
        let request = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/request.json"))) as! [String: Any]
        let resolution = request["resolution"] as! [Int]  // [frames, height, width]
        let cameras = try CameraPathDocument(json: Array(try Data(contentsOf: URL(fileURLWithPath: folder + "/request.json"))))
            .resolvedCameras(defaultWidth: resolution[2], defaultHeight: resolution[1])
        let raw = try Data(contentsOf: URL(fileURLWithPath: folder + "/image.f32"))
        let pixels = raw.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        let image = try Tensor(pixels, shape: [3, resolution[1], resolution[2]])
        let noiseFile = try ModelFixtures.tensors("pipeline-tiny/noise.safetensors")
        var noise = RecordedNoise(noiseFile.keys.sorted().map { noiseFile[$0]! })
        let generation = GenerationRequest(
            prompt: request["text_prompt"] as! String, image: image, imageIndex: request["image_index"] as! Int, cameras: cameras,
            frames: resolution[0], width: resolution[2], height: resolution[1])
        var seen: [String: Tensor] = [:]
        let result = try FlashWorldPipeline(model: model, backend: CPUBackend.shared).generate(generation, noise: &noise, inspect: { name, value in
            seen[name] = value
        })
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/manifest.json"))) as! [String: Any]
        let precision = (manifest["precision"] as! [String: Any])["end_to_end"] as! [String: [String: Double]]
        return Run(
            result: result, seen: seen, expected: try ModelFixtures.tensors("pipeline-tiny/expected.safetensors"),
            floors: precision.compactMapValues { $0["scale_rel"] })
    }

    /// The reference's tensors Diorama sees under the same names, each within 1e-4 or four times its noise floor.
    @Test(arguments: [
        "context", "condition_latents", "raymaps",
        "noisy_step0", "velocity_step0", "feats_step0", "x0_step0", "renders_step0", "x0_3d_step0",
        "noisy_step1", "x0_step1", "renders_step1", "x0_3d_step1",
        "noisy_step2", "x0_step2", "renders_step2", "x0_3d_step2",
        "noisy_step3", "velocity_step3", "feats_step3", "x0_step3", "scene",
    ])
    func intermediatesMatchTheReference(name: String) throws {
        let run = try Self.run.get()
        let mine = try #require(run.seen[name], "the pipeline did not report \(name)")
        let theirs = try #require(run.expected[name])
        #expect(mine.shape == theirs.shape)
        let error = relativeError(mine, theirs)
        let bound = max(1e-4, 4 * (run.floors[name] ?? 0))
        #expect(error <= bound, "\(name): \(error) over \(bound)")
        print("pipeline parity \(name): \(error) (floor \(run.floors[name] ?? 0))")
    }

    /// The exported cloud is the reference's `scene` with positions and scales times `T_norm`.
    @Test func exportIsDeNormalisedByTheCameraScale() throws {
        let run = try Self.run.get()
        let scene = try #require(run.expected["scene"]).floats()
        let tNorm = Double(try #require(run.expected["T_norm"]).floats()[0])
        #expect(abs(run.result.normalization.translationScale - tNorm) <= 1e-6 * tNorm)
        let cloud = run.result.cloud
        #expect(cloud.count == scene.count / 38 && cloud.frame == .rub)
        let worst = (0..<cloud.count).map { i in
            (0..<3).map { k in abs(Double(cloud.positions[3 * i + k]) - Double(scene[38 * i + k]) * tNorm) }.max()!
        }.max()!
        #expect(worst <= 1e-3 * tNorm, "positions differ by \(worst)")
    }
}
