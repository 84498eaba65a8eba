import EngineCore

#if canImport(Glibc)
    import Glibc
#endif

/// cuDNN's convolution (the legacy API, still exported by cuDNN 9's `libcudnn.so.9`), loaded at run time where it is
/// present: tensor-core implicit GEMM without im2col columns in memory. Absent or failing, convolutions fall back to
/// the backend's own im2col path.
struct CuDNN: @unchecked Sendable {
    typealias Status = Int32
    let library: DynamicLibrary
    let cudnnCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Status
    let cudnnSetStream: @convention(c) (OpaquePointer?, OpaquePointer?) -> Status
    let cudnnGetVersion: @convention(c) () -> Int
    let cudnnCreateTensorDescriptor: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Status
    let cudnnSetTensor4dDescriptor: @convention(c) (OpaquePointer?, Int32, Int32, Int32, Int32, Int32, Int32) -> Status
    let cudnnCreateFilterDescriptor: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Status
    let cudnnSetFilter4dDescriptor: @convention(c) (OpaquePointer?, Int32, Int32, Int32, Int32, Int32, Int32) -> Status
    let cudnnCreateConvolutionDescriptor: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Status
    let cudnnSetConvolution2dDescriptor: @convention(c) (OpaquePointer?, Int32, Int32, Int32, Int32, Int32, Int32, Int32, Int32) -> Status
    let cudnnSetConvolutionMathType: @convention(c) (OpaquePointer?, Int32) -> Status
    let cudnnGetConvolutionForwardAlgorithm_v7:
        @convention(c) (OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, Int32, UnsafeMutablePointer<Int32>, UnsafeMutableRawPointer) ->
            Status
    /// Times the candidate algorithms on the GPU (results fastest first); nil in a library without it.
    let cudnnFindConvolutionForwardAlgorithm:
        (@convention(c) (OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, Int32, UnsafeMutablePointer<Int32>, UnsafeMutableRawPointer) ->
            Status)?
    let cudnnConvolutionForward:
        @convention(c) (
            OpaquePointer?, UnsafeRawPointer, OpaquePointer?, UInt64, OpaquePointer?, UInt64, OpaquePointer?, Int32, UInt64, Int,
            UnsafeRawPointer, OpaquePointer?, UInt64
        ) -> Status
    /// The graph API's fused attention, where the library is new enough.
    let graph: CuDNNGraph?

    // cudnnTensorFormat_t, cudnnDataType_t, cudnnConvolutionMode_t, cudnnMathType_t
    static let formatNCHW: Int32 = 0
    static let crossCorrelation: Int32 = 1
    static let tensorOpMath: Int32 = 1
    static let fmaMath: Int32 = 3
    /// `cudnnConvolutionFwdAlgoPerf_t`: algo (i32) at 0, status (i32) at 4, memory (size_t) at 16, mathType (i32) at 28.
    static let perfSize = 48
    static let workspaceLimit = 2 << 30

