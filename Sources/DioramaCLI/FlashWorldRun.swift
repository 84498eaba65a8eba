import ArgumentParser
import Cameras
import EngineCore
import FlashWorld
import ModelHub
import Models

/// What `generate` and `extend` share: the path a chunk is generated along, the model on the chosen device, and the
/// per-stage progress lines.
enum FlashWorldRun {
    /// Template steps (from camera #0 at the origin) or a camera file, at the generation size. Orbit, spiral and dolly
    /// frame an existing scene from outside, so they are refused with `refusal`.
    static func cameras(_ cameraPath: String, fov: Double, size: ImageSize, refusal: String) throws -> [Camera] {
        switch CameraPathSource(cameraPath) {
        case .steps(let steps):
            return CameraPath.keyframes(steps, intrinsics: NormalizedIntrinsics(verticalFieldOfView: fov, width: size.width, height: size.height)).cameras
        case .file(let path):
            let document = try reportingErrors { () throws(CameraError) in try readCameraFile(path) }
            return try reportingErrors { () throws(CameraError) in try document.resolvedCameras(defaultWidth: size.width, defaultHeight: size.height) }
        default:
            return try reportingErrors { () throws(CameraError) in throw CameraError(.invalidValue, field: "--camera-path", refusal) }
        }
    }

    /// `model` (tiny, a hub name or a model folder) loaded on `device`'s backend, in the device's precision and
    /// `memory` (else the mode its free memory allows), said on standard error unless `quiet`.
    static func pipeline(
        model: String, checkpoint: String?, device: DeviceOptions, memory: FlashWorldMemoryMode?, quiet: Bool
    ) throws -> (pipeline: FlashWorldPipeline, model: FlashWorldModel) {
        let location = try reportingErrors { () throws(HubError) in
            model == "tiny" ? (folder: model, checkpoint: checkpoint) : try ModelArgument.resolve(model, checkpoint: checkpoint)
        }
        let backend = try device.backend(quiet: quiet)
        let precision = device.modelPrecision(for: backend)
        let flashWorld: FlashWorldModel
        do {
            flashWorld = try DeviceChoice.loadModel(location.folder, checkpoint: location.checkpoint, on: backend, precision: precision, memory: memory)
        } catch let error as EngineError {
            return try reportingErrors { () throws(EngineError) in throw error }
        } catch {
            printError("error: \(error)\n")
            throw ExitCode(65)
        }
        if !quiet { printError("running on \(backend.device) in \(precision), memory \(flashWorld.memoryMode.rawValue)\n") }
        return (FlashWorldPipeline(model: flashWorld, backend: backend, renderer: DeviceChoice.viewRenderer(for: backend)), flashWorld)
    }

    /// Prints each stage of a generation on standard error, with the time left once a step has been timed.
    final class ProgressLines {
        let quiet: Bool
        private var firstStepStarted: Double?

        init(quiet: Bool) { self.quiet = quiet }

        func callAsFunction(_ stage: String, _ step: Int, _ steps: Int) {
            guard !quiet else { return }
            switch stage {
            case "step":
                // Time left from the steps so far (each step is one transformer pass and its feedback).
                let now = monotonicSeconds()
                var left = ""
                if let first = firstStepStarted, step > 1 {
                    let perStep = (now - first) / Double(step - 1)
                    left = " (about \(Int((perStep * Double(steps - step + 1)).rounded())) s left)"
                } else if step == 1 {
                    firstStepStarted = now
                }
                printError("step \(step)/\(steps): transformer…\(left)\n")
            case "reconstruction", "render", "re-encode": printError("step \(step)/\(steps): \(stage)…\n")
            default: printError("\(stage)…\n")
            }
        }
    }
}
