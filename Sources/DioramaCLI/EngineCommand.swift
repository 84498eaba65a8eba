import ArgumentParser
import EngineCPU
import EngineCUDA
import EngineCheck
import EngineCore
import Foundation
import Models

extension EngineError: CommandLineReportable {
    var exitCode: Int32 { kind == .device ? 69 : 70 }  // EX_UNAVAILABLE, EX_SOFTWARE
}

struct EngineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "The tensor engine: devices, libraries and self-tests.",
        subcommands: [EngineInfo.self, EngineSelfTest.self])
}

struct EngineInfo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Say which GPU and which CUDA libraries Diorama finds, and where its compiled kernels are cached.",
        discussion: helpText(
            """
            Libraries are looked for in the loader's path, $CUDA_HOME, /usr/local/cuda*, and the nvidia-* wheels of \
            Python installs (where PyTorch keeps them); DIORAMA_LIBCUDA, DIORAMA_LIBNVRTC and DIORAMA_LIBCUBLASLT name \
            a library's file directly. Exits 69 when no GPU can be used.
            """))

    func run() throws {
        print("CPU: \(CPUBackend.shared.matrixLibrary) for matrix products")
        let libraries = CUDALibraries.probe()
        for library in libraries {
            print("\(library.name): \(library.found ? "\(library.path) (\(library.version))" : "not found: \(library.message)")")
        }
        print("kernel cache: \(KernelCache.folder)")
        do {
            let gpu = try CUDABackend.open()
            let gib = Double(gpu.totalMemory) / Double(1 << 30)
            print("GPU 0: \(gpu.name), sm_\(gpu.architecture), \(gpu.multiprocessors) multiprocessors, \(String(format: "%.1f", gib)) GiB")
        } catch {
            print("GPU: none usable (\(error.message))")
            throw ExitCode(69)
        }
    }
}

