#if canImport(Glibc)
    import Glibc
#endif

import EngineCore

/// The CUDA driver functions Diorama calls, resolved from libcuda with their versioned names.
struct CUDADriver: @unchecked Sendable {
    typealias Result = Int32
    typealias DevicePointer = UInt64

    let library: DynamicLibrary
    let cuInit: @convention(c) (UInt32) -> Result
    let cuDriverGetVersion: @convention(c) (UnsafeMutablePointer<Int32>) -> Result
    let cuDeviceGetCount: @convention(c) (UnsafeMutablePointer<Int32>) -> Result
    let cuDeviceGet: @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Result
    let cuDeviceGetName: @convention(c) (UnsafeMutablePointer<CChar>, Int32, Int32) -> Result
    let cuDeviceGetAttribute: @convention(c) (UnsafeMutablePointer<Int32>, Int32, Int32) -> Result
    let cuDevicePrimaryCtxRetain: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, Int32) -> Result
    let cuCtxSetCurrent: @convention(c) (OpaquePointer?) -> Result
    let cuCtxSynchronize: @convention(c) () -> Result
    let cuMemAlloc: @convention(c) (UnsafeMutablePointer<DevicePointer>, Int) -> Result
    let cuMemFree: @convention(c) (DevicePointer) -> Result
    let cuMemGetInfo: @convention(c) (UnsafeMutablePointer<Int>, UnsafeMutablePointer<Int>) -> Result
    let cuMemHostAlloc: @convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>, Int, UInt32) -> Result
    let cuMemFreeHost: @convention(c) (UnsafeMutableRawPointer?) -> Result
    let cuMemcpyHtoDAsync: @convention(c) (DevicePointer, UnsafeRawPointer?, Int, OpaquePointer?) -> Result
    let cuMemcpyDtoHAsync: @convention(c) (UnsafeMutableRawPointer?, DevicePointer, Int, OpaquePointer?) -> Result
    let cuMemcpyDtoDAsync: @convention(c) (DevicePointer, DevicePointer, Int, OpaquePointer?) -> Result
    let cuStreamCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UInt32) -> Result
    let cuStreamSynchronize: @convention(c) (OpaquePointer?) -> Result
    let cuEventCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UInt32) -> Result
    let cuEventRecord: @convention(c) (OpaquePointer?, OpaquePointer?) -> Result
    let cuEventSynchronize: @convention(c) (OpaquePointer?) -> Result
    let cuEventElapsedTime: @convention(c) (UnsafeMutablePointer<Float>, OpaquePointer?, OpaquePointer?) -> Result
    let cuEventDestroy: @convention(c) (OpaquePointer?) -> Result
    let cuModuleLoadData: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UnsafeRawPointer) -> Result
    let cuModuleGetFunction: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, OpaquePointer?, UnsafePointer<CChar>) -> Result
    let cuFuncSetAttribute: @convention(c) (OpaquePointer?, Int32, Int32) -> Result
    let cuLaunchKernel:
        @convention(c) (
            OpaquePointer?, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, OpaquePointer?,
            UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?
        ) -> Result
    let cuGetErrorString: @convention(c) (Result, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> Result

    /// `CU_DEVICE_ATTRIBUTE_*` values used here.
    enum Attribute: Int32 {
        case multiprocessorCount = 16
        case computeCapabilityMajor = 75
        case computeCapabilityMinor = 76
        case maxSharedMemoryPerBlockOptin = 97
    }

    init() throws(EngineError) {
        library = try DynamicLibrary(names: ["libcuda.so.1", "libcuda.so"], environment: "DIORAMA_LIBCUDA", package: "the NVIDIA driver", probe: "cuInit")
        cuInit = try library.symbol("cuInit", as: type(of: cuInit))
        cuDriverGetVersion = try library.symbol("cuDriverGetVersion", as: type(of: cuDriverGetVersion))
        cuDeviceGetCount = try library.symbol("cuDeviceGetCount", as: type(of: cuDeviceGetCount))
        cuDeviceGet = try library.symbol("cuDeviceGet", as: type(of: cuDeviceGet))
        cuDeviceGetName = try library.symbol("cuDeviceGetName", as: type(of: cuDeviceGetName))
        cuDeviceGetAttribute = try library.symbol("cuDeviceGetAttribute", as: type(of: cuDeviceGetAttribute))
        cuDevicePrimaryCtxRetain = try library.symbol("cuDevicePrimaryCtxRetain", as: type(of: cuDevicePrimaryCtxRetain))
        cuCtxSetCurrent = try library.symbol("cuCtxSetCurrent", as: type(of: cuCtxSetCurrent))
        cuCtxSynchronize = try library.symbol("cuCtxSynchronize", as: type(of: cuCtxSynchronize))
        cuMemAlloc = try library.symbol("cuMemAlloc_v2", as: type(of: cuMemAlloc))
        cuMemFree = try library.symbol("cuMemFree_v2", as: type(of: cuMemFree))
        cuMemGetInfo = try library.symbol("cuMemGetInfo_v2", as: type(of: cuMemGetInfo))
        cuMemHostAlloc = try library.symbol("cuMemHostAlloc", as: type(of: cuMemHostAlloc))
        cuMemFreeHost = try library.symbol("cuMemFreeHost", as: type(of: cuMemFreeHost))
        cuMemcpyHtoDAsync = try library.symbol("cuMemcpyHtoDAsync_v2", as: type(of: cuMemcpyHtoDAsync))
        cuMemcpyDtoHAsync = try library.symbol("cuMemcpyDtoHAsync_v2", as: type(of: cuMemcpyDtoHAsync))
        cuMemcpyDtoDAsync = try library.symbol("cuMemcpyDtoDAsync_v2", as: type(of: cuMemcpyDtoDAsync))
        cuStreamCreate = try library.symbol("cuStreamCreate", as: type(of: cuStreamCreate))
        cuStreamSynchronize = try library.symbol("cuStreamSynchronize", as: type(of: cuStreamSynchronize))
        cuEventCreate = try library.symbol("cuEventCreate", as: type(of: cuEventCreate))
        cuEventRecord = try library.symbol("cuEventRecord", as: type(of: cuEventRecord))
        cuEventSynchronize = try library.symbol("cuEventSynchronize", as: type(of: cuEventSynchronize))
        cuEventElapsedTime = try library.symbol(oneOf: ["cuEventElapsedTime_v2", "cuEventElapsedTime"], as: type(of: cuEventElapsedTime))
        cuEventDestroy = try library.symbol(oneOf: ["cuEventDestroy_v2", "cuEventDestroy"], as: type(of: cuEventDestroy))
        cuModuleLoadData = try library.symbol("cuModuleLoadData", as: type(of: cuModuleLoadData))
        cuModuleGetFunction = try library.symbol("cuModuleGetFunction", as: type(of: cuModuleGetFunction))
        cuFuncSetAttribute = try library.symbol("cuFuncSetAttribute", as: type(of: cuFuncSetAttribute))
        cuLaunchKernel = try library.symbol("cuLaunchKernel", as: type(of: cuLaunchKernel))
        cuGetErrorString = try library.symbol("cuGetErrorString", as: type(of: cuGetErrorString))
    }

    /// Throws with the driver's own words for a failed call.
    func check(_ result: Result, _ call: String) throws(EngineError) {
        guard result != 0 else { return }
        var text: UnsafePointer<CChar>?
        _ = cuGetErrorString(result, &text)
        let words = text.map { String(cString: $0) } ?? "CUresult \(result)"
        // CUDA_ERROR_OUT_OF_MEMORY (2) is the caller's to handle (a smaller job may fit); the rest are device faults.
        throw EngineError(result == 2 ? .outOfMemory : .device, "\(call) failed: \(words)")
    }

    func attribute(_ attribute: Attribute, device: Int32) -> Int {
        var value: Int32 = 0
        return cuDeviceGetAttribute(&value, attribute.rawValue, device) == 0 ? Int(value) : 0
    }
}

