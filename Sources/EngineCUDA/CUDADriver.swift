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
    let cuMemcpyHtoD: @convention(c) (DevicePointer, UnsafeRawPointer?, Int) -> Result
    let cuMemcpyDtoH: @convention(c) (UnsafeMutableRawPointer?, DevicePointer, Int) -> Result
    let cuModuleLoadData: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UnsafeRawPointer) -> Result
    let cuModuleGetFunction: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, OpaquePointer?, UnsafePointer<CChar>) -> Result
    let cuLaunchKernel:
        @convention(c) (
            OpaquePointer?, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, OpaquePointer?,
            UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?
        ) -> Result
    let cuGetErrorString: @convention(c) (Result, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> Result

    init() throws(EngineError) {
        library = try DynamicLibrary(names: ["libcuda.so.1", "libcuda.so"], environment: "DIORAMA_LIBCUDA")
        cuInit = try library.symbol("cuInit", as: type(of: cuInit))
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
        cuMemcpyHtoD = try library.symbol("cuMemcpyHtoD_v2", as: type(of: cuMemcpyHtoD))
        cuMemcpyDtoH = try library.symbol("cuMemcpyDtoH_v2", as: type(of: cuMemcpyDtoH))
        cuModuleLoadData = try library.symbol("cuModuleLoadData", as: type(of: cuModuleLoadData))
        cuModuleGetFunction = try library.symbol("cuModuleGetFunction", as: type(of: cuModuleGetFunction))
        cuLaunchKernel = try library.symbol("cuLaunchKernel", as: type(of: cuLaunchKernel))
        cuGetErrorString = try library.symbol("cuGetErrorString", as: type(of: cuGetErrorString))
    }

    /// Throws with the driver's own words for a failed call.
    func check(_ result: Result, _ call: String) throws(EngineError) {
        guard result != 0 else { return }
        var text: UnsafePointer<CChar>?
        _ = cuGetErrorString(result, &text)
        throw EngineError(.device, "\(call) failed: \(text.map { String(cString: $0) } ?? "CUresult \(result)")")
    }
}

/// NVRTC: compiles kernel source to a cubin (or PTX) for the device at run time.
struct NVRTC: @unchecked Sendable {
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

    init() throws(EngineError) {
        library = try DynamicLibrary(
            names: ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"], environment: "DIORAMA_LIBNVRTC")
        nvrtcVersion = try library.symbol("nvrtcVersion", as: type(of: nvrtcVersion))
        nvrtcCreateProgram = try library.symbol("nvrtcCreateProgram", as: type(of: nvrtcCreateProgram))
        nvrtcCompileProgram = try library.symbol("nvrtcCompileProgram", as: type(of: nvrtcCompileProgram))
        nvrtcGetProgramLogSize = try library.symbol("nvrtcGetProgramLogSize", as: type(of: nvrtcGetProgramLogSize))
        nvrtcGetProgramLog = try library.symbol("nvrtcGetProgramLog", as: type(of: nvrtcGetProgramLog))
        nvrtcGetCUBINSize = try library.symbol("nvrtcGetCUBINSize", as: type(of: nvrtcGetCUBINSize))
        nvrtcGetCUBIN = try library.symbol("nvrtcGetCUBIN", as: type(of: nvrtcGetCUBIN))
        nvrtcDestroyProgram = try library.symbol("nvrtcDestroyProgram", as: type(of: nvrtcDestroyProgram))
    }

    /// A cubin for `sm_<arch>` from `source`; a compile error carries NVRTC's log.
    func compile(_ source: String, name: String, arch: Int) throws(EngineError) -> [UInt8] {
        var program: OpaquePointer?
        guard nvrtcCreateProgram(&program, source, name, 0, nil, nil) == 0 else {
            throw EngineError(.device, "nvrtcCreateProgram failed for \(name)")
        }
        defer { _ = nvrtcDestroyProgram(&program) }
        let options = ["--gpu-architecture=sm_\(arch)", "--std=c++17", "-default-device"]
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

/// cuBLASLt: matrix products with float32 accumulation for float32, float16 and bfloat16 operands.
struct CuBLASLt: @unchecked Sendable {
    typealias Status = Int32
    let library: DynamicLibrary
    let cublasLtCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Status
    let cublasLtMatmulDescCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, Int32, Int32) -> Status
    let cublasLtMatmulDescDestroy: @convention(c) (OpaquePointer?) -> Status
    let cublasLtMatmulDescSetAttribute: @convention(c) (OpaquePointer?, Int32, UnsafeRawPointer, Int) -> Status
    let cublasLtMatrixLayoutCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, Int32, UInt64, UInt64, Int64) -> Status
    let cublasLtMatrixLayoutDestroy: @convention(c) (OpaquePointer?) -> Status
    let cublasLtMatmul:
        @convention(c) (
            OpaquePointer?, OpaquePointer?, UnsafeRawPointer, UInt64, OpaquePointer?, UInt64, OpaquePointer?,
            UnsafeRawPointer, UInt64, OpaquePointer?, UInt64, OpaquePointer?, UnsafeRawPointer?, UInt64, Int, OpaquePointer?
        ) -> Status

    static let compute32F: Int32 = 68
    static let dataFloat32: Int32 = 0
    static let dataFloat16: Int32 = 2
    static let dataBFloat16: Int32 = 14
    static let transposeA: Int32 = 3
    static let transposeB: Int32 = 4
    static let opTranspose: Int32 = 1

    init() throws(EngineError) {
        library = try DynamicLibrary(
            names: ["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"], environment: "DIORAMA_LIBCUBLASLT")
        cublasLtCreate = try library.symbol("cublasLtCreate", as: type(of: cublasLtCreate))
        cublasLtMatmulDescCreate = try library.symbol("cublasLtMatmulDescCreate", as: type(of: cublasLtMatmulDescCreate))
        cublasLtMatmulDescDestroy = try library.symbol("cublasLtMatmulDescDestroy", as: type(of: cublasLtMatmulDescDestroy))
        cublasLtMatmulDescSetAttribute = try library.symbol(
            "cublasLtMatmulDescSetAttribute", as: type(of: cublasLtMatmulDescSetAttribute))
        cublasLtMatrixLayoutCreate = try library.symbol("cublasLtMatrixLayoutCreate", as: type(of: cublasLtMatrixLayoutCreate))
        cublasLtMatrixLayoutDestroy = try library.symbol("cublasLtMatrixLayoutDestroy", as: type(of: cublasLtMatrixLayoutDestroy))
        cublasLtMatmul = try library.symbol("cublasLtMatmul", as: type(of: cublasLtMatmul))
    }

    static func dataType(_ dtype: DType) -> Int32? {
        switch dtype {
        case .float32: dataFloat32
        case .float16: dataFloat16
        case .bfloat16: dataBFloat16
        default: nil
        }
    }
}