struct EngineSelfTest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selftest",
        abstract: "Run the op table on a device against PyTorch's fixtures and the CPU oracle, and compare.",
        discussion: helpText(
            """
            Runs every case of the op-table fixtures (Tests/EngineTests/Fixtures/ops, written by \
            tools/engine/make_op_fixtures.py) on the device and checks it against PyTorch's output with the case's own \
            tolerance, then runs larger random cases (bf16 products, attention on strided views, convolutions, norms) on \
            the device and on the CPU backend and compares them, checks the GPU rasterizer against the CPU renderer, and \
            replays FlashWorld's own loop (--pipeline) in fp32, bf16 and fp8. Prints one line per case and a summary; \
            exits 69 when the device cannot be opened, 1 when a result disagrees.
            """))

    @Option(help: "cpu or cuda.")
    var device = "cuda"

    @Option(help: "Op-table fixture folders (each holding a manifest.json), comma-separated.")
    var fixtures = "Tests/EngineTests/Fixtures/ops,Tests/EngineTests/Fixtures/fused"

    @Option(help: "FlashWorld's reference run on a tiny model folder, replayed on the device ('' skips it).")
    var pipeline = "Tests/ModelTests/Fixtures/pipeline-tiny"

    @Flag(help: "Skip the larger random cases against the CPU.")
    var fixturesOnly = false

    func validate() throws {
        guard ["cpu", "cuda"].contains(device) else { throw ValidationError("--device must be cpu or cuda, not \(device)") }
    }

    func run() throws {
        let cpu = CPUBackend.shared
        let backend: any Backend
        if device == "cuda" {
            let gpu = try reportingErrors { () throws(EngineError) in try CUDABackend.open() }
            print("device: \(gpu.name), sm_\(gpu.architecture), driver \(gpu.driverVersion / 1000).\(gpu.driverVersion % 1000 / 10)")
            backend = gpu
        } else {
            backend = cpu
        }
        var passed = 0, failed = 0
        func report(_ ok: Bool, _ line: String) {
            if ok { passed += 1 } else { failed += 1 }
            print("\(ok ? "ok  " : "FAIL") \(line)")
        }

        let folders = fixtures.split(separator: ",").map(String.init).filter { FileManager.default.fileExists(atPath: $0 + "/manifest.json") }
        guard !folders.isEmpty else {
            throw CommandFailure("no op fixtures at \(fixtures) (run from the repository root or pass --fixtures)", exitCode: 66)
        }
        for folder in folders {
            let table = try OpFixtures(folder: URL(fileURLWithPath: folder))
            print("\(folder): \(table.manifest.cases.count) PyTorch fixture cases on \(backend.device)")
            for c in table.manifest.cases {
                do {
                    let inputs = try c.inputs.map(table.load)
                    let outputs = try runCase(c, inputs: inputs, on: backend)
                    let expected = try c.outputs.map(table.load)
                    let compared = c.op == "max" ? 1 : expected.count
                    var details: [String] = []
                    var ok = outputs.count >= compared
                    for (mine, theirs) in zip(outputs, expected).prefix(compared) {
                        let (good, detail) = compare(mine, theirs, c.tolerance)
                        ok = ok && good
                        details.append(detail)
                    }
                    report(ok, "\(c.name): \(details.joined(separator: "; "))")
                } catch {
                    report(false, "\(c.name): \(error)")
                }
            }
        }
        if !fixturesOnly && (backend.device != cpu.device || getenv("DIORAMA_SELFTEST_CPU_RANDOM") != nil) {
            print("random cases at larger sizes, \(backend.device) against the CPU oracle (error relative to the largest value):")
            for check in RandomChecks.all {
                do {
                    let (error, milliseconds) = try check.run(on: backend, oracle: cpu)
                    report(
                        error <= check.tolerance && error.isFinite,
                        "\(check.name): \(String(format: "%.2e", error)) (allowed \(check.tolerance): \(check.why)), \(String(format: "%.2f", milliseconds)) ms")
                } catch {
                    report(false, "\(check.name): \(error)")
                }
            }
        }
        if let gpu = backend as? CUDABackend, !fixturesOnly {
            print("attention at the transformer's sizes, cuDNN's fused SDPA against the own flash kernel (bf16, relative to the largest value):")
            for result in AttentionComparison.run(on: gpu) {
                report(result.ok, result.line)
            }
        }
        if let gpu = backend as? CUDABackend, !fixturesOnly {
            print("GPU rasterizer against the CPU renderer (FlashWorld's renders on white, PSNR over [0, 1]):")
            do {
                for result in try RasterSelfTest.run(on: gpu) {
                    report(result.psnr >= 50, "\(result.name): \(String(format: "%.1f", result.psnr)) dB (at least 50), \(String(format: "%.2f", result.milliseconds)) ms incl. read-back")
                }
            } catch {
                report(false, "rasterizer: \(error)")
            }
        }
        if !pipeline.isEmpty {
            let fixture = try PipelineFixture(folder: pipeline)
            for precision in backend.device == cpu.device ? [ModelPrecision.float32] : ModelPrecision.all {
                print("FlashWorld's own loop on \(pipeline), \(precision) on \(backend.device) (relative to each tensor's largest value):")
                do {
                    let (seen, seconds) = try fixture.replay(on: backend, precision: precision)
                    var worst = 0.0
                    for name in PipelineFixture.names {
                        guard let mine = seen[name], let theirs = fixture.expected[name], mine.shape == theirs.shape else {
                            report(false, "\(name): missing or mis-shaped")
                            continue
                        }
                        let error = relativeError(mine, theirs)
                        worst = max(worst, error)
                        if precision == .float32 {
                            // The same bound the CPU's parity test holds: the run's own float32-vs-float64 floor.
                            let bound = max(1e-4, 4 * (fixture.floors[name] ?? 0))
                            report(error <= bound, "\(name): \(String(format: "%.2e", error)) (allowed \(String(format: "%.1e", bound)))")
                        } else if !error.isFinite {
                            report(false, "\(name): not finite")
                        }
                    }
                    if precision != .float32 {
                        let scene = relativeError(seen["scene"]!, fixture.expected["scene"]!)
                        report(
                            worst.isFinite,
                            "\(precision): final Gaussians \(String(format: "%.2e", scene)), worst intermediate \(String(format: "%.2e", worst)) (reported: reduced precision has no float32 bound)")
                    }
                    print("  \(precision) generation: \(String(format: "%.2f", seconds)) s")
                } catch {
                    report(false, "\(precision) pipeline: \(error)")
                }
            }
        }
        try reportingErrors { () throws(EngineError) in try backend.synchronize() }
        if let gpu = backend as? CUDABackend {
            print("linear_fp8 runs as: \(gpu.fp8Path)")
            print("attention ran as: \(gpu.attentionPath)")
        }
        print("memory: \(backend.memoryStats)")
        print("\(passed) passed, \(failed) failed")
        if failed > 0 { throw ExitCode(1) }
    }
}

