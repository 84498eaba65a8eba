import EngineCore

#if canImport(Glibc)
    import Glibc
#endif

/// A shared library opened at run time, so Diorama builds and runs without the CUDA toolkit and only needs the
/// driver and libraries where a GPU is used.
final class DynamicLibrary: @unchecked Sendable {
    let path: String
    private let handle: UnsafeMutableRawPointer

    /// Tries `$<ENV>` (a full path) first, then each name through the loader's search, then `CUDA_HOME`/`CUDA_PATH`,
    /// `/usr/local/cuda*`, and the `nvidia-*` wheels of Python installs (where PyTorch keeps its CUDA libraries).
    init(names: [String], environment: String, package: String, probe: String) throws(EngineError) {
        var candidates: [String] = []
        if let override = getenv(environment).map({ String(cString: $0) }), !override.isEmpty { candidates.append(override) }
        candidates += names
        candidates += Self.searchFolders.flatMap { folder in names.map { "\(folder)/\($0)" } }
        var errors: [String] = []
        for candidate in candidates {
            if let h = dlopen(candidate, RTLD_NOW | RTLD_LOCAL) {
                handle = h
                // The loader's own search gives a bare name: ask it where the library came from.
                path = Self.resolvedPath(h, symbol: probe) ?? candidate
                return
            }
            if let e = dlerror() { errors.append(String(cString: e)) }
        }
        throw EngineError(
            .device,
            "cannot load \(names[0]): install \(package), or set \(environment) to the library's path (searched the loader's path, CUDA_HOME, /usr/local/cuda* and Python's nvidia-* wheels)")
    }

    /// Folders that hold CUDA libraries on machines where users have them, most specific first.
    static let searchFolders: [String] = {
        var folders: [String] = []
        for variable in ["CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"] {
            if let root = getenv(variable).map({ String(cString: $0) }), !root.isEmpty {
                folders += ["\(root)/lib64", "\(root)/lib", "\(root)/targets/x86_64-linux/lib", "\(root)/targets/sbsa-linux/lib"]
            }
        }
        folders += glob("/usr/local/cuda*/targets/*/lib") + glob("/usr/local/cuda*/lib64")
        folders += ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/local/nvidia/lib64", "/usr/lib/wsl/lib"]
        // pip's nvidia-* wheels: site-packages/nvidia/<part>/lib (CUDA 12) or nvidia/cu13/lib (CUDA 13).
        var sitePackages: [String] = []
        for variable in ["VIRTUAL_ENV", "CONDA_PREFIX"] {
            if let root = getenv(variable).map({ String(cString: $0) }), !root.isEmpty {
                sitePackages += glob("\(root)/lib/python3*/site-packages")
            }
        }
        if let path = getenv("PYTHONPATH").map({ String(cString: $0) }) {
            sitePackages += path.split(separator: ":").map(String.init)
        }
        let home = getenv("HOME").map { String(cString: $0) } ?? "/root"
        sitePackages += glob("\(home)/.local/lib/python3*/site-packages") + glob("\(home)/.pyenv/versions/*/lib/python3*/site-packages")
        sitePackages += glob("/usr/local/lib/python3*/dist-packages") + glob("/usr/lib/python3/dist-packages")
        sitePackages += glob("/usr/local/lib/python3*/site-packages") + glob("/opt/*/.venv/lib/python3*/site-packages")
        sitePackages += glob("/opt/conda/lib/python3*/site-packages")
        for site in sitePackages {
            folders += glob("\(site)/nvidia/cu1*/lib") + glob("\(site)/nvidia/*/lib")
        }
        var seen = Set<String>()
        return folders.filter { seen.insert($0).inserted }
    }()

    static func glob(_ pattern: String) -> [String] {
        var result = glob_t()
        defer { globfree(&result) }
        guard Glibc.glob(pattern, 0, nil, &result) == 0 else { return [] }
        return (0..<Int(result.gl_pathc)).compactMap { result.gl_pathv[$0].map { String(cString: $0) } }.sorted().reversed()
    }

    /// The file a symbol of the library came from (the loader's own search only knows the bare name): the mapping
    /// of this process that holds the symbol's address.
    private static func resolvedPath(_ handle: UnsafeMutableRawPointer, symbol: String) -> String? {
        guard let address = dlsym(handle, symbol).map({ UInt(bitPattern: $0) }), let maps = fopen("/proc/self/maps", "r") else { return nil }
        defer { fclose(maps) }
        var line = [CChar](repeating: 0, count: 4096)
        while fgets(&line, Int32(line.count), maps) != nil {
            let text = String(cString: line)
            let fields = text.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 6, let dash = fields[0].firstIndex(of: "-"),
                let start = UInt(fields[0][..<dash], radix: 16), let end = UInt(fields[0][fields[0].index(after: dash)...], radix: 16),
                (start..<end).contains(address)
            else { continue }
            return String(fields[5...].joined(separator: " ").filter { $0 != "\n" })
        }
        return nil
    }

    func symbol<T>(_ name: String, as type: T.Type) throws(EngineError) -> T {
        guard let pointer = dlsym(handle, name) else {
            throw EngineError(.device, "\(path) has no symbol \(name); the library is too old or not the expected one")
        }
        return unsafeBitCast(pointer, to: type)
    }

    func symbol<T>(oneOf names: [String], as type: T.Type) throws(EngineError) -> T {
        for name in names {
            if let pointer = dlsym(handle, name) { return unsafeBitCast(pointer, to: type) }
        }
        throw EngineError(.device, "\(path) has none of \(names.joined(separator: ", ")); the library is too old or not the expected one")
    }

    func optionalSymbol<T>(_ name: String, as type: T.Type) -> T? {
        dlsym(handle, name).map { unsafeBitCast($0, to: type) }
    }
}
