import EngineCPU
import EngineCUDA
import EngineCore
import Testing

/// The minimal CUDA backend against the CPU oracle; skipped (not failed) where no GPU can be opened.
@Suite(.enabled(if: CUDABackend.isAvailable, "no CUDA device here"))
struct CUDABackendTests {
    @Test(arguments: [
        (Op.silu, [4096, 257]), (.geluTanh, [1000]), (.sum(axes: [-1], keepDims: false), [300, 3072]),
    ] as [(Op, [Int])])
    func unaryOpsAgreeWithTheCPU(op: Op, shape: [Int]) throws {
        let gpu = try CUDABackend()
        let x = try CPUBackend.shared.run(.randomNormal(shape: shape, seed: 11), [])[0]
        let expected = try CPUBackend.shared.run(op, [x])[0].floats()
        let actual = try gpu.download(try gpu.run(op, [try gpu.upload(x)])[0]).floats()
        let scale = expected.map(abs).max()!
        #expect(zip(actual, expected).allSatisfy { abs($0 - $1) <= 1e-5 * max(scale, 1) })
    }

    @Test func bfloat16LinearAgreesWithTheCPU() throws {
        let gpu = try CUDABackend()
        let cpu = CPUBackend.shared
        let x = try cpu.run(.cast(.bfloat16), [try cpu.run(.randomNormal(shape: [64, 96], seed: 1), [])[0]])[0]
        let w = try cpu.run(.cast(.bfloat16), [try cpu.run(.randomNormal(shape: [40, 96], seed: 2), [])[0]])[0]
        let expected = try cpu.run(.linear, [x, w])[0].floats()
        let actual = try gpu.download(try gpu.run(.linear, [try gpu.upload(x), try gpu.upload(w)])[0]).floats()
        let scale = expected.map(abs).max()!
        #expect(zip(actual, expected).allSatisfy { abs($0 - $1) <= 0.01 * scale })
    }

    @Test func unsupportedOpsSayToUseTheCPU() throws {
        let gpu = try CUDABackend()
        #expect(!gpu.supports(.conv2d(stride: [1], padding: [1]), inputTypes: [.float32, .float32]))
    }
}
