#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#else
    import Darwin
#endif

/// Where a writer sends bytes. Writers call `write` any number of times; the caller decides when the output becomes
/// visible (`AtomicFileOutput.commit`).
public protocol OutputSink: AnyObject {
    var name: String { get }
    func write(_ bytes: UnsafeRawBufferPointer) throws(SplatFileError)
}

extension OutputSink {
    public func write(_ bytes: [UInt8]) throws(SplatFileError) {
        try bytes.withUnsafeBytes { b in Result { () throws(SplatFileError) in try write(b) } }.get()
    }
}

/// Bytes collected in memory, for tests and for services that answer with the file's bytes.
public final class MemoryOutput: OutputSink {
    public let name: String
    public private(set) var bytes: [UInt8] = []

    public init(name: String = "<memory>") { self.name = name }

    public func write(_ bytes: UnsafeRawBufferPointer) throws(SplatFileError) {
        self.bytes.append(contentsOf: bytes)
    }
}

/// A file that appears at its path only once complete: bytes go to a hidden temporary file beside it, which
/// `commit()` flushes to disk and renames into place. Dropping it uncommitted (an error, a cancellation) deletes the
/// temporary file, so a failed conversion never leaves a half-written output.
public final class AtomicFileOutput: OutputSink {
    public let name: String
    private let temporaryPath: String
    private var fd: Int32
    private var buffer: [UInt8]
    private let bufferCapacity = 1 << 20
    private var committed = false
    private let durable: Bool

    /// `durable: false` skips the fsync before the rename (benchmarks, scratch files).
    public init(path: String, durable: Bool = true) throws(SplatFileError) {
        name = path
        self.durable = durable
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[..<$0]) } ?? "."
        let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
        guard !base.isEmpty else { throw SplatFileError(.io, file: path, "the output path names a directory") }
        var random = SystemRandomNumberGenerator()
        temporaryPath = "\(directory.isEmpty ? "/" : directory)/.\(base).\(getpid())-\(random.next() % 1_000_000).tmp"
        fd = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw SplatFileError(.io, file: path, systemMessage("cannot create a file beside it")) }
        buffer = []
        buffer.reserveCapacity(bufferCapacity)
    }

    deinit {
        if fd >= 0 { close(fd) }
        if !committed { unlink(temporaryPath) }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws(SplatFileError) {
        if buffer.count + bytes.count > bufferCapacity { try flush() }
        if bytes.count >= bufferCapacity {
            try writeFully(bytes)
        } else {
            buffer.append(contentsOf: bytes)
        }
    }

    private func flush() throws(SplatFileError) {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBytes { b in Result { () throws(SplatFileError) in try writeFully(b) } }.get()
        buffer.removeAll(keepingCapacity: true)
    }

    private func writeFully(_ bytes: UnsafeRawBufferPointer) throws(SplatFileError) {
        var done = 0
        while done < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw SplatFileError(.io, file: name, systemMessage("write failed")) }
            done += n
        }
    }

    /// Flushes, syncs and renames the file into place.
    public func commit() throws(SplatFileError) {
        try flush()
        guard !durable || fsync(fd) == 0 else { throw SplatFileError(.io, file: name, systemMessage("fsync failed")) }
        close(fd)
        fd = -1
        guard rename(temporaryPath, name) == 0 else {
            throw SplatFileError(.io, file: name, systemMessage("cannot rename into place"))
        }
        committed = true
    }
}
