/// Help as a person would write it, whatever the terminal's width: ArgumentParser wraps a discussion at the terminal's
/// columns but keeps its line breaks, so hand-wrapped prose comes out in fragments. Prose paragraphs (blank-line
/// separated) become single lines for it to wrap; indented lines (examples, tables) are kept as written.
func helpText(_ raw: String) -> String {
    raw.components(separatedBy: "\n\n").map { paragraph -> String in
        let lines = paragraph.split(separator: "\n", omittingEmptySubsequences: false)
        // A paragraph that starts as prose and then lists indented lines keeps the list's lines.
        guard let firstIndented = lines.firstIndex(where: { $0.hasPrefix("  ") }) else {
            return lines.map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
        }
        let prose = lines[..<firstIndented].map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
        let kept = lines[firstIndented...].joined(separator: "\n")
        return prose.isEmpty ? kept : prose + "\n" + kept
    }.joined(separator: "\n\n")
}