/// NVRTC: compiles kernel source to a cubin for the device at run time.
public struct NVRTC: @unchecked Sendable {
    typealias Result = Int32
    let library: DynamicLibrary
    let nvrtcVersion: @convention(c) (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) -> Result
    let nvrtcCreateProgram:
        @convention(c) (
            UnsafeMutablePointer<OpaquePointer?>, UnsafePointer<CChar>, UnsafePointer<CChar>?, Int32,
            UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?
        ) -> Result
    let nvrtcCompileProgram: @convention(c) (OpaquePointer?, Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> Result
    let nvrtcGetProgramLogSize: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>) -> Result
    let nvrtcGetProgramLog: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>) -> Result
    let nvrtcGetCUBINSize: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>) -> Result
    let nvrtcGetCUBIN: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>) -> Result
    let nvrtcDestroyProgram: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Result

    public init() throws(EngineError) {
        library = try DynamicLibrary(
            names: ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"], environment: "DIORAMA_LIBNVRTC",
            package: "NVRTC (the CUDA toolkit's cuda-nvrtc, or `pip install nvidia-cuda-nvrtc`)", probe: "nvrtcVersion")
        // NVRTC opens its builtins library by name; outside the loader's path (a pip wheel) that fails unless the
        // one beside it is already loaded.
        let folder = library.path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        for builtins in DynamicLibrary.glob("\(folder)/libnvrtc-builtins.so.*") where !builtins.contains(".alt.") {
            _ = dlopen(builtins, RTLD_NOW | RTLD_GLOBAL)
        }
        nvrtcVersion = try library.symbol("nvrtcVersion", as: type(of: nvrtcVersion))
        nvrtcCreateProgram = try library.symbol("nvrtcCreateProgram", as: type(of: nvrtcCreateProgram))
        nvrtcCompileProgram = try library.symbol("nvrtcCompileProgram", as: type(of: nvrtcCompileProgram))
        nvrtcGetProgramLogSize = try library.symbol("nvrtcGetProgramLogSize", as: type(of: nvrtcGetProgramLogSize))
        nvrtcGetProgramLog = try library.symbol("nvrtcGetProgramLog", as: type(of: nvrtcGetProgramLog))
        nvrtcGetCUBINSize = try library.symbol("nvrtcGetCUBINSize", as: type(of: nvrtcGetCUBINSize))
        nvrtcGetCUBIN = try library.symbol("nvrtcGetCUBIN", as: type(of: nvrtcGetCUBIN))
        nvrtcDestroyProgram = try library.symbol("nvrtcDestroyProgram", as: type(of: nvrtcDestroyProgram))
    }

    public var path: String { library.path }

    public var version: String {
        var major: Int32 = 0, minor: Int32 = 0
        _ = nvrtcVersion(&major, &minor)
        return "\(major).\(minor)"
    }

    /// A cubin for `sm_<arch>` from `source`; a compile error carries NVRTC's log.
    public func compile(_ source: String, name: String, arch: Int) throws(EngineError) -> [UInt8] {
        var program: OpaquePointer?
        guard nvrtcCreateProgram(&program, source, name, 0, nil, nil) == 0 else {
            throw EngineError(.device, "nvrtcCreateProgram failed for \(name)")
        }
        defer { _ = nvrtcDestroyProgram(&program) }
        let options = ["--gpu-architecture=sm_\(arch)", "--std=c++17", "-default-device", "--extra-device-vectorization"]
        let pointers: [UnsafePointer<CChar>?] = options.map { UnsafePointer(strdup($0)) }
        defer { for p in pointers { free(UnsafeMutablePointer(mutating: p)) } }
        let status = pointers.withUnsafeBufferPointer {
            nvrtcCompileProgram(program, Int32(options.count), $0.baseAddress)
        }
        guard status == 0 else {
            var size = 0
            _ = nvrtcGetProgramLogSize(program, &size)
            var log = [CChar](repeating: 0, count: max(size, 1))
            _ = nvrtcGetProgramLog(program, &log)
            throw EngineError(.device, "NVRTC could not compile \(name) for sm_\(arch): \(String(cString: log))")
        }
        var size = 0
        _ = nvrtcGetCUBINSize(program, &size)
        var cubin = [CChar](repeating: 0, count: size)
        guard nvrtcGetCUBIN(program, &cubin) == 0 else { throw EngineError(.device, "nvrtcGetCUBIN failed for \(name)") }
        return cubin.map { UInt8(bitPattern: $0) }
    }
}

