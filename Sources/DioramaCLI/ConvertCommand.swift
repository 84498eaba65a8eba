import ArgumentParser
import SplatCore
import SplatIO

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a splat scene between PLY, SPZ and .splat.",
        discussion: helpText(
            """
            Formats come from the file extensions unless --from/--to name them. The output appears only when complete.
            Edits apply in this order: --min-opacity, --max-splats, --sh-degree, --frame.

            Examples:
              diorama convert scene.ply scene.spz
              diorama convert scene.ply web.splat --max-splats 1000000
              diorama convert flashworld.ply scene.spz --spz-version 4 --frame rub
            """))

    @Argument(help: "The scene to read (.ply, .spz or .splat).")
    var input: String

    @Argument(help: "The file to write (.ply, .spz or .splat).")
    var output: String

    @Option(help: "Input format, when the extension does not say it.")
    var from: SplatFormat?

    @Option(help: "Output format, when the extension does not say it.")
    var to: SplatFormat?

    @Option(help: "SH degree of the output (0-3): truncates, or pads with zeros.")
    var shDegree: Int?

    @Option(help: "Drop Gaussians whose opacity (0-1) is below this.")
    var minOpacity: Float?

    @Option(help: "Keep at most this many Gaussians, the most important (volume x opacity).")
    var maxSplats: Int?

    @Option(help: "SPZ version to write: 2, 3 (gzip, read everywhere) or 4 (NGSP + zstd).")
    var spzVersion: Int = 3

    @Option(help: "Re-express the scene in this axis frame, e.g. rdf (PLY/OpenCV), rub (OpenGL), luf (glTF).")
    var frame: CoordinateFrame?

    @Flag(name: .shortAndLong, help: "No progress bars.")
    var quiet = false

    func validate() throws {
        if let shDegree, !(0...GaussianCloud.maxSHDegree).contains(shDegree) {
            throw ValidationError("--sh-degree must be 0 to \(GaussianCloud.maxSHDegree), not \(shDegree)")
        }
        if let minOpacity, !(0...1).contains(minOpacity) {
            throw ValidationError("--min-opacity must be between 0 and 1, not \(minOpacity)")
        }
        if let maxSplats, maxSplats < 0 { throw ValidationError("--max-splats must not be negative") }
        if !(2...4).contains(spzVersion) { throw ValidationError("--spz-version must be 2, 3 or 4, not \(spzVersion)") }
        if to == nil && SplatFormat(path: output) == nil {
            throw ValidationError("cannot tell the output format from '\(output)': use .ply, .spz or .splat, or --to")
        }
    }

    func run() throws {
        var (cloud, description) = try reportingErrors { () throws(SplatFileError) in
            let source = try InputSource(path: input)
            let bar = ProgressBar("reading \(input)", enabled: !quiet)
            defer { bar.finish() }
            return try SplatFile.read(source, format: from, progress: bar.handler)
        }
        if let minOpacity { cloud = cloud.pruned(minOpacity: minOpacity) }
        if let maxSplats { cloud = cloud.keepingMostImportant(maxSplats) }
        if let shDegree { cloud = cloud.withSHDegree(shDegree) }
        if let frame { cloud = cloud.converted(to: frame) }
        // Scene metadata (a world's chunk placements) names its own frame, so it travels unchanged.
        let options = SplatWriteOptions(spz: SPZWriteOptions(version: spzVersion), metadata: description.metadata)
        try reportingErrors { () throws(SplatFileError) in
            let bar = ProgressBar("writing \(output)", enabled: !quiet)
            defer { bar.finish() }
            try SplatFile.write(cloud, toPath: output, format: to, options: options, progress: bar.handler)
        }
        if !quiet {
            print("wrote \(output): \(cloud.count) Gaussians, SH degree \(cloud.shDegree), frame \(cloud.frame)")
        }
    }
}
