import ArgumentParser
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
