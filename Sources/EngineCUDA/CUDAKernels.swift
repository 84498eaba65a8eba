import EngineCore

/// The kernels of the minimal backend, compiled by NVRTC on first use and cached per backend.
extension CUDABackend {
    static let kernelSource = """
        extern "C" __global__ void silu_f32(const float* x, float* y, unsigned long long n) {
            unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x;
            if (i < n) { float v = x[i]; y[i] = v / (1.0f + expf(-v)); }
        }
        extern "C" __global__ void gelu_tanh_f32(const float* x, float* y, unsigned long long n) {
            unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x;
            if (i < n) {
                float v = x[i];
                y[i] = 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
            }
        }
        // One block per row: strided partial sums, then a shared-memory tree.
        extern "C" __global__ void row_sum_f32(const float* x, float* y, unsigned int width) {
            __shared__ float partial[256];
            const float* row = x + (unsigned long long)blockIdx.x * width;
            float acc = 0.0f;
            for (unsigned int i = threadIdx.x; i < width; i += blockDim.x) acc += row[i];
            partial[threadIdx.x] = acc;
            __syncthreads();
            for (unsigned int s = blockDim.x / 2; s > 0; s >>= 1) {
                if (threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];
                __syncthreads();
            }
            if (threadIdx.x == 0) y[blockIdx.x] = partial[0];
        }
        """

    /// The function `name`, compiling the module on first use.
    func kernel(_ name: String, _ confined: inout Confined) throws(EngineError) -> OpaquePointer? {
        if let cached = confined.kernels[name] { return cached }
        if confined.nvrtc == nil { confined.nvrtc = try NVRTC() }
        let cubin = try confined.nvrtc!.compile(Self.kernelSource, name: "diorama_minimal.cu", arch: architecture)
        var module: OpaquePointer?
        let status = cubin.withUnsafeBytes { driver.cuModuleLoadData(&module, $0.baseAddress!) }
        try driver.check(status, "cuModuleLoadData")
        for function in ["silu_f32", "gelu_tanh_f32", "row_sum_f32"] {
            var handle: OpaquePointer?
            try driver.check(driver.cuModuleGetFunction(&handle, module, function), "cuModuleGetFunction(\(function))")
            confined.kernels[function] = handle
        }
        return confined.kernels[name] ?? nil
    }

    /// Launches with arguments passed by address, as cuLaunchKernel takes them.
    func launch(
        _ function: OpaquePointer?, grid: UInt32, block: UInt32, _ arguments: [any BitwiseCopyable]
    ) throws(EngineError) {
        var storage = arguments.map { argument -> UnsafeMutableRawPointer in
            let size = MemoryLayout.size(ofValue: argument)
            let p = UnsafeMutableRawPointer.allocate(byteCount: max(size, 8), alignment: 8)
            withUnsafeBytes(of: argument) { p.copyMemory(from: $0.baseAddress!, byteCount: size) }
            return p
        }
        defer { for p in storage { p.deallocate() } }
        var pointers: [UnsafeMutableRawPointer?] = storage.map { $0 }
        let status = pointers.withUnsafeMutableBufferPointer {
            driver.cuLaunchKernel(function, grid, 1, 1, block, 1, 1, 0, nil, $0.baseAddress, nil)
        }
        try driver.check(status, "cuLaunchKernel")
        try driver.check(driver.cuCtxSynchronize(), "cuCtxSynchronize")
        storage.removeAll()
    }

    func elementwise(_ op: Op, _ x: Tensor) throws(EngineError) -> Tensor {
        let out = try empty(x.shape, dtype: .float32)
        let n = UInt64(x.count)
        try withContext { confined throws(EngineError) in
            let function = try kernel(op == .silu ? "silu_f32" : "gelu_tanh_f32", &confined)
            try launch(
                function, grid: UInt32((n + 255) / 256), block: 256,
                [UInt64(x.storage.address), UInt64(out.storage.address), n])
        }
        return out
    }

    /// Sum over the last axis.
    func rowSum(_ x: Tensor) throws(EngineError) -> Tensor {
        let width = x.shape.last ?? 1
        let rows = x.count / max(width, 1)
        let out = try empty(Array(x.shape.dropLast()), dtype: .float32)
        try withContext { confined throws(EngineError) in
            let function = try kernel("row_sum_f32", &confined)
            try launch(function, grid: UInt32(rows), block: 256, [UInt64(x.storage.address), UInt64(out.storage.address), UInt32(width)])
        }
        return out
    }

    /// `x · wᵀ` through cuBLASLt (float32 accumulation). Row-major results come from the column-major product
    /// `Yᵀ = W · Xᵀ`: A = W read transposed, B = X.
    func linear(_ x: Tensor, _ w: Tensor) throws(EngineError) -> Tensor {
        guard w.rank == 2, let k = x.shape.last, k == w.shape[1], let type = CuBLASLt.dataType(x.dtype) else {
            throw EngineError(.shapeMismatch, "linear: input \(x.shape) does not match weight \(w.shape)")
        }
        let n = w.shape[0], m = x.count / max(k, 1)
        let out = try empty(Array(x.shape.dropLast()) + [n], dtype: x.dtype)
        try withContext { confined throws(EngineError) in
            if confined.blas == nil {
                let blas = try CuBLASLt()
                var handle: OpaquePointer?
                guard blas.cublasLtCreate(&handle) == 0 else { throw EngineError(.device, "cublasLtCreate failed") }
                confined.blas = blas
                confined.blasHandle = handle
                confined.workspace = try allocator.allocate(32 << 20)
            }
            let blas = confined.blas!
            var desc: OpaquePointer?, a: OpaquePointer?, b: OpaquePointer?, c: OpaquePointer?
            guard blas.cublasLtMatmulDescCreate(&desc, CuBLASLt.compute32F, CuBLASLt.dataFloat32) == 0 else {
                throw EngineError(.device, "cublasLtMatmulDescCreate failed")
            }
            defer { _ = blas.cublasLtMatmulDescDestroy(desc) }
            var transpose = CuBLASLt.opTranspose
            _ = blas.cublasLtMatmulDescSetAttribute(desc, CuBLASLt.transposeA, &transpose, 4)
            guard blas.cublasLtMatrixLayoutCreate(&a, type, UInt64(k), UInt64(n), Int64(k)) == 0,
                blas.cublasLtMatrixLayoutCreate(&b, type, UInt64(k), UInt64(m), Int64(k)) == 0,
                blas.cublasLtMatrixLayoutCreate(&c, type, UInt64(n), UInt64(m), Int64(n)) == 0
            else { throw EngineError(.device, "cublasLtMatrixLayoutCreate failed") }
            defer {
                _ = blas.cublasLtMatrixLayoutDestroy(a)
                _ = blas.cublasLtMatrixLayoutDestroy(b)
                _ = blas.cublasLtMatrixLayoutDestroy(c)
            }
            var alpha: Float = 1, beta: Float = 0
            let workspace = confined.workspace!
            let status = blas.cublasLtMatmul(
                confined.blasHandle, desc, &alpha, UInt64(w.storage.address), a, UInt64(x.storage.address), b, &beta,
                UInt64(out.storage.address), c, UInt64(out.storage.address), c, nil, UInt64(workspace.address),
                workspace.size, nil)
            guard status == 0 else { throw EngineError(.device, "cublasLtMatmul failed with status \(status) for \(x.shape) · \(w.shape)ᵀ") }
            try driver.check(driver.cuCtxSynchronize(), "cuCtxSynchronize")
        }
        return out
    }
}
