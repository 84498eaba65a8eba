import Cameras
import Checkpoints
import EngineCheck
import EngineCore
import FlashWorld
import Foundation
import ModelLoading
import Models

/// FlashWorld's own generation loop on a tiny model folder (`tools/models/make_pipeline_fixtures.py`: the API request,
/// the conditioning image, every random draw and 22 intermediates of the reference run), replayed on a device.
struct PipelineFixture {
    let folder: String
    let request: GenerationRequest
    let noise: [Tensor]
    let expected: [String: Tensor]
    /// Each intermediate's float32-vs-float64 noise floor, relative to its largest value.
    let floors: [String: Double]

    static let names = [
        "context", "condition_latents", "raymaps",
        "noisy_step0", "velocity_step0", "feats_step0", "x0_step0", "renders_step0", "x0_3d_step0",
        "noisy_step1", "x0_step1", "renders_step1", "x0_3d_step1",
        "noisy_step2", "x0_step2", "renders_step2", "x0_3d_step2",
        "noisy_step3", "velocity_step3", "feats_step3", "x0_step3", "scene",
    ]

    init(folder: String) throws {
        self.folder = folder
        func url(_ name: String) -> URL { URL(fileURLWithPath: "\(folder)/\(name)") }
        func tensors(_ name: String) throws -> [String: Tensor] {
            var out: [String: Tensor] = [:]
            for t in try CheckpointReader.open(path: url(name).path).tensors { out[t.name] = try WeightLoader.tensor(from: t) }
            return out
        }
        let requestBytes = try Data(contentsOf: url("request.json"))
        struct Fields: Decodable {
            var resolution: [Int]
            var text_prompt: String
            var image_index: Int
        }
        let fields = try JSONDecoder().decode(Fields.self, from: requestBytes)
        let (frames, height, width) = (fields.resolution[0], fields.resolution[1], fields.resolution[2])
        let cameras = try CameraPathDocument(json: Array(requestBytes)).resolvedCameras(defaultWidth: width, defaultHeight: height)
        let pixels = try Data(contentsOf: url("image.f32")).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        request = GenerationRequest(
            prompt: fields.text_prompt, image: try Tensor(pixels, shape: [3, height, width]), imageIndex: fields.image_index, cameras: cameras,
            frames: frames, width: width, height: height)
        let noiseFile = try tensors("noise.safetensors")
        noise = noiseFile.keys.sorted().map { noiseFile[$0]! }
        expected = try tensors("expected.safetensors")
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: url("manifest.json"))) as? [String: Any]
        let endToEnd = (manifest?["precision"] as? [String: Any])?["end_to_end"] as? [String: [String: Any]] ?? [:]
        floors = endToEnd.compactMapValues { $0["scale_rel"] as? Double }
    }

    /// Loads the folder onto `backend` in `precision`, generates with the recorded noise, and returns every
    /// intermediate read back to the host, with the generation's wall time.
    func replay(on backend: any Backend, precision: ModelPrecision) throws -> (seen: [String: Tensor], seconds: Double) {
        let model = try ModelFolder.load(folder, on: backend, precision: precision)
        var recorded = RecordedNoise(noise)
        var seen: [String: Tensor] = [:]
        var failure: (any Error)?
        let start = monotonicSeconds()
        _ = try FlashWorldPipeline(model: model, backend: backend, renderer: DeviceChoice.viewRenderer(for: backend)).generate(request, noise: &recorded, inspect: { name, value in
            do { seen[name] = try backend.download(value) } catch { failure = error }
        })
        if let failure { throw failure }
        return (seen, monotonicSeconds() - start)
    }
}
