import ArgumentParser
import SplatCore
import SplatIO

struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Describe a splat scene: format and version, count, SH degree, frame, bounds and statistics.")

    @Argument(help: "The scene (.ply, .spz or .splat).")
    var file: String

    @Option(help: "Format, when the extension does not say it.")
    var from: SplatFormat?

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func run() throws {
        let (cloud, description, size) = try reportingErrors { () throws(SplatFileError) in
            let source = try InputSource(path: file)
            let bar = ProgressBar("reading \(file)", enabled: !json)
            defer { bar.finish() }
            let (cloud, description) = try SplatFile.read(source, format: from, progress: bar.handler)
            return (cloud, description, source.size)
        }
        let stats = cloud.statistics()
        let frameNote = frameSource(description)
        if json {
            func range(_ r: CloudStatistics.Range) -> String { "{\"min\": \(r.min), \"max\": \(r.max), \"mean\": \(r.mean)}" }
            print("""
                {"file": \(quoted(file)), "format": "\(description.format.rawValue)", "variant": \(quoted(description.variant)), \
                "bytes": \(size), "count": \(cloud.count), "shDegree": \(cloud.shDegree), "frame": "\(cloud.frame)", \
                "frameSource": \(quoted(frameNote)), "antialiased": \(cloud.antialiased), \
                "bounds": [\(stats.bounds.map(range).joined(separator: ", "))], "opacity": \(range(stats.opacity)), \
                "scale": \(range(stats.scale)), "nearlyTransparent": \(stats.nearlyTransparent)}
                """)
            return
        }
        func f(_ x: Float) -> String { formatted(x) }
        print("file         \(file)")
        print("format       \(description.format.rawValue.uppercased()), \(description.variant)")
        print("size         \(size) bytes (\(cloud.count > 0 ? formatted(Float(size) / Float(cloud.count)) : "-") bytes per Gaussian)")
        print("Gaussians    \(cloud.count)")
        print("SH degree    \(cloud.shDegree) (\(cloud.coefficientsPerChannel) coefficients per channel)")
        print("frame        \(cloud.frame) (\(frameNote))")
        print("antialiased  \(cloud.antialiased ? "yes" : "no")")
        for (axis, r) in zip(["x", "y", "z"], stats.bounds) {
            print("bounds \(axis)     \(f(r.min)) ... \(f(r.max))  (mean \(f(r.mean)))")
        }
        print("opacity      \(f(stats.opacity.min)) ... \(f(stats.opacity.max))  (mean \(f(stats.opacity.mean)); \(stats.nearlyTransparent) below 1/255)")
        print("scale        \(f(stats.scale.min)) ... \(f(stats.scale.max))  (mean \(f(stats.scale.mean)))")
        if let spz = description.spz, !spz.extensionTypes.isEmpty {
            print("extensions   \(spz.extensionTypes.map { "0x" + String($0, radix: 16) }.joined(separator: ", "))")
        }
        if let metadata = description.metadata {
            print("metadata     \(metadata.count > 200 ? metadata.prefix(200) + "…" : metadata)")
        }
    }

    private func frameSource(_ d: SplatFileDescription) -> String {
        switch d.format {
        case .spz: d.spz?.recordedFrame != nil ? "recorded in the file" : "assumed: no coordinate-system extension"
        case .ply:
            d.plyHeader?.comments.contains { $0.hasPrefix("coordinate_frame") } == true
                ? "recorded in the file" : "assumed: the PLY convention"
        case .splat: "assumed: .splat copies PLY axes"
        }
    }
}

func quoted(_ s: String) -> String {
    var out = "\""
    for c in s.unicodeScalars {
        switch c {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        default:
            if c.value < 0x20 { out += "\\u" + String(repeating: "0", count: 4 - String(c.value, radix: 16).count) + String(c.value, radix: 16) } else { out.unicodeScalars.append(c) }
        }
    }
    return out + "\""
}

/// A number with about four significant digits, without Foundation's formatters.
func formatted(_ x: Float) -> String {
    guard x.isFinite else { return "\(x)" }
    let magnitude = abs(x)
    if magnitude != 0 && (magnitude < 1e-3 || magnitude >= 1e6) { return "\(x)" }
    let decimals = magnitude >= 1000 ? 1 : magnitude >= 1 ? 3 : 4
    var scale: Float = 1
    for _ in 0..<decimals { scale *= 10 }
    let r = (x * scale).rounded() / scale
    var s = "\(r)"
    if let dot = s.firstIndex(of: "."), s.distance(from: dot, to: s.endIndex) > decimals + 1 {
        s = String(s[..<s.index(dot, offsetBy: decimals + 1)])
    }
    return s
}
