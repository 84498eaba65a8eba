import ArgumentParser
import SplatCore
import SplatIO

#if canImport(Glibc)
    import Glibc
#endif

public struct DioramaCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "diorama",
        abstract: "Text and images to 3D Gaussian-splat scenes; a toolkit for splat files.",
        subcommands: [ConvertCommand.self, InfoCommand.self, BenchCommand.self])
    public init() {}
}

extension SplatFormat: ExpressibleByArgument {}

extension CoordinateFrame: ExpressibleByArgument {
    public init?(argument: String) { self.init(name: argument) }
    public static var defaultCompletionKind: CompletionKind { .list(["rdf", "rub", "luf", "ruf"]) }
}

/// Turns a typed file error into the message and exit code users see.
func reportingErrors<R>(_ body: () throws(SplatFileError) -> R) throws -> R {
    do {
        return try body()
    } catch {
        printError("error: \(error)\n")
        throw ExitCode(error.kind == .io ? 74 : 65)  // EX_IOERR, EX_DATAERR
    }
}
