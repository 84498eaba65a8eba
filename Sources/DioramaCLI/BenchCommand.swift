import ArgumentParser
import SplatCore
import SplatIO

#if canImport(Glibc)
    import Glibc
#endif

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure Diorama's speed (results belong in BENCHMARKS.md).",
        subcommands: [SplatIOBench.self, RenderBench.self, EngineBench.self, ModelBench.self, GenerateBench.self, VideoBench.self, StoreBench.self])
}

struct SplatIOBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "splat-io",
        abstract: "PLY read/write and SPZ encode/decode on a synthetic scene (FlashWorld size by default).",
        discussion: helpText(
            """
            Writes bench.ply, bench.spz (v3) and bench-v4.spz into --dir and leaves them there, so that peers
            (tools/bench/splat_io_peers.py runs gaussforge and gsply) can be timed on the same files. Each
            figure is the best of --repeat runs. Writes skip the fsync that `convert` does, as the peers do.
            """))

    @Option(help: "Gaussians in the synthetic scene.")
    var count = 4_055_040

    @Option(help: "SH degree of the synthetic scene.")
    var shDegree = 2

    @Option(help: "Folder for the files.")
    var dir = "bench-data"

    @Option(help: "Runs per measurement; the best is reported.")
    var `repeat` = 3

    @Flag(help: "Print JSON lines instead of a table.")
    var json = false

    func validate() throws {
        guard count > 0, (0...3).contains(shDegree), `repeat` > 0 else {
            throw ValidationError("--count and --repeat must be positive and --sh-degree 0 to 3")
        }
    }

    func run() throws {
        mkdir(dir, 0o755)
        let cloud = GaussianCloud.synthetic(count: count, shDegree: shDegree)
        let ply = "\(dir)/bench.ply", spz = "\(dir)/bench.spz", spz4 = "\(dir)/bench-v4.spz"
        var rows: [(String, Double, Int64)] = []
        func measure(_ name: String, _ path: String, _ body: () throws(SplatFileError) -> Void) throws {
            var best = Double.infinity
            for _ in 0..<`repeat` {
                let start = monotonicSeconds()
                try reportingErrors(body)
                best = min(best, monotonicSeconds() - start)
            }
            let size = (try? InputSource(path: path).size) ?? 0
            rows.append((name, best, size))
        }
        let v4 = SplatWriteOptions(spz: .init(version: 4))
        try measure("ply.write", ply) { () throws(SplatFileError) in try SplatFile.write(cloud, toPath: ply, durable: false) }
        try measure("ply.read", ply) { () throws(SplatFileError) in _ = try SplatFile.read(InputSource(path: ply)) }
        try measure("spz.encode.v3", spz) { () throws(SplatFileError) in try SplatFile.write(cloud, toPath: spz, durable: false) }
        try measure("spz.decode.v3", spz) { () throws(SplatFileError) in _ = try SplatFile.read(InputSource(path: spz)) }
        try measure("spz.encode.v4", spz4) { () throws(SplatFileError) in
            try SplatFile.write(cloud, toPath: spz4, options: v4, durable: false)
        }
        try measure("spz.decode.v4", spz4) { () throws(SplatFileError) in _ = try SplatFile.read(InputSource(path: spz4)) }
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let peakMiB = Double(usage.ru_maxrss) / 1024
        if json {
            for (name, seconds, size) in rows {
                print("{\"tool\": \"diorama\", \"op\": \"\(name)\", \"seconds\": \(seconds), \"bytes\": \(size), \"count\": \(count)}")
            }
        } else {
            print("diorama bench splat-io: \(count) Gaussians, SH degree \(shDegree), best of \(`repeat`), \(dir)/")
            for (name, seconds, size) in rows {
                let padded = name + String(repeating: " ", count: max(0, 16 - name.count))
                print("\(padded) \(formatted(Float(seconds))) s   file \(size) bytes")
            }
            print("peak resident memory \(formatted(Float(peakMiB))) MiB (the scene itself: \(cloud.byteCount / 1_048_576) MiB)")
        }
    }
}
