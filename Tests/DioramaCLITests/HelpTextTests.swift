import ArgumentParser
import Foundation
import Testing

@testable import DioramaCLI

/// `--help` reads as written at any terminal width: prose paragraphs are single lines (ArgumentParser wraps them), and
/// indented lines (examples, the settings list) fit 80 columns, so nothing is re-wrapped into fragments.
struct HelpTextTests {
    static func commands(_ root: any ParsableCommand.Type) -> [any ParsableCommand.Type] {
        [root] + root.configuration.subcommands.flatMap { commands($0) }
    }

    @Test func everyDiscussionIsParagraphsAndShortIndentedLines() {
        var checked = 0
        for command in Self.commands(DioramaCommand.self) {
            let discussion = command.configuration.discussion
            guard !discussion.isEmpty else { continue }
            checked += 1
            for paragraph in discussion.components(separatedBy: "\n\n") {
                let lines = paragraph.split(separator: "\n")
                let prose = lines.prefix { !$0.hasPrefix("  ") }
                #expect(prose.count <= 1, "\(command._commandName): a prose paragraph broken across lines: \(prose.first ?? "")")
                for line in lines where line.hasPrefix("  ") {
                    #expect(line.count <= 80, "\(command._commandName): \(line.count) columns: \(line)")
                }
            }
        }
        #expect(checked >= 12)
    }

    @Test func helpTextJoinsProseAndKeepsIndentedLines() {
        #expect(helpText("one\ntwo\n\nlist:\n  a b\n  c") == "one two\n\nlist:\n  a b\n  c")
        #expect(!ImageSize(width: 704, height: 480).description.contains("ImageSize("))
    }
}

/// The binary says every error one way: `error: ...` on standard error, usage errors with exit 64.
struct ErrorStyleTests {
    static func diorama(_ arguments: [String]) throws -> (status: Int32, stderr: String) {
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let binary = repository.appendingPathComponent(".build/debug/diorama").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text)
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: ".build/debug/diorama"), "the debug binary is not built"))
    func usageAndCommandErrorsShareOneStyle() throws {
        let usage = try Self.diorama(["generate", "--prompt", "x", "--frames", "0", "-o", "/tmp/never.spz"])
        #expect(usage.status == 64)
        #expect(usage.stderr.hasPrefix("error: --frames must be 1 to 64\n"))
        #expect(usage.stderr.contains("Usage: diorama generate"))
        let unknown = try Self.diorama(["frobnicate"])
        #expect(unknown.status == 64 && unknown.stderr.hasPrefix("error: "))
        let missing = try Self.diorama(["info", "/nonexistent.spz"])
        #expect(missing.status == 74 && missing.stderr.hasPrefix("error: /nonexistent.spz"))
        #expect(!usage.stderr.contains("Error:") && !unknown.stderr.contains("Error:"))
    }
}
