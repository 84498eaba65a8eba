import ArgumentParser
import Cameras
import EngineCUDA
import EngineCore
import FlashWorld
import Models

/// One full-size FlashWorld scene end to end with random weights, stage by stage, beside the reference.
struct GenerateBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Time one full-size FlashWorld scene end to end (random weights), per stage, beside the reference.",
        discussion: helpText(
            """
            Builds every module at full size with random weights on the device (--precision), then generates \
            --frames views at --size along the template path with the GPU rasterizer in the feedback loop: a warm-up \
            scene, then --repeat timed scenes. Each stage ends with a wait for the device, so the stage times are \
            device times. Prints the mean per stage, the total with and without the text encoder, and the peak device \
            memory, with the reference's H100/H200 numbers (reference-speed.md) beside them.
            """))

    @OptionGroup var device: DeviceOptions

    @Option(help: "Timed scenes after the warm-up.")
    var `repeat` = 2

    @Option(help: "Frames (views).")
    var frames = 24

    @Option(help: "Generation size, WIDTHxHEIGHT.")
    var size = ImageSize.flashWorld

    @Option(help: "full (every weight resident), balanced (the text encoder in host memory, run layer by layer) or low (the transformer's blocks streamed too): peak memory and time per mode.")
    var memory: FlashWorldMemoryMode = .full

    @Option(help: "Flow-matching steps, 4 or 2.")
    var steps = 4

    /// The reference's seconds per scene for each stage kind on one GPU model (reference-speed.md).
    static let reference: [String: [String: Double]] = [
        "H100": ["text encoder": 0.074, "transformer": 1.222, "reconstruction": 1.289, "render": 0.461, "re-encode": 0.315, "total": 3.32],
        "H200": ["text encoder": 0.040, "transformer": 1.114, "reconstruction": 1.161, "render": 0.394, "re-encode": 0.287, "total": 2.98],
    ]

    func validate() throws {
        guard `repeat` > 0, frames > 0, size.width % 32 == 0, size.height % 32 == 0, FlowMatchSchedule.supportedStepCounts.contains(steps) else {
            throw ValidationError("--repeat and --frames must be positive, --size multiples of 32 and --steps 4 or 2")
        }
    }

    func run() throws {
        let backend = try device.backend()
        let precision = device.modelPrecision(for: backend)
        let gpu = backend as? CUDABackend
        let model = try RandomWeights.build(on: backend, precision: precision) { random in
            try random.flashWorld(precision: precision).arranged(for: memory, on: backend)
        }
        let pipeline = FlashWorldPipeline(model: model, backend: backend, renderer: DeviceChoice.viewRenderer(for: backend))
        let intrinsics = NormalizedIntrinsics(verticalFieldOfView: 60, width: size.width, height: size.height)
        let cameras = CameraPath.keyframes([.forward, .orbitLeft, .orbitLeft], intrinsics: intrinsics).cameras
        let request = GenerationRequest(
            prompt: "a quiet harbour at dawn", cameras: cameras, frames: frames, width: size.width, height: size.height, steps: steps)
        var noise = SeededNoise(seed: 1)
        _ = try pipeline.generate(request, noise: &noise)
        gpu?.resetPeakMemory()
        var totals: [String: Double] = [:]
        var order: [String] = []
        for run in 0..<`repeat` {
            var noise = SeededNoise(seed: UInt64(2 + run))
            for (stage, seconds) in try pipeline.generate(request, noise: &noise).timings {
                if totals[stage] == nil { order.append(stage) }
                totals[stage, default: 0] += seconds / Double(`repeat`)
            }
        }
        let peer = Self.reference.first { (gpu?.name ?? "").contains($0.key) }?.value
        print("stage                               seconds")
        for stage in order { print("\(stage.padding(toLength: 36, withPad: " ", startingAt: 0))\(String(format: "%7.3f", totals[stage]!))") }
        func kind(_ stage: String) -> Double { order.filter { $0.hasSuffix(stage) }.map { totals[$0]! }.reduce(0, +) }
        print("per scene, summed by kind (reference beside it where known):")
        for stage in ["text encoder", "transformer", "reconstruction", "render", "re-encode"] {
            let mine = stage == "text encoder" ? kind("text encoder") : kind(stage)
            let versus = peer?[stage].map { String(format: "   reference %.3f s (%.2fx)", $0, $0 / max(mine, 1e-9)) } ?? ""
            print("  \(stage.padding(toLength: 16, withPad: " ", startingAt: 0)) \(String(format: "%.3f", mine)) s\(versus)")
        }
        let total = totals.values.reduce(0, +), withoutText = total - kind("text encoder")
        let versus = peer?["total"].map { String(format: " (reference %.2f s without the text encoder: %.2fx)", $0, $0 / max(withoutText, 1e-9)) } ?? ""
        print("total \(String(format: "%.3f", total)) s, without the text encoder \(String(format: "%.3f", withoutText)) s\(versus)")
        print("peak device memory during generation (memory \(memory.rawValue)): \(gib(backend.memoryStats.peak)) GiB (reference: about 42 GiB with its fp32 UMT5)")
        if let gpu { print("linear_fp8: \(gpu.fp8Path)\nattention: \(gpu.attentionPath)") }
    }

}

/// Bytes as GiB with two decimals, for benchmark lines.
func gib(_ bytes: Int) -> String { String(format: "%.2f", Double(bytes) / Double(1 << 30)) }