/// cuBLASLt: matrix products with float32 accumulation for float32, float16, bfloat16 and FP8 operands.
struct CuBLASLt: @unchecked Sendable {
    typealias Status = Int32
    let library: DynamicLibrary
    let cublasLtCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Status
    let cublasLtGetVersion: @convention(c) () -> Int
    let cublasLtMatmulDescCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, Int32, Int32) -> Status
    let cublasLtMatmulDescDestroy: @convention(c) (OpaquePointer?) -> Status
    let cublasLtMatmulDescSetAttribute: @convention(c) (OpaquePointer?, Int32, UnsafeRawPointer, Int) -> Status
    let cublasLtMatrixLayoutCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, Int32, UInt64, UInt64, Int64) -> Status
    let cublasLtMatrixLayoutDestroy: @convention(c) (OpaquePointer?) -> Status
    let cublasLtMatrixLayoutSetAttribute: @convention(c) (OpaquePointer?, Int32, UnsafeRawPointer, Int) -> Status
    let cublasLtMatmul:
        @convention(c) (
            OpaquePointer?, OpaquePointer?, UnsafeRawPointer, UInt64, OpaquePointer?, UInt64, OpaquePointer?,
            UnsafeRawPointer, UInt64, OpaquePointer?, UInt64, OpaquePointer?, UnsafeRawPointer?, UInt64, Int, OpaquePointer?
        ) -> Status
    let cublasLtMatmulPreferenceCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Status
    let cublasLtMatmulPreferenceDestroy: @convention(c) (OpaquePointer?) -> Status
    let cublasLtMatmulPreferenceSetAttribute: @convention(c) (OpaquePointer?, Int32, UnsafeRawPointer, Int) -> Status
    /// (handle, desc, A, B, C, D layouts, preference, requested, results (96 bytes each), returned)
    let cublasLtMatmulAlgoGetHeuristic:
        @convention(c) (
            OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, Int32,
            UnsafeMutableRawPointer, UnsafeMutablePointer<Int32>
        ) -> Status
    static let preferenceMaxWorkspace: Int32 = 1
    /// CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_{A,B,C,D}_BYTES: the heuristic then only offers kernels these pointers suit.
    static let preferenceMinAlignment: [Int32] = [5, 6, 7, 8]
    /// `cublasLtMatmulHeuristicResult_t`: the algorithm (64 bytes) first, its workspace (size_t) at 64, state at 72.
    static let heuristicResultSize = 96

    // cublasComputeType_t and cudaDataType_t values.
    static let compute32F: Int32 = 68
    static let dataFloat32: Int32 = 0
    static let dataFloat16: Int32 = 2
    static let dataBFloat16: Int32 = 14
    static let dataE4M3: Int32 = 28
    static let dataE5M2: Int32 = 29
    // cublasLtMatmulDescAttributes_t
    static let transposeA: Int32 = 3
    static let transposeB: Int32 = 4
    static let epilogue: Int32 = 7
    static let biasPointer: Int32 = 8
    static let aScalePointer: Int32 = 17
    static let bScalePointer: Int32 = 18
    static let biasDataType: Int32 = 26
    static let opTranspose: Int32 = 1
    static let epilogueBias: Int32 = 4
    // cublasLtMatrixLayoutAttribute_t
    static let batchCount: Int32 = 5
    static let stridedBatchOffset: Int32 = 6

    init() throws(EngineError) {
        library = try DynamicLibrary(
            names: ["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"], environment: "DIORAMA_LIBCUBLASLT",
            package: "cuBLASLt (the CUDA toolkit's libcublas, or `pip install nvidia-cublas`)", probe: "cublasLtCreate")
        cublasLtCreate = try library.symbol("cublasLtCreate", as: type(of: cublasLtCreate))
        cublasLtGetVersion = try library.symbol("cublasLtGetVersion", as: type(of: cublasLtGetVersion))
        cublasLtMatmulDescCreate = try library.symbol("cublasLtMatmulDescCreate", as: type(of: cublasLtMatmulDescCreate))
        cublasLtMatmulDescDestroy = try library.symbol("cublasLtMatmulDescDestroy", as: type(of: cublasLtMatmulDescDestroy))
        cublasLtMatmulDescSetAttribute = try library.symbol(
            "cublasLtMatmulDescSetAttribute", as: type(of: cublasLtMatmulDescSetAttribute))
        cublasLtMatrixLayoutCreate = try library.symbol("cublasLtMatrixLayoutCreate", as: type(of: cublasLtMatrixLayoutCreate))
        cublasLtMatrixLayoutDestroy = try library.symbol("cublasLtMatrixLayoutDestroy", as: type(of: cublasLtMatrixLayoutDestroy))
        cublasLtMatrixLayoutSetAttribute = try library.symbol(
            "cublasLtMatrixLayoutSetAttribute", as: type(of: cublasLtMatrixLayoutSetAttribute))
        cublasLtMatmul = try library.symbol("cublasLtMatmul", as: type(of: cublasLtMatmul))
        cublasLtMatmulPreferenceCreate = try library.symbol("cublasLtMatmulPreferenceCreate", as: type(of: cublasLtMatmulPreferenceCreate))
        cublasLtMatmulPreferenceDestroy = try library.symbol("cublasLtMatmulPreferenceDestroy", as: type(of: cublasLtMatmulPreferenceDestroy))
        cublasLtMatmulPreferenceSetAttribute = try library.symbol(
            "cublasLtMatmulPreferenceSetAttribute", as: type(of: cublasLtMatmulPreferenceSetAttribute))
        cublasLtMatmulAlgoGetHeuristic = try library.symbol("cublasLtMatmulAlgoGetHeuristic", as: type(of: cublasLtMatmulAlgoGetHeuristic))
    }

    static func dataType(_ dtype: DType) -> Int32? {
        switch dtype {
        case .float32: dataFloat32
        case .float16: dataFloat16
        case .bfloat16: dataBFloat16
        case .float8E4M3: dataE4M3
        case .float8E5M2: dataE5M2
        default: nil
        }
    }
}
