import EngineCore

/// What `diorama engine info` reports: each CUDA library, where it was found and its version, or why not.
public struct CUDALibraries: Sendable {
    public var name: String
    public var found: Bool
    public var path: String
    public var version: String
    public var message: String

    public static func probe() -> [CUDALibraries] {
        var result: [CUDALibraries] = []
        func record(_ name: String, _ body: () throws(EngineError) -> (String, String)) {
            do throws(EngineError) {
                let (path, version) = try body()
                result.append(CUDALibraries(name: name, found: true, path: path, version: version, message: ""))
            } catch {
                result.append(CUDALibraries(name: name, found: false, path: "", version: "", message: error.message))
            }
        }
        record("libcuda (driver)") { () throws(EngineError) in
            let driver = try CUDADriver()
            var version: Int32 = 0
            _ = driver.cuDriverGetVersion(&version)
            return (driver.library.path, "CUDA \(version / 1000).\(version % 1000 / 10)")
        }
        record("NVRTC") { () throws(EngineError) in
            let nvrtc = try NVRTC()
            return (nvrtc.path, nvrtc.version)
        }
        record("cuBLASLt") { () throws(EngineError) in
            let blas = try CuBLASLt()
            let v = blas.cublasLtGetVersion()
            return (blas.library.path, "\(v / 10000).\(v / 100 % 100).\(v % 100)")
        }
        record("cuDNN (optional)") { () throws(EngineError) in
            let library = try DynamicLibrary(
                names: ["libcudnn.so.9", "libcudnn.so"], environment: "DIORAMA_LIBCUDNN", package: "cuDNN 9 (`pip install nvidia-cudnn-cu13`)", probe: "cudnnGetVersion")
            let getVersion = try library.symbol("cudnnGetVersion", as: (@convention(c) () -> Int).self)
            let v = getVersion()
            return (library.path, "\(v / 10000).\(v / 100 % 100).\(v % 100)")
        }
        return result
    }
}
