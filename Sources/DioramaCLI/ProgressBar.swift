#if canImport(Glibc)
    import Glibc
#endif

/// A one-line progress bar on standard error, drawn only when it is a terminal, at most ten times a second.
final class ProgressBar {
    var label: String
    /// Said after the percentage (sizes, rates).
    var detail = ""
    private let enabled: Bool
    private var lastDraw: Double = -1
    private var drawn = false

    init(_ label: String, enabled: Bool = true) {
        self.label = label
        self.enabled = enabled && isatty(2) != 0
    }

    func update(_ done: Int64, _ total: Int64) {
        guard enabled, total > 0 else { return }
        let now = monotonicSeconds()
        guard now - lastDraw >= 0.1 || done >= total else { return }
        lastDraw = now
        let fraction = min(1, Double(done) / Double(total))
        let width = 30
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled)
        let percent = Int(fraction * 100)
        printError("\r\u{1B}[K\(label) [\(bar)] \(percent)%" + (detail.isEmpty ? "" : " \(detail)"))
        drawn = true
    }

    func finish() {
        if drawn { printError("\r\u{1B}[K") }
        drawn = false
    }

    var handler: (Int64, Int64) -> Void { { [self] in update($0, $1) } }
}

func monotonicSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

/// Writes to standard error without touching the C `stderr` global (not concurrency-safe in Swift 6).
func printError(_ text: String) {
    var bytes = Array(text.utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
}