/// A random case run on a device and on the CPU oracle.
struct RandomCheck {
    var name: String
    var tolerance: Double
    var why: String
    /// Builds host inputs and runs the case on a backend (inputs uploaded there); returns the host result.
    var body: (_ backend: any Backend, _ inputs: [Tensor]) throws -> Tensor
    var inputs: () throws -> [Tensor]

    /// The largest difference relative to the largest reference value, and the device time of one run.
    func run(on backend: any Backend, oracle: any Backend) throws -> (Double, Double) {
        let host = try inputs()
        let expected = try body(oracle, host)
        let uploaded = try host.map { try backend.upload($0) }
        var result: Tensor?
        // A warm-up first: the first launch of a kernel pays for loading the module.
        _ = try body(backend, uploaded)
        let start = monotonicSeconds()
        result = try body(backend, uploaded)
        try backend.synchronize()
        let milliseconds = (monotonicSeconds() - start) * 1000
        let actual = try backend.download(result!)
        guard actual.shape == expected.shape else { throw EngineError(.shapeMismatch, "shape \(actual.shape) vs \(expected.shape)") }
        let a = actual.floats(), e = try oracle.download(expected).floats()
        let scale = Double(e.map { abs($0) }.filter(\.isFinite).max() ?? 1)
        var worst = 0.0
        for (x, y) in zip(a, e) {
            if x.isNaN != y.isNaN { return (.infinity, milliseconds) }
            if y.isFinite { worst = max(worst, abs(Double(x) - Double(y))) }
        }
        return (worst / max(scale, 1e-30), milliseconds)
    }
}

enum RandomChecks {
    static func random(_ shape: [Int], seed: UInt64, dtype: DType = .float32, scale: Float = 1) throws -> Tensor {
        let cpu = CPUBackend.shared
        var t = try cpu.run(.randomNormal(shape: shape, seed: seed), [])[0]
        if scale != 1 { t = try cpu.scaled(t, by: scale) }
        return dtype == .float32 ? t : try cpu.run(.cast(dtype), [t])[0]
    }

    static func op(_ op: Op, _ name: String, tolerance: Double, why: String, _ inputs: @escaping () throws -> [Tensor]) -> RandomCheck {
        RandomCheck(name: name, tolerance: tolerance, why: why, body: { backend, x in try backend.run(op, x)[0] }, inputs: inputs)
    }

    static let bf16 = "bf16 output: one rounding of a float32 result, 2^-8 relative"
    static let f32Sum = "float32 accumulation in another order"

