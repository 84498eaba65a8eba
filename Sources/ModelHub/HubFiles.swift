#if canImport(Glibc)
    import Glibc
#endif

/// Why a model could not be fetched or found, in words a user can act on.
public struct HubError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// A name that is neither a known model nor a folder.
        case unknownModel
        /// The model is not (wholly) in the cache and the hub may not or cannot be asked.
        case notDownloaded
        /// The hub answered with an error status (401/403: a gated or private repository without a token).
        case hub(status: Int)
        /// The connection failed or timed out.
        case network
        /// A file's bytes do not match the hub's hash or size.
        case verification
        /// The cache could not be read or written.
        case file
    }

    public var kind: Kind
    public var message: String
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
    public var description: String { message }

    static func file(_ path: String, _ reason: String) -> HubError { HubError(.file, "\(path): \(reason)") }
}

/// Small POSIX file helpers for the cache (symbolic links and renames are what the layout is made of).
enum HubFiles {
    static func lastError() -> String { String(cString: strerror(errno)) }

    static func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    static func makeDirectories(_ path: String) throws(HubError) {
        var current = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            current += "/\(part)"
            if mkdir(current, 0o755) != 0 && errno != EEXIST {
                throw HubError.file(current, "cannot create the folder: \(lastError())")
            }
        }
    }

    static func size(_ path: String) -> Int64? {
        var info = stat()
        return stat(path, &info) == 0 ? Int64(info.st_size) : nil
    }

    static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    static func entries(_ folder: String) -> [String] {
        guard let dir = opendir(folder) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Every regular file under `folder`, as paths relative to it (links followed), sorted.
    static func files(under folder: String, prefix: String = "") -> [String] {
        var found: [String] = []
        for name in entries(folder) {
            let path = "\(folder)/\(name)", relative = prefix.isEmpty ? name : "\(prefix)/\(name)"
            if isDirectory(path) { found += files(under: path, prefix: relative) } else { found.append(relative) }
        }
        return found.sorted()
    }

    static func writeAtomically(_ bytes: [UInt8], to path: String) throws(HubError) {
        let temporary = "\(path).tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw HubError.file(path, "cannot write: \(lastError())") }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        guard written == bytes.count, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw HubError.file(path, "cannot write: \(lastError())")
        }
    }
}
