import ArgumentParser
import EngineCPU
import EngineCUDA
import EngineCore
import FlashWorld
import Models

#if canImport(Glibc)
    import Glibc
#endif

/// `--device` and `--precision`, shared by the commands that run models.
struct DeviceOptions: ParsableArguments {
    @Option(help: ArgumentHelp("auto (the GPU when one works, else the CPU), cuda or cpu; DIORAMA_DEVICE sets the default.", valueName: "device"))
    var device: String?

    @Option(help: "fp32, bf16, fp8 (FP8 transformer block linears, the rest bf16) or fp8-lean (fp8, and the text encoder's linears stored in FP8: 5.7 GB less). Default: fp8 on GPUs from sm_89, bf16 on older GPUs, fp32 on the CPU.")
    var precision: String?

    var choice: DeviceChoice { DeviceChoice(device: device, precision: precision) }

    func validate() throws { try choice.validate() }
    func backend(quiet: Bool = false) throws -> any Backend { try choice.backend(quiet: quiet) }
    func modelPrecision(for backend: any Backend) -> ModelPrecision { choice.modelPrecision(for: backend) }
}

/// The device and precision a command asked for (from flags, settings or `DIORAMA_DEVICE`), resolved.
struct DeviceChoice {
    var device: String?
    var precision: String?

    /// The device named by the flag, else `DIORAMA_DEVICE`, else auto.
    var requestedDevice: String {
        device ?? getenv("DIORAMA_DEVICE").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "auto"
    }

    func validate() throws {
        guard ["auto", "cuda", "cpu"].contains(requestedDevice) else {
            throw ValidationError("--device (or DIORAMA_DEVICE) must be auto, cuda or cpu, not \(requestedDevice)")
        }
        if let precision, ModelPrecision(name: precision) == nil {
            throw ValidationError("--precision must be \(ModelPrecision.names.joined(separator: ", ")), not \(precision)")
        }
    }

    /// The backend to run on. `auto` falls back to the CPU (saying why, unless quiet); `cuda` without a usable GPU
    /// is an error (exit 69) that says what is missing.
    func backend(quiet: Bool = false) throws -> any Backend {
        switch requestedDevice {
        case "cpu": return CPUBackend.shared
        case "cuda": return try reportingErrors { () throws(EngineError) in try CUDABackend.open() }
        default:
            do {
                return try CUDABackend.open()
            } catch {
                if !quiet { printError("note: running on the CPU (\(error.message))\n") }
                return CPUBackend.shared
            }
        }
    }

    /// The precision for `backend`: the flag, else the device's natural one.
    func modelPrecision(for backend: any Backend) -> ModelPrecision {
        if let precision, let chosen = ModelPrecision(name: precision) { return chosen }
        guard let gpu = backend as? CUDABackend else { return .float32 }
        return gpu.architecture >= 89 ? .fp8 : .bfloat16
    }

    /// The feedback renderer for `backend`: the GPU rasterizer on a GPU (`DIORAMA_CPU_RENDER=1` keeps the CPU renderer,
    /// to compare), the CPU renderer otherwise.
    static func viewRenderer(for backend: any Backend) -> (any ViewRenderer)? {
        guard let gpu = backend as? CUDABackend, getenv("DIORAMA_CPU_RENDER") == nil else { return nil }
        return CUDAViewRenderer(gpu: gpu)
    }

    /// The memory mode the device's free memory allows (full on the CPU, where the weights are host memory anyway).
    static func memoryMode(for backend: any Backend, precision: ModelPrecision = .fp8) -> FlashWorldMemoryMode {
        guard backend.device.kind != .cpu else { return .full }
        let stats = backend.memoryStats
        return .fitting(deviceBytes: max(stats.limit - stats.active, 0), leanTextEncoder: precision.textEncoderLinears == .float8E4M3)
    }

    /// The tiny model or a model folder, loaded onto `backend` in `precision` (and `memory`, else the mode the
    /// device's free memory allows).
    static func loadModel(
        _ model: String, checkpoint: String?, on backend: any Backend, precision: ModelPrecision, memory requested: FlashWorldMemoryMode? = nil
    ) throws -> FlashWorldModel {
        let memory = requested ?? memoryMode(for: backend, precision: precision)
        if model == "tiny" {
            return try FlashWorldModel.tiny(on: backend).prepared(for: backend, precision: precision).arranged(for: memory, on: backend)
        }
        // The parts a memory mode streams are read and prepared in host memory, never whole on the device.
        return try ModelFolder.load(model, checkpoint: checkpoint, on: backend, precision: precision, memory: memory, host: CPUBackend.shared)
    }
}
