#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#else
    import Darwin
#endif

/// Random-access bytes to read a scene from: a file (read with `pread`, never loaded whole) or memory.
///
/// Positional reads make it safe to share across threads: the PLY reader decodes ranges on several cores at once.
public final class InputSource: @unchecked Sendable {
    public let name: String
    public let size: Int64
    private let fd: Int32
    private let memory: [UInt8]?

    /// Opens a file for reading; the error names it.
    public init(path: String) throws(SplatFileError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SplatFileError(.io, file: path, systemMessage("cannot open")) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            close(fd)
            throw SplatFileError(.io, file: path, systemMessage("cannot stat"))
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw SplatFileError(.io, file: path, "not a regular file")
        }
        self.name = path
        self.fd = fd
        self.size = Int64(st.st_size)
        self.memory = nil
    }

    public init(bytes: [UInt8], name: String = "<memory>") {
        self.name = name
        self.fd = -1
        self.size = Int64(bytes.count)
        self.memory = bytes
    }

    deinit { if fd >= 0 { close(fd) } }

    /// Reads exactly `buffer.count` bytes at `offset`, or throws `truncated` naming the offset where data ran out.
    public func read(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws(SplatFileError) {
        guard buffer.count > 0 else { return }
        guard offset >= 0, offset + Int64(buffer.count) <= size else {
            throw SplatFileError(
                .truncated, file: name, offset: min(max(offset, 0), size),
                "needs \(buffer.count) bytes at byte \(offset) but the file has \(size)")
        }
        if let memory {
            memory.withUnsafeBytes { src in
                buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[Int(offset)..<Int(offset) + buffer.count]))
            }
            return
        }
        var done = 0
        while done < buffer.count {
            let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw SplatFileError(
                    n == 0 ? .truncated : .io, file: name, offset: offset + Int64(done), systemMessage("read failed"))
            }
            done += n
        }
    }

    /// Reads `count` bytes at `offset` into a new array.
    public func bytes(at offset: Int64, count: Int) throws(SplatFileError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        try out.withUnsafeMutableBytes { b in Result { () throws(SplatFileError) in try read(at: offset, into: b) } }.get()
        return out
    }

    /// Reads the whole source (for compressed formats whose payload must be decoded in order anyway).
    public func allBytes() throws(SplatFileError) -> [UInt8] {
        if let memory { return memory }
        return try bytes(at: 0, count: Int(size))
    }
}

func systemMessage(_ what: String) -> String {
    "\(what): \(String(cString: strerror(errno)))"
}
