import EngineCore

#if canImport(Glibc)
    import Glibc
#endif

/// A shared library opened at run time, so Diorama builds and runs without the CUDA toolkit and only needs the
/// driver and libraries where a GPU is used.
final class DynamicLibrary: @unchecked Sendable {
    let path: String
    private let handle: UnsafeMutableRawPointer

    /// Tries `$<ENV>` (a full path) first, then each name through the loader's search, then the usual CUDA folders.
    init(names: [String], environment: String) throws(EngineError) {
        var candidates: [String] = []
        if let override = getenv(environment).map({ String(cString: $0) }), !override.isEmpty { candidates.append(override) }
        candidates += names
        var folders = ["/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib", "/usr/lib/x86_64-linux-gnu"]
        if let cudaPath = getenv("CUDA_PATH").map({ String(cString: $0) }) { folders.insert(cudaPath + "/lib64", at: 0) }
        for version in ["13.0", "13", "12.9", "12.8", "12.6", "12.4", "12"] {
            folders.append("/usr/local/cuda-\(version)/targets/x86_64-linux/lib")
            folders.append("/usr/local/cuda-\(version)/lib64")
        }
        candidates += folders.flatMap { folder in names.map { "\(folder)/\($0)" } }
        var errors: [String] = []
        for candidate in candidates {
            if let h = dlopen(candidate, RTLD_NOW | RTLD_LOCAL) {
                handle = h
                path = candidate
                return
            }
            if let e = dlerror() { errors.append(String(cString: e)) }
        }
        throw EngineError(
            .device,
            "cannot load \(names[0]) (tried \(names.joined(separator: ", ")) and the CUDA folders); set \(environment) to its path. First error: \(errors.first ?? "none")")
    }

    func symbol<T>(_ name: String, as type: T.Type) throws(EngineError) -> T {
        guard let pointer = dlsym(handle, name) else {
            throw EngineError(.device, "\(path) has no symbol \(name); the library is too old or not the expected one")
        }
        return unsafeBitCast(pointer, to: type)
    }
}
