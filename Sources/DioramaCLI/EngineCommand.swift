import ArgumentParser
import EngineCPU
import EngineCUDA
import EngineCore

extension EngineError: CommandLineReportable {
    var exitCode: Int32 { kind == .device ? 69 : 70 }  // EX_UNAVAILABLE, EX_SOFTWARE
}

struct EngineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "The tensor engine: devices and self-tests.",
        subcommands: [EngineSelfTest.self])
}

struct EngineSelfTest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selftest",
        abstract: "Run the ops a GPU backend implements on it and on the CPU backend (the oracle), and compare.",
        discussion: """
            With --device cuda, opens the first CUDA device through libcuda, NVRTC and cuBLASLt loaded at run time
            (set DIORAMA_LIBCUDA, DIORAMA_LIBNVRTC or DIORAMA_LIBCUBLASLT to point at them), then checks an
            elementwise op, a reduction and float32/bfloat16 matrix products against the CPU. Exits 69 when no GPU
            can be opened, 1 when a result disagrees.
            """)

    @Option(help: "cpu or cuda.")
    var device = "cuda"

    func validate() throws {
        guard ["cpu", "cuda"].contains(device) else { throw ValidationError("--device must be cpu or cuda, not \(device)") }
    }

    func run() throws {
        let cpu = CPUBackend.shared
        let backend: any Backend
        if device == "cuda" {
            let gpu = try reportingErrors { () throws(EngineError) in try CUDABackend() }
            print("device: \(gpu.name), sm_\(gpu.architecture)")
            backend = gpu
        } else {
            backend = cpu
        }
        print("CPU matrix products: \(cpu.matrixLibrary)")
        var failures = 0
        func random(_ shape: [Int], seed: UInt64, dtype: DType = .float32) throws(EngineError) -> Tensor {
            let values = try cpu.run(.randomNormal(shape: shape, seed: seed), [])[0]
            return dtype == .float32 ? values : try cpu.run(.cast(dtype), [values])[0]
        }
        let cases: [(String, Op, [Tensor], Double)] = try reportingErrors { () throws(EngineError) in
            [
                ("silu [4096, 257]", .silu, [try random([4096, 257], seed: 1)], 1e-6),
                ("gelu_tanh [1000]", .geluTanh, [try random([1000], seed: 2)], 1e-6),
                ("sum over last axis [300, 3072]", .sum(axes: [-1], keepDims: false), [try random([300, 3072], seed: 3)], 1e-5),
                ("linear f32 [333, 384] x [256, 384]", .linear, [try random([333, 384], seed: 4), try random([256, 384], seed: 5)], 1e-3),
                (
                    "linear bf16 [1024, 3072] x [3072, 3072]", .linear,
                    [try random([1024, 3072], seed: 6, dtype: .bfloat16), try random([3072, 3072], seed: 7, dtype: .bfloat16)], 1e-2
                ),
            ]
        }
        for (name, op, inputs, tolerance) in cases {
            let expected = try reportingErrors { () throws(EngineError) in try cpu.run(op, inputs)[0] }
            let start = monotonicSeconds()
            let actual = try reportingErrors { () throws(EngineError) in
                let onDevice = try inputs.map { t throws(EngineError) in try backend.upload(t) }
                return try backend.download(try backend.run(op, onDevice)[0])
            }
            let seconds = monotonicSeconds() - start
            let a = actual.floats(), e = expected.floats()
            let scale = Double(e.map { abs($0) }.max() ?? 1)
            let worst = zip(a, e).map { abs(Double($0) - Double($1)) }.max() ?? 0
            let relative = worst / max(scale, 1e-30)
            let ok = a.count == e.count && relative <= tolerance && a.allSatisfy(\.isFinite)
            if !ok { failures += 1 }
            print("\(ok ? "ok  " : "FAIL") \(name) on \(backend.device): max error \(relative) of the largest value (allowed \(tolerance)), \(Int(seconds * 1000)) ms incl. copies")
        }
        print("memory: \(backend.memoryStats)")
        if failures > 0 { throw ExitCode(1) }
    }
}
