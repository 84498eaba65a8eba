import ArgumentParser
import EngineCPU
import EngineCore

struct EngineBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "GFLOP/s of the CPU backend's matrix products and 3x3 convolution at the models' sizes.",
        discussion: helpText(
            """
            Shapes: Wan2.2's 3072-wide projections for 1024 tokens (float32, and with bfloat16 weights converted as
            they are used), its 3072→14336 feed-forward for 256 tokens, and a 128-channel 3x3 convolution on a
            120x176 map (the VAE at a quarter of 480x704). tools/bench/engine_peers.py runs PyTorch's CPU path on the
            same shapes for the ratio in BENCHMARKS.md.
            """))

    @Option(help: "Runs per measurement; the best is reported.")
    var `repeat` = 3

    @Flag(help: "Print JSON lines.")
    var json = false

    func run() throws {
        let cpu = CPUBackend.shared
        func random(_ shape: [Int], _ seed: UInt64, _ dtype: DType = .float32) throws(EngineError) -> Tensor {
            let t = try cpu.run(.randomNormal(shape: shape, seed: seed), [])[0]
            return dtype == .float32 ? t : try cpu.run(.cast(dtype), [t])[0]
        }
        let projection = 2.0 * 1024 * 3072 * 3072
        let feedForward = 2.0 * 256 * 3072 * 14336
        let convolution = 2.0 * 128 * 128 * 9 * 120 * 176
        let cases: [(String, Op, [Tensor], Double)] = try reportingErrors { () throws(EngineError) in
            let x = try random([1024, 3072], 1), w = try random([3072, 3072], 2)
            let wb = try random([3072, 3072], 4, .bfloat16)
            let xf = try random([256, 3072], 5), wf = try random([14336, 3072], 6)
            let image = try random([1, 128, 120, 176], 7), kernel = try random([128, 128, 3, 3], 8)
            return [
                ("linear f32 1024x3072 · 3072x3072", Op.linear, [x, w], projection),
                ("linear bf16 weight 1024x3072 · 3072x3072", Op.linear, [x, wb], projection),
                ("linear f32 256x3072 · 3072x14336", Op.linear, [xf, wf], feedForward),
                ("conv3x3 f32 128→128 at 120x176", Op.conv2d(stride: [1], padding: [1]), [image, kernel], convolution),
            ]
        }
        if !json { print("diorama bench engine: best of \(`repeat`), \(cpu.matrixLibrary)") }
        for (name, op, inputs, flops) in cases {
            var best = Double.infinity
            for _ in 0..<max(`repeat`, 1) {
                let start = monotonicSeconds()
                _ = try reportingErrors { () throws(EngineError) in try cpu.run(op, inputs) }
                best = min(best, monotonicSeconds() - start)
            }
            let gflops = flops / best / 1e9
            if json {
                print("{\"tool\": \"diorama\", \"op\": \(quoted(name)), \"seconds\": \(best), \"gflops\": \(gflops)}")
            } else {
                print("\(name): \(formatted(Float(gflops))) GFLOP/s (\(formatted(Float(best * 1000))) ms)")
            }
        }
    }
}
