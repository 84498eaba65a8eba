import ArgumentParser
import Cameras
import MediaIO
import SplatCore
import SplatIO
import SplatRender

#if canImport(Glibc)
    import Glibc
#endif

public struct DioramaCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "diorama",
        abstract: "Text and images to 3D Gaussian-splat scenes; a toolkit for splat files.",
        version: DioramaCommand.version,
        subcommands: [
            GenerateCommand.self, ExtendCommand.self, VideoCommand.self, ServeCommand.self, JobsCommand.self, ModelCommand.self, ConvertCommand.self, InfoCommand.self, RenderCommand.self, MeshCommand.self, CameraPathCommand.self,
            CheckpointCommand.self,
            EngineCommand.self, BenchCommand.self,
        ])
    public init() {}

    /// Shown by `diorama --version`.
    public static let version = "diorama 0.7.0 (FlashWorld on CPU and CUDA)"
}

extension SplatFormat: ExpressibleByArgument {}

extension CoordinateFrame: ExpressibleByArgument {
    public init?(argument: String) { self.init(name: argument) }
    public static var defaultCompletionKind: CompletionKind { .list(["rdf", "rub", "luf", "ruf"]) }
}

/// An error the command line reports as one message and a `sysexits.h` exit code.
protocol CommandLineReportable: Error, CustomStringConvertible {
    var exitCode: Int32 { get }
}

extension SplatFileError: CommandLineReportable {
    var exitCode: Int32 { kind == .io ? 74 : 65 }  // EX_IOERR, EX_DATAERR
}

extension CameraError: CommandLineReportable {
    var exitCode: Int32 { 65 }  // EX_DATAERR
}

extension RenderError: CommandLineReportable {
    var exitCode: Int32 { 65 }
}

extension MediaError: CommandLineReportable {
    var exitCode: Int32 {
        switch kind {
        case .encoderMissing: 69  // EX_UNAVAILABLE
        case .io: 74
        case .invalidImage: 65
        case .encoderFailed: 70  // EX_SOFTWARE
        }
    }
}

/// Turns a typed error into the message and exit code users see.
func reportingErrors<R, E: CommandLineReportable>(_ body: () throws(E) -> R) throws -> R {
    do {
        return try body()
    } catch {
        printError("error: \(error)\n")
        throw ExitCode(error.exitCode)
    }
}

/// A failure with its own message and exit code, for checks a command makes itself.
struct CommandFailure: CommandLineReportable {
    var message: String
    var exitCode: Int32
    init(_ message: String, exitCode: Int32) {
        self.message = message
        self.exitCode = exitCode
    }
    var description: String { message }
}

extension DioramaCommand {
    /// `main()` with one error style: ArgumentParser's own errors ("Error: ...") are said as the commands say theirs,
    /// `error: ...` on standard error, with the usage line after and the same exit codes (64 for usage).
    public static func runMain() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            guard code != .success, !(error is ExitCode) else { exit(withError: error) }
            var message = fullMessage(for: error)
            if message.hasPrefix("Error: ") { message = "error: " + message.dropFirst("Error: ".count) }
            printError(message + (message.hasSuffix("\n") ? "" : "\n"))
            Glibc.exit(code.rawValue)
        }
    }
}