    init() throws(EngineError) {
        library = try DynamicLibrary(
            names: ["libcudnn.so.9", "libcudnn.so"], environment: "DIORAMA_LIBCUDNN", package: "cuDNN 9 (`pip install nvidia-cudnn-cu13`)",
            probe: "cudnnGetVersion")
        cudnnCreate = try library.symbol("cudnnCreate", as: type(of: cudnnCreate))
        cudnnSetStream = try library.symbol("cudnnSetStream", as: type(of: cudnnSetStream))
        cudnnGetVersion = try library.symbol("cudnnGetVersion", as: type(of: cudnnGetVersion))
        cudnnCreateTensorDescriptor = try library.symbol("cudnnCreateTensorDescriptor", as: type(of: cudnnCreateTensorDescriptor))
        cudnnSetTensor4dDescriptor = try library.symbol("cudnnSetTensor4dDescriptor", as: type(of: cudnnSetTensor4dDescriptor))
        cudnnCreateFilterDescriptor = try library.symbol("cudnnCreateFilterDescriptor", as: type(of: cudnnCreateFilterDescriptor))
        cudnnSetFilter4dDescriptor = try library.symbol("cudnnSetFilter4dDescriptor", as: type(of: cudnnSetFilter4dDescriptor))
        cudnnCreateConvolutionDescriptor = try library.symbol("cudnnCreateConvolutionDescriptor", as: type(of: cudnnCreateConvolutionDescriptor))
        cudnnSetConvolution2dDescriptor = try library.symbol("cudnnSetConvolution2dDescriptor", as: type(of: cudnnSetConvolution2dDescriptor))
        cudnnSetConvolutionMathType = try library.symbol("cudnnSetConvolutionMathType", as: type(of: cudnnSetConvolutionMathType))
        cudnnGetConvolutionForwardAlgorithm_v7 = try library.symbol(
            "cudnnGetConvolutionForwardAlgorithm_v7", as: type(of: cudnnGetConvolutionForwardAlgorithm_v7))
        cudnnConvolutionForward = try library.symbol("cudnnConvolutionForward", as: type(of: cudnnConvolutionForward))
        typealias Find = @convention(c) (
            OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, Int32, UnsafeMutablePointer<Int32>, UnsafeMutableRawPointer
        ) -> Status
        cudnnFindConvolutionForwardAlgorithm = try? library.symbol("cudnnFindConvolutionForwardAlgorithm", as: Find.self)
        graph = CuDNNGraph(library, version: cudnnGetVersion())
    }

    static func dataType(_ dtype: DType) -> Int32? {
        switch dtype {
        case .float32: 0
        case .float16: 2
        case .bfloat16: 9
        default: nil
        }
    }

    /// A convolution's descriptors and chosen algorithm, made once per shape.
    struct Plan: @unchecked Sendable {
        var input: OpaquePointer?
        var filter: OpaquePointer?
        var output: OpaquePointer?
        var convolution: OpaquePointer?
        var algorithm: Int32
        var workspace: Int
    }

    /// The plan for NCHW `x` `[n, c, h, w]`, weight `[o, c, kh, kw]`, output `[n, o, oh, ow]`; nil when cuDNN declines.
    func plan(
        handle: OpaquePointer?, dtype: DType, input: [Int], filter: [Int], output: [Int], stride: (Int, Int), padding: (Int, Int)
    ) -> Plan? {
        guard let type = Self.dataType(dtype) else { return nil }
        var plan = Plan(input: nil, filter: nil, output: nil, convolution: nil, algorithm: 0, workspace: 0)
        let i32 = { (v: Int) in Int32(v) }
        guard cudnnCreateTensorDescriptor(&plan.input) == 0, cudnnCreateTensorDescriptor(&plan.output) == 0,
            cudnnCreateFilterDescriptor(&plan.filter) == 0, cudnnCreateConvolutionDescriptor(&plan.convolution) == 0,
            cudnnSetTensor4dDescriptor(plan.input, Self.formatNCHW, type, i32(input[0]), i32(input[1]), i32(input[2]), i32(input[3])) == 0,
            cudnnSetTensor4dDescriptor(plan.output, Self.formatNCHW, type, i32(output[0]), i32(output[1]), i32(output[2]), i32(output[3])) == 0,
            cudnnSetFilter4dDescriptor(plan.filter, type, Self.formatNCHW, i32(filter[0]), i32(filter[1]), i32(filter[2]), i32(filter[3])) == 0,
            // float32 accumulation; float32 data keeps full-precision FMA (no TF32), as the CPU oracle computes.
            cudnnSetConvolution2dDescriptor(
                plan.convolution, i32(padding.0), i32(padding.1), i32(stride.0), i32(stride.1), 1, 1, Self.crossCorrelation, 0) == 0,
            cudnnSetConvolutionMathType(plan.convolution, dtype == .float32 ? Self.fmaMath : Self.tensorOpMath) == 0
        else { return nil }
        let requested = 8
        let results = UnsafeMutableRawPointer.allocate(byteCount: requested * Self.perfSize, alignment: 8)
        defer { results.deallocate() }
        var returned: Int32 = 0
        // DIORAMA_CUDNN_FIND=1 times the candidates once per shape (a synchronising step, as PyTorch's
        // cudnn.benchmark) instead of taking the heuristic's ranking; not yet measured to pay, so off by default.
        let timed =
            getenv("DIORAMA_CUDNN_FIND") != nil
            && cudnnFindConvolutionForwardAlgorithm?(handle, plan.input, plan.filter, plan.convolution, plan.output, Int32(requested), &returned, results) == 0
        if !timed {
            returned = 0
            guard cudnnGetConvolutionForwardAlgorithm_v7(handle, plan.input, plan.filter, plan.convolution, plan.output, Int32(requested), &returned, results) == 0
            else { return nil }
        }
        for r in 0..<Int(returned) {
            let entry = results + r * Self.perfSize
            guard entry.load(fromByteOffset: 4, as: Int32.self) == 0 else { continue }
            let math = entry.load(fromByteOffset: 28, as: Int32.self)
            // Float32 data stays off tensor cores; reduced precision takes the fastest (or the heuristic's first).
            if dtype == .float32 && math != Self.fmaMath && math != 0 { continue }
            // A timed search may rank FFT algorithms with gigabytes of workspace first: past the limit they cost more
            // memory than the time they save. The heuristic's ranking is taken as it is (a 512 MiB limit on it
            // skipped its first choices for the decoder's wide convolutions, making them 4x slower on an H100).
            if timed && entry.load(fromByteOffset: 16, as: Int.self) > Self.workspaceLimit { continue }
            plan.algorithm = entry.load(fromByteOffset: 0, as: Int32.self)
            plan.workspace = entry.load(fromByteOffset: 16, as: Int.self)
            _ = cudnnSetConvolutionMathType(plan.convolution, dtype == .float32 ? Self.fmaMath : math)
            return plan
        }
        return nil
    }
}

