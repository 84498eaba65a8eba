import ArgumentParser
import Cameras
import FoundationEssentials
import SplatIO

#if canImport(Glibc)
    import Glibc
#endif

/// `WIDTHxHEIGHT`, e.g. `704x480`.
struct ImageSize: ExpressibleByArgument, Equatable {
    var width: Int
    var height: Int

    static let flashWorld = ImageSize(width: 704, height: 480)

    init(width: Int, height: Int) {
        self.width = width
        self.height = height
    }

    init?(argument: String) {
        let parts = argument.lowercased().split(separator: "x")
        guard parts.count == 2, let w = Int(parts[0]), let h = Int(parts[1]), w > 0, h > 0 else { return nil }
        self.init(width: w, height: h)
    }

    var description: String { "\(width)x\(height)" }
    /// How `--help` shows a default: `704x480`, not the struct.
    var defaultValueDescription: String { description }
}

/// A background colour: `white`, `black`, `gray`, `#rrggbb`, or `r,g,b` with components in 0...1.
struct BackgroundColor: ExpressibleByArgument {
    var rgb: SIMD3<Float>

    init(_ rgb: SIMD3<Float>) { self.rgb = rgb }

    init?(argument: String) {
        switch argument.lowercased() {
        case "white": rgb = SIMD3(1, 1, 1)
        case "black": rgb = SIMD3(0, 0, 0)
        case "gray", "grey": rgb = SIMD3(0.5, 0.5, 0.5)
        case let hex where hex.hasPrefix("#") && hex.count == 7:
            guard let v = UInt32(hex.dropFirst(), radix: 16) else { return nil }
            rgb = SIMD3(Float((v >> 16) & 0xFF), Float((v >> 8) & 0xFF), Float(v & 0xFF)) / 255
        default:
            let parts = argument.split(separator: ",").compactMap { Float($0) }
            guard parts.count == 3, parts.allSatisfy({ (0...1).contains($0) }) else { return nil }
            rgb = SIMD3(parts[0], parts[1], parts[2])
        }
    }
}

/// What a `--camera-path` value names: a parametric path, a sequence of the reference UI's template steps
/// (`forward,orbit-left,...`), or a JSON file.
enum CameraPathSource: Equatable {
    case orbit
    case spiral
    case dolly
    case steps([PathStep])
    case file(String)

    static let help = """
        orbit, spiral, dolly, template steps joined by commas (forward, backward, left, right, orbit-left, \
        orbit-right), or a camera JSON file (the FlashWorld request or a list of cameras).
        """

    init(_ value: String) {
        switch value {
        case "orbit": self = .orbit
        case "spiral": self = .spiral
        case "dolly": self = .dolly
        default:
            let steps = value.split(separator: ",").map { PathStep(rawValue: String($0)) }
            if !steps.isEmpty, steps.allSatisfy({ $0 != nil }) {
                self = .steps(steps.compactMap { $0 })
            } else {
                self = .file(value)
            }
        }
    }
}

/// Reads a camera JSON file.
func readCameraFile(_ path: String) throws(CameraError) -> CameraPathDocument {
    // A mistyped path name reads better as that than as a missing file.
    if access(path, F_OK) != 0 && !path.contains("/") && !path.lowercased().hasSuffix(".json") {
        throw CameraError(
            .invalidValue, field: "--camera-path",
            "'\(path)' is neither a file nor a path name; use orbit, spiral, dolly, a file, or steps joined by commas from: \(PathStep.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    let source: InputSource
    do {
        source = try InputSource(path: path)
    } catch {
        throw CameraError(.invalidFile, field: path, "cannot be read: \(error.message)")
    }
    guard source.size <= 64 << 20 else {
        throw CameraError(.invalidFile, field: path, "is \(source.size) bytes; camera files are at most 64 MiB")
    }
    let bytes: [UInt8]
    do {
        bytes = try source.allBytes()
    } catch {
        throw CameraError(.invalidFile, field: path, "cannot be read: \(error.message)")
    }
    do {
        return try CameraPathDocument(json: bytes)
    } catch {
        var named = error
        named.field = [path, error.field].compactMap { $0 }.joined(separator: ": ")
        throw named
    }
}

/// Writes `bytes` to `path` atomically, or to standard output for `-`.
func writeOutput(_ bytes: [UInt8], to path: String) throws(SplatFileError) {
    if path == "-" {
        let failed = bytes.withUnsafeBytes { b -> Bool in
            var done = 0
            while done < b.count {
                let n = write(1, b.baseAddress! + done, b.count - done)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { return true }
                done += n
            }
            return false
        }
        if failed { throw SplatFileError(.io, file: "<stdout>", "write failed") }
        return
    }
    let output = try AtomicFileOutput(path: path)
    try output.write(bytes)
    try output.commit()
}
