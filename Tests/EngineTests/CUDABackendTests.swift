import EngineCPU
@testable import EngineCUDA
import EngineCore
import Testing

/// The CUDA kernels compile for the GPUs Diorama supports wherever NVRTC can be loaded (a CPU machine with the
/// `nvidia-cuda-nvrtc` wheel is enough), so a kernel that does not compile never reaches a GPU.
@Suite(.enabled(if: (try? NVRTC()) != nil, "NVRTC not found (pip install nvidia-cuda-nvrtc)"))
struct CUDAKernelCompilationTests {
    @Test(arguments: [80, 90])
    func everyKernelCompiles(arch: Int) throws {
        let cubin = try NVRTC().compile(KernelCache.source, name: "diorama_kernels.cu", arch: arch)
        // An ELF image: the driver loads it as is.
        #expect(cubin.count > 10_000)
        #expect(Array(cubin.prefix(4)) == [0x7F, 0x45, 0x4C, 0x46])
    }
}

/// The CUDA backend against the CPU oracle; skipped (not failed) where no GPU can be opened. The whole op table runs
/// through `diorama engine selftest --device cuda` on the GPU machine.
@Suite(.enabled(if: CUDABackend.isAvailable, "no CUDA device here"))
struct CUDABackendTests {
    @Test(arguments: [
        (Op.silu, [4096, 257]), (.geluTanh, [1000]), (.sum(axes: [-1], keepDims: false), [300, 3072]),
    ] as [(Op, [Int])])
    func unaryOpsAgreeWithTheCPU(op: Op, shape: [Int]) throws {
        let gpu = try CUDABackend.open()
        let x = try CPUBackend.shared.run(.randomNormal(shape: shape, seed: 11), [])[0]
        let expected = try CPUBackend.shared.run(op, [x])[0].floats()
        let actual = try gpu.readFloats(try gpu.run(op, [try gpu.upload(x)])[0])
        let scale = expected.map(abs).max()!
        #expect(zip(actual, expected).allSatisfy { abs($0 - $1) <= 1e-5 * max(scale, 1) })
    }

    @Test func hostInputsAreRefusedWithAMessage() throws {
        let gpu = try CUDABackend.open()
        let host = try Tensor([1, 2], shape: [2])
        #expect(throws: EngineError.self) { try gpu.run(.silu, [host]) }
    }
}

/// cuDNN's SDPA operation graph for the transformer's attentions (token-major views, as the blocks pass them) builds
/// wherever cuDNN 9.13.1 or newer loads, GPU or not: the descriptors, their numbering and the operation are checked
/// before any device time is spent. A plan needs a GPU; without one the heuristics say so as a failure, not a crash.
@Suite(.enabled(if: (try? CuDNN())?.graph != nil, "cuDNN 9.13.1 or newer not found (pip install nvidia-cudnn-cu13, DIORAMA_LIBCUDNN)"))
struct CuDNNAttentionGraphTests {
    @Test(arguments: [7920, 512])
    func theSDPAGraphBuilds(keys: Int) throws {
        let graph = try #require(try CuDNN().graph)
        // [1, 24, l, 128] views of [1, l, 24, 128] tokens: strides [l·3072, 128, 3072, 1].
        let tokens = { (length: Int) in [length * 3072, 128, 3072, 1] }
        let shape = CuDNNGraph.AttentionShape(
            batch: 1, heads: 24, queries: 7920, keys: keys, dim: 128, strides: [tokens(7920), tokens(keys), tokens(keys), tokens(7920)])
        var kept: [CuDNNGraph.Descriptor] = []
        _ = try graph.attentionGraph(shape, handle: nil, &kept)
        #expect(kept.count == 7)
        if !CUDABackend.isAvailable {
            #expect(throws: CuDNNGraph.Failure.self) { try graph.attentionPlan(shape, handle: nil) }
        }
    }
}