    static var all: [RandomCheck] {
        [
            op(.linear, "linear f32 [333, 384]·[256, 384]ᵀ + bias", tolerance: 1e-5, why: f32Sum) {
                [try random([333, 384], seed: 1), try random([256, 384], seed: 2, scale: 0.05), try random([256], seed: 3)]
            },
            op(.linear, "linear bf16 [1024, 3072]·[3072, 3072]ᵀ + bias", tolerance: 1e-2, why: bf16) {
                [try random([1024, 3072], seed: 4, dtype: .bfloat16), try random([3072, 3072], seed: 5, dtype: .bfloat16, scale: 0.02),
                 try random([3072], seed: 6, dtype: .bfloat16)]
            },
            op(.linear, "linear f32 input, bf16 weight [7, 45, 200]", tolerance: 1e-5, why: f32Sum) {
                [try random([7, 45, 200], seed: 7), try random([64, 200], seed: 8, dtype: .bfloat16, scale: 0.1)]
            },
            op(.matmul, "matmul bf16 broadcast [2, 3, 129, 64]·[3, 64, 77]", tolerance: 1e-2, why: bf16) {
                [try random([2, 3, 129, 64], seed: 9, dtype: .bfloat16), try random([3, 64, 77], seed: 10, dtype: .bfloat16)]
            },
            RandomCheck(
                name: "attention bf16 [1, 24, 990, 128] on permuted [1, 990, 24, 128] views", tolerance: 1e-2, why: bf16,
                body: { backend, x in
                    let views = try x.map { try $0.permuted([0, 2, 1, 3]) }
                    return try backend.attention(views[0], views[1], views[2])
                },
                inputs: { try (11..<14).map { try random([1, 990, 24, 128], seed: $0, dtype: .bfloat16) } }),
            RandomCheck(
                name: "attention bf16 cross [1, 24, 700, 128] x 512 keys", tolerance: 1e-2, why: bf16,
                body: { backend, x in try backend.attention(x[0], x[1], x[2]) },
                inputs: {
                    [try random([1, 24, 700, 128], seed: 48, dtype: .bfloat16), try random([1, 24, 512, 128], seed: 49, dtype: .bfloat16),
                     try random([1, 24, 512, 128], seed: 50, dtype: .bfloat16)]
                }),
            op(.attention(scale: 0.3), "attention bf16 d=64 [2, 8, 300, 64] (no tensor-core kernel)", tolerance: 1e-2, why: bf16) {
                try (51..<54).map { try random([2, 8, 300, 64], seed: UInt64($0), dtype: .bfloat16) }
            },
            RandomCheck(
                name: "linear_fp8 [990, 3072]·[3072, 3072]ᵀ + bias (fused vs composed)", tolerance: 2e-2,
                why: "same e4m3 operands; float32 sums in another order and the scales applied in the epilogue, bf16 out",
                body: { backend, x in try backend.run(.linearFP8, x)[0] },
                inputs: {
                    let weight = try random([3072, 3072], seed: 55, scale: 0.02)
                    let (quantized, scale) = try ModelPrecision.quantizedFP8(weight, on: CPUBackend.shared)
                    return [try random([990, 3072], seed: 54, dtype: .bfloat16, scale: 3), quantized, scale, try random([3072], seed: 56, dtype: .bfloat16)]
                }),
            op(.attention(scale: nil), "attention f32 d=640, additive mask [1, 1, 300, 300]", tolerance: 1e-5, why: f32Sum) {
                let mask = try random([1, 1, 300, 300], seed: 17).floats().map { $0 > 1.5 ? -Float.greatestFiniteMagnitude : 0 }
                return [try random([2, 1, 300, 640], seed: 14, scale: 0.2), try random([2, 1, 300, 640], seed: 15, scale: 0.2),
                        try random([2, 1, 300, 640], seed: 16), try Tensor(mask, shape: [1, 1, 300, 300])]
            },
            op(.attention(scale: nil), "attention bf16 d=1024 [2, 1, 330, 1024] (the decoder's head: two products and a softmax)", tolerance: 1e-2, why: bf16) {
                try (57..<60).map { try random([2, 1, 330, 1024], seed: UInt64($0), dtype: .bfloat16, scale: $0 == 59 ? 1 : 0.1) }
            },
            op(.silu, "silu bf16 [24, 64, 60, 88] (eight values a thread)", tolerance: 1e-2, why: bf16) {
                [try random([24, 64, 60, 88], seed: 61, dtype: .bfloat16, scale: 3)]
            },
            op(.add, "add bf16 [24, 64, 60, 88] + same shape (eight values a thread)", tolerance: 1e-2, why: bf16) {
                [try random([24, 64, 60, 88], seed: 62, dtype: .bfloat16), try random([24, 64, 60, 88], seed: 63, dtype: .bfloat16)]
            },
            op(.mean(axes: [2], keepDims: false), "mean bf16 over groups of 4 [24, 40, 4, 30, 44] (AvgDown3D, one thread a row)", tolerance: 1e-2, why: bf16) {
                [try random([24, 40, 4, 30, 44], seed: 60, dtype: .bfloat16)]
            },
            op(.conv2d(stride: [1], padding: [1]), "conv2d bf16 3x3 [2, 64, 60, 88] → 96", tolerance: 1e-2, why: bf16) {
                [try random([2, 64, 60, 88], seed: 18, dtype: .bfloat16), try random([96, 64, 3, 3], seed: 19, dtype: .bfloat16, scale: 0.05),
                 try random([96], seed: 20, dtype: .bfloat16)]
            },
            op(.conv2d(stride: [2], padding: [0]), "conv2d f32 3x3 stride 2 [3, 16, 33, 45]", tolerance: 1e-5, why: f32Sum) {
                [try random([3, 16, 33, 45], seed: 21), try random([24, 16, 3, 3], seed: 22, scale: 0.1)]
            },
            op(.patchEmbed3D(patch: [1, 2, 2]), "patch_embed_3d f32 [1, 70, 4, 30, 44]", tolerance: 1e-5, why: f32Sum) {
                [try random([1, 70, 4, 30, 44], seed: 23), try random([96, 70, 1, 2, 2], seed: 24, scale: 0.05), try random([96], seed: 25)]
            },
            op(.layerNorm(eps: 1e-6), "layer_norm bf16 [2000, 3072] affine", tolerance: 1e-2, why: bf16) {
                [try random([2000, 3072], seed: 26, dtype: .bfloat16, scale: 3), try random([3072], seed: 27), try random([3072], seed: 28)]
            },
            op(.rmsNorm(eps: 1e-6), "t5_rms_norm f32 [512, 4096]", tolerance: 1e-5, why: f32Sum) {
                [try random([512, 4096], seed: 29), try random([4096], seed: 30)]
            },
            op(.channelRMSNorm(eps: 1e-12), "channel_rms_norm bf16 [4, 256, 60, 88]", tolerance: 1e-2, why: bf16) {
                [try random([4, 256, 60, 88], seed: 31, dtype: .bfloat16), try random([256, 1, 1], seed: 32)]
            },
            op(.rmsNorm(eps: 1e-6), "t5_rms_norm bf16 [512, 4096] (rows in registers, four words a thread)", tolerance: 1e-2, why: bf16) {
                [try random([512, 4096], seed: 80, dtype: .bfloat16, scale: 2), try random([4096], seed: 81)]
            },
            op(.modulatedLayerNorm(eps: 1e-6), "modulated_layer_norm bf16 [1, 990, 3072] (rows in registers)", tolerance: 1e-2, why: bf16) {
                [try random([1, 990, 3072], seed: 70, dtype: .bfloat16, scale: 3), try random([1, 1, 3072], seed: 71, scale: 0.5),
                 try random([1, 1, 3072], seed: 72, scale: 0.5)]
            },
            op(.rmsNormRope(eps: 1e-6, heads: 24), "rms_norm_rope bf16 [1, 990, 24·128] (rows in registers)", tolerance: 1e-2, why: bf16) {
                [try random([1, 990, 3072], seed: 73, dtype: .bfloat16, scale: 2), try random([3072], seed: 74),
                 try random([990, 64], seed: 75), try random([990, 64], seed: 76)]
            },
            op(.gatedResidual, "gated_residual bf16 [1, 990, 3072] + · f32 gate [1, 1, 3072] (eight values a thread)", tolerance: 1e-2, why: bf16) {
                [try random([1, 990, 3072], seed: 77, dtype: .bfloat16), try random([1, 990, 3072], seed: 78, dtype: .bfloat16),
                 try random([1, 1, 3072], seed: 79)]
            },
            op(.channelRMSNormSiLU(eps: 1e-12), "channel_rms_norm_silu bf16 [6, 1024, 30, 44] (two pixels a lane)", tolerance: 1e-2, why: bf16) {
                [try random([6, 1024, 30, 44], seed: 64, dtype: .bfloat16, scale: 2), try random([1024, 1, 1], seed: 65)]
            },
            op(.channelRMSNormSiLU(eps: 1e-12), "channel_rms_norm_silu f32 [3, 40, 7, 9] + bias (odd map, partial tile)", tolerance: 1e-5, why: f32Sum) {
                [try random([3, 40, 7, 9], seed: 66), try random([40, 1, 1], seed: 67), try random([40, 1, 1], seed: 68)]
            },
            op(.permute([0, 2, 1, 5, 3, 6, 4]), "permute bf16 [4, 64, 1, 2, 2, 30, 44] (DupUp3D's regrouping, seven axes)", tolerance: 0,
               why: "a copy") { [try random([4, 64, 1, 2, 2, 30, 44], seed: 69, dtype: .bfloat16)] },
            op(.softmax(axis: 1), "softmax f32 over axis 1 of [64, 7920, 3]", tolerance: 1e-4,
               why: "float32 sums of 7,920 exponentials in another order, and the device's expf within 2 ulp of glibc's") {
                [try random([64, 7920, 3], seed: 33, scale: 4)]
            },
            op(.silu, "silu bf16 [24, 128, 60, 88]", tolerance: 1e-2, why: bf16) { [try random([24, 128, 60, 88], seed: 34, dtype: .bfloat16)] },
            op(.add, "add bf16 + f32 broadcast [24, 256, 60, 88] + [1, 256, 1, 1]", tolerance: 1e-6, why: "one rounding of the same float32 sum") {
                [try random([24, 256, 60, 88], seed: 35, dtype: .bfloat16), try random([1, 256, 1, 1], seed: 36)]
            },
            op(.sum(axes: [0, 2], keepDims: false), "sum over axes 0 and 2 of [17, 300, 41]", tolerance: 1e-5, why: "double sums, rounded once") {
                [try random([17, 300, 41], seed: 37)]
            },
            op(.variance(axes: [-1], keepDims: true), "variance over [96, 5000]", tolerance: 1e-5, why: "double sums, rounded once") {
                [try random([96, 5000], seed: 38, scale: 2)]
            },
            op(.randomNormal(shape: [1, 48, 24, 30, 44], seed: 5), "random_normal [1, 48, 24, 30, 44]", tolerance: 1e-5,
               why: "same Philox stream; the device's logf/cosf/sinf may differ in the last bit") { [] },
            op(.cast(.float8E4M3), "cast f32 → e4m3 [1 << 20]", tolerance: 0, why: "bit-exact rounding and saturation") {
                [try random([1 << 20], seed: 39, scale: 200)]
            },
            op(.cast(.bfloat16), "cast f32 → bf16 [1 << 20]", tolerance: 0, why: "bit-exact rounding") { [try random([1 << 20], seed: 40)] },
            RandomCheck(
                name: "rope bf16 on a strided [1, 7920, 24, 128] view", tolerance: 1e-2, why: bf16,
                body: { backend, x in
                    let rope = try backend.run(.ropeFrequencies3D(headDim: 128, frames: 24, height: 15, width: 22, theta: 10000), [])
                    let view = try x[0].narrowed(3, start: 0, length: 128)
                    return try backend.run(.ropeInterleaved, [view, rope[0], rope[1]])[0]
                },
                inputs: { [try random([1, 7920, 24, 130], seed: 41, dtype: .bfloat16)] }),
            op(.upsampleNearest2x, "upsample_nearest2x bf16 [4, 64, 30, 44]", tolerance: 0, why: "copies") {
                [try random([4, 64, 30, 44], seed: 42, dtype: .bfloat16)]
            },
            op(.pad(amounts: [0, 1, 0, 1], value: 0), "pad bf16 [4, 64, 30, 44]", tolerance: 0, why: "copies") {
                [try random([4, 64, 30, 44], seed: 43, dtype: .bfloat16)]
            },
            op(.concat(axis: 1), "concat f32 along axis 1", tolerance: 0, why: "copies") {
                [try random([1, 48, 24, 30, 44], seed: 44), try random([1, 6, 24, 30, 44], seed: 45), try random([1, 48, 24, 30, 44], seed: 46)]
            },
            op(.averagePool2x2, "avg_pool2x2 f32 [4, 32, 61, 89]", tolerance: 1e-6, why: "4-term float32 mean") {
                [try random([4, 32, 61, 89], seed: 47)]
            },
        ]
    }
}

