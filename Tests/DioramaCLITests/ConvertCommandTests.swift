import SplatCore
import SplatIO
import Testing

@testable import DioramaCLI

#if canImport(Glibc)
    import Glibc
#endif

/// The commands as users run them: files in a scratch folder, errors as exit codes, no output left on failure.
@Suite struct ConvertCommandTests {
    let folder: String = {
        var template = Array("/tmp/diorama-cli-XXXXXX".utf8CString)
        return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }()

    func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    func run(_ arguments: [String]) throws {
        var command = try DioramaCommand.parseAsRoot(arguments)
        try command.run()
    }

    @Test func convertAppliesEditsInOrder() throws {
        let input = "\(folder)/in.ply"
        var cloud = GaussianCloud.synthetic(count: 200, shDegree: 3)
        cloud.logitOpacities[0] = -20
        try SplatFile.write(cloud, toPath: input)
        try run(["convert", input, "\(folder)/out.spz", "--min-opacity", "0.01", "--max-splats", "50",
                 "--sh-degree", "1", "--frame", "rub", "--spz-version", "4", "-q"])
        let (out, description) = try SplatFile.read(InputSource(path: "\(folder)/out.spz"))
        #expect(out.count == 50)
        #expect(out.shDegree == 1)
        #expect(out.frame == .rub)
        #expect(description.spz?.version == 4)
    }

    @Test func failedConversionLeavesNoFile() throws {
        let input = "\(folder)/huge.ply"
        var cloud = GaussianCloud.synthetic(count: 10, shDegree: 0)
        cloud.positions[0] = 1e6  // beyond SPZ's ±2048
        try SplatFile.write(cloud, toPath: input)
        #expect(throws: (any Error).self) { try run(["convert", input, "\(folder)/out.spz", "-q"]) }
        #expect(!exists("\(folder)/out.spz"))
        let leftovers = try listDirectory(folder).filter { $0.hasSuffix(".tmp") }
        #expect(leftovers.isEmpty)
    }

    @Test func badOptionsAreRejectedBeforeReading() {
        for arguments in [
            ["convert", "a.ply", "b.spz", "--spz-version", "5"], ["convert", "a.ply", "b.txt"],
            ["convert", "a.ply", "b.ply", "--sh-degree", "4"], ["convert", "a.ply", "b.ply", "--frame", "xyz"],
            ["convert", "a.ply", "b.ply", "--min-opacity", "2"],
        ] {
            #expect(throws: (any Error).self, "\(arguments)") { _ = try DioramaCommand.parseAsRoot(arguments) }
        }
    }

    @Test func missingInputIsAnIOError() {
        #expect(throws: (any Error).self) { try run(["convert", "\(folder)/nope.ply", "\(folder)/x.ply", "-q"]) }
        #expect(!exists("\(folder)/x.ply"))
    }

    @Test func infoReadsEveryFormat() throws {
        let cloud = GaussianCloud.synthetic(count: 20, shDegree: 2)
        for format in SplatFormat.allCases {
            let path = "\(folder)/scene.\(format.rawValue)"
            try SplatFile.write(cloud, toPath: path)
            try run(["info", path, "--json"])
        }
    }

    /// A scene's record travels through `convert` (PLY to SPZ and back) and `info` shows it.
    @Test func sceneMetadataSurvivesConversionAndIsShown() throws {
        let document = #"{"chunks":[],"frame":"RUB","cameras":[[1,0,0,0,0,0,0,0.5,0.7,0.5,0.5]]}"#
        let ply = "\(folder)/recorded.ply", spz = "\(folder)/recorded.spz", back = "\(folder)/back.ply"
        try SplatFile.write(GaussianCloud.synthetic(count: 20, shDegree: 1), toPath: ply, options: SplatWriteOptions(metadata: document))
        try run(["convert", ply, spz, "-q"])
        try run(["convert", spz, back, "-q"])
        #expect(try SplatFile.read(InputSource(path: spz)).1.metadata == document)
        #expect(try SplatFile.read(InputSource(path: back)).1.metadata == document)
        let shown = try JobsCommandTests.diorama(["info", back])
        #expect(shown.status == 0 && shown.stdout.contains("metadata     \(document)"), "\(shown.stdout)")
    }

    func listDirectory(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            names.append(name)
        }
        return names
    }
}