extension CUDABackend {
    /// `out += conv(x, w)` through cuDNN when it is loaded and takes the shape (`DIORAMA_NO_CUDNN=1` turns it off);
    /// false means nothing was enqueued and the caller takes its own path.
    func cudnnConvolution(
        _ x: Tensor, _ w: Tensor, into out: Tensor, stride: (Int, Int), padding: (Int, Int)
    ) throws(EngineError) -> Bool {
        guard getenv("DIORAMA_NO_CUDNN") == nil, x.dtype == w.dtype, x.dtype == out.dtype, CuDNN.dataType(x.dtype) != nil,
            x.isContiguous, w.isContiguous, out.isContiguous
        else { return false }
        let key = "\(x.dtype) \(x.shape) \(w.shape) \(stride) \(padding)"
        let prepared: (CuDNN, OpaquePointer?, CuDNN.Plan)? = try withContext { confined throws(EngineError) in
            guard cudnnIsReady(&confined), let library = confined.cudnn else { return nil }
            if let cached = confined.cudnnPlans[key] { return cached.map { (library, confined.cudnnHandle, $0) } }
            let plan = library.plan(
                handle: confined.cudnnHandle, dtype: x.dtype, input: x.shape, filter: w.shape, output: out.shape, stride: stride,
                padding: padding)
            confined.cudnnPlans[key] = .some(plan)
            return plan.map { (library, confined.cudnnHandle, $0) }
        }
        guard let (library, handle, plan) = prepared else { return false }
        let workspace = plan.workspace > 0 ? try empty([plan.workspace], dtype: .bool) : nil
        return try withContext { _ throws(EngineError) in
            var alpha: Float = 1, beta: Float = 1
            let status = library.cudnnConvolutionForward(
                handle, &alpha, plan.input, Self.address(x), plan.filter, Self.address(w), plan.convolution, plan.algorithm,
                workspace.map { Self.address($0) } ?? 0, plan.workspace, &beta, plan.output, Self.address(out))
            return status == 0
        }
    }
}
