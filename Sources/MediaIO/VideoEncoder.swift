#if canImport(Glibc)
    import Glibc
#endif

/// Encodes RGB frames to an H.264 MP4 through the `ffmpeg` program, which reads raw frames from a pipe. The file
/// appears at its path only when `finish()` succeeds (ffmpeg writes a temporary file beside it, renamed at the end).
///
/// Owns a child process and a pipe, so it is a class confined to one task; `deinit` cancels an unfinished encode.
public final class VideoEncoder {
    public let path: String
    public let width: Int
    public let height: Int
    private let temporaryPath: String
    private let logPath: String
    private var pipe: Int32
    private var child: pid_t
    private var finished = false
    public private(set) var frameCount = 0

    /// Where ffmpeg is looked for: `$DIORAMA_FFMPEG`, else `ffmpeg` on `$PATH`.
    public static func locateFFmpeg() -> String? {
        if let override = getenv("DIORAMA_FFMPEG").map({ String(cString: $0) }), !override.isEmpty {
            return access(override, X_OK) == 0 ? override : nil
        }
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/ffmpeg"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    public static let missingMessage =
        "ffmpeg was not found on PATH (or at $DIORAMA_FFMPEG); install it with `sudo apt-get install ffmpeg` (the README's setup script does), or render PNG frames to a folder instead"

    /// Starts ffmpeg for a `width` × `height` video at `fps`. `quality` is x264's constant rate factor (lower is
    /// better; 18 is visually lossless). Odd sizes are padded by one pixel, as yuv420p needs even sides.
    public init(path: String, width: Int, height: Int, fps: Double, quality: Int = 18) throws(MediaError) {
        guard width > 0 && height > 0 else { throw MediaError(.invalidImage, "video size \(width)x\(height) must be positive") }
        guard fps > 0 && fps.isFinite else { throw MediaError(.invalidImage, "frame rate \(fps) must be positive") }
        guard let ffmpeg = Self.locateFFmpeg() else { throw MediaError(.encoderMissing, Self.missingMessage) }
        self.path = path
        self.width = width
        self.height = height
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[..<$0]) } ?? "."
        let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
        guard !base.isEmpty else { throw MediaError(.io, "\(path): the output path names a directory") }
        var random = SystemRandomNumberGenerator()
        let tag = "\(getpid())-\(random.next() % 1_000_000)"
        let folder = directory.isEmpty ? "/" : directory
        guard access(folder, W_OK) == 0 else {
            throw MediaError(.io, "\(path): cannot write into \(folder): \(Self.systemError())")
        }
        temporaryPath = "\(folder)/.\(base).\(tag).tmp"
        logPath = "\(folder)/.\(base).\(tag).log"

        // A dead reader must surface as EPIPE from write, not kill the process.
        signal(SIGPIPE, SIG_IGN)
        var fds: [Int32] = [0, 0]
        guard Glibc.pipe(&fds) == 0 else { throw MediaError(.io, "cannot create a pipe to ffmpeg: \(Self.systemError())") }
        // ffmpeg must not inherit the write end, or it would never see the end of the stream.
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        let arguments = [
            ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "\(width)x\(height)", "-r", "\(fps)", "-i", "pipe:0",
            "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", "libx264", "-preset", "medium", "-crf", "\(quality)",
            "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-f", "mp4", temporaryPath,
        ]
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[0], 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, logPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, ffmpeg, &actions, nil, &argv, environ)
        close(fds[0])
        guard status == 0 else {
            close(fds[1])
            throw MediaError(.encoderFailed, "cannot start \(ffmpeg): \(String(cString: strerror(status)))")
        }
        child = pid
        pipe = fds[1]
    }

    deinit { if !finished { cancel() } }

    /// Appends one frame: `width · height · 3` bytes of RGB, row-major.
    public func append(rgb: [UInt8]) throws(MediaError) {
        guard !finished else { throw MediaError(.encoderFailed, "\(path): the video is already finished") }
        guard rgb.count == width * height * 3 else {
            throw MediaError(.invalidImage, "a frame of \(rgb.count) bytes for a \(width)x\(height) RGB video, which needs \(width * height * 3)")
        }
        let failure: MediaError? = rgb.withUnsafeBytes { bytes in
            var done = 0
            while done < bytes.count {
                let n = write(pipe, bytes.baseAddress! + done, bytes.count - done)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { return MediaError(.encoderFailed, "ffmpeg stopped reading frames: \(encoderLog())") }
                done += n
            }
            return nil
        }
        if let failure {
            cancel()
            throw failure
        }
        frameCount += 1
    }

    /// Closes the stream, waits for ffmpeg and moves the video into place.
    public func finish() throws(MediaError) {
        guard !finished else { return }
        finished = true
        close(pipe)
        let status = waitForChild()
        defer { unlink(logPath) }
        guard status == 0 else {
            let log = encoderLog()
            unlink(temporaryPath)
            throw MediaError(.encoderFailed, "ffmpeg failed (exit status \(status)): \(log)")
        }
        guard rename(temporaryPath, path) == 0 else {
            let error = Self.systemError()
            unlink(temporaryPath)
            throw MediaError(.io, "\(path): cannot move the video into place: \(error)")
        }
    }

    /// Stops ffmpeg and removes everything it wrote.
    public func cancel() {
        guard child > 0 else { return }
        if !finished { close(pipe) }
        finished = true
        kill(child, SIGKILL)
        _ = waitForChild()
        unlink(temporaryPath)
        unlink(logPath)
    }

    private func waitForChild() -> Int32 {
        guard child > 0 else { return -1 }
        var status: Int32 = 0
        while waitpid(child, &status, 0) < 0 && errno == EINTR {}
        child = 0
        // WIFEXITED / WEXITSTATUS, spelled out because the C macros are not imported.
        return (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
    }

    private func encoderLog() -> String {
        let fd = open(logPath, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return "(no log)" }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 4096)
        let n = read(fd, &bytes, bytes.count)
        let text = n > 0 ? String(decoding: bytes[..<n], as: UTF8.self) : ""
        let trimmed = text.split(whereSeparator: \.isNewline).suffix(3).joined(separator: " | ")
        return trimmed.isEmpty ? "(ffmpeg printed nothing)" : trimmed
    }

    private static func systemError() -> String { String(cString: strerror(errno)) }
}