/// cuDNN's fused SDPA beside the own flash kernel on the transformer's two attentions (7,920-token self-attention and
/// 512-key cross-attention, 24 heads of 128, as permuted token views): the largest difference and each one's time.
/// A cuDNN that declines is reported, not failed: the own kernel then runs.
enum AttentionComparison {
    struct Result {
        var ok: Bool
        var line: String
    }

    static func run(on gpu: CUDABackend) -> [Result] {
        var results: [Result] = []
        for (name, keys) in [("self [1, 24, 7920, 128]", 7920), ("cross [1, 24, 7920, 128] x 512 keys", 512)] {
            do {
                let q = try gpu.upload(try RandomChecks.random([1, 7920, 24, 128], seed: 90, dtype: .bfloat16)).permuted([0, 2, 1, 3])
                let k = try gpu.upload(try RandomChecks.random([1, keys, 24, 128], seed: 91, dtype: .bfloat16)).permuted([0, 2, 1, 3])
                let v = try gpu.upload(try RandomChecks.random([1, keys, 24, 128], seed: 92, dtype: .bfloat16)).permuted([0, 2, 1, 3])
                func timed(_ kernel: AttentionKernel) throws -> (Tensor, Double) {
                    let previous = gpu.preferredAttention.withLock { value in
                        defer { value = kernel }
                        return value
                    }
                    defer { gpu.preferredAttention.withLock { $0 = previous } }
                    _ = try gpu.attention(q, k, v)
                    try gpu.synchronize()
                    let start = monotonicSeconds()
                    var out = try gpu.attention(q, k, v)
                    for _ in 1..<10 { out = try gpu.attention(q, k, v) }
                    try gpu.synchronize()
                    return (out, (monotonicSeconds() - start) * 100)
                }
                let (own, ownMilliseconds) = try timed(.own)
                let runsBefore = gpu.cudnnAttentionRuns
                let (fused, fusedMilliseconds) = try timed(.cudnn)
                if gpu.cudnnAttentionRuns == runsBefore {
                    results.append(Result(ok: true, line: "\(name): cuDNN declined (see below); own kernel \(String(format: "%.2f", ownMilliseconds)) ms"))
                    continue
                }
                let error = relativeError(try gpu.download(fused), try gpu.download(own))
                results.append(
                    Result(
                        ok: error <= 1e-2 && error.isFinite,
                        line:
                            "\(name): cuDNN \(String(format: "%.2f", fusedMilliseconds)) ms, own kernel \(String(format: "%.2f", ownMilliseconds)) ms, difference \(String(format: "%.2e", error)) (allowed 1e-2: two bf16 roundings of float32 sums in other orders)"
                    ))
            } catch {
                results.append(Result(ok: false, line: "\(name): \(error)"))
            }
        }
        return results
    }
}
