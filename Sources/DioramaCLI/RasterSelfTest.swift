import Cameras
import EngineCPU
import EngineCUDA
import EngineCore
import FlashWorld

#if canImport(Glibc)
    import Glibc
#endif

/// The GPU rasterizer against the CPU renderer (the gsplat-exact oracle) on a FlashWorld-like scene.
enum RasterSelfTest {
    /// `count` Gaussians in the head's layout in front of camera 0: positions in a frustum 0.5 to 4 units deep,
    /// opacities 0.02-0.98, scales 0.2-6 % of the depth, random rotations and degree-2 colours.
    static func scene(count: Int, seed: UInt64) throws -> Tensor {
        let cpu = CPUBackend.shared
        let noise = try cpu.run(.randomNormal(shape: [count, 38], seed: seed), [])[0].floats()
        var values = [Float](repeating: 0, count: count * 38)
        func uniform(_ v: Float) -> Float { 0.5 + 0.5 * tanhf(v) }
        for i in 0..<count {
            let r = Array(noise[(38 * i)..<(38 * i + 38)])
            let depth = 0.5 + 3.5 * uniform(r[2])
            var g = [Float](repeating: 0, count: 38)
            g[0] = (uniform(r[0]) * 2 - 1) * 0.8 * depth
            g[1] = (uniform(r[1]) * 2 - 1) * 0.6 * depth
            g[2] = -depth
            g[3] = 0.02 + 0.96 * uniform(r[3])
            for k in 0..<3 { g[4 + k] = depth * (0.002 + 0.06 * uniform(r[4 + k])) }
            for k in 0..<4 { g[7 + k] = r[7 + k] }
            for k in 0..<27 { g[11 + k] = r[11 + k] * (k < 3 ? 0.8 : 0.2) }
            values.replaceSubrange((38 * i)..<(38 * i + 38), with: g)
        }
        return try Tensor(values, shape: [count, 38])
    }

    /// PSNR (dB) of the GPU's renders against the CPU renderer's, both in FlashWorld's [−1, 1] range, per check.
    static func run(on gpu: CUDABackend) throws -> [(name: String, psnr: Double, milliseconds: Double)] {
        var results: [(String, Double, Double)] = []
        for (count, width, height, frames) in [(60_000, 352, 256, 4), (20_000, 203, 117, 3)] {
            let intrinsics = NormalizedIntrinsics(verticalFieldOfView: 60, width: width, height: height)
            let path = CameraPath.keyframes([.forward, .orbitLeft, .orbitRight], intrinsics: intrinsics).resampled(count: frames)
            let cameras = normalizedCameras(path.cameras).cameras
            let host = try scene(count: count, seed: UInt64(count))
            let expected = try CPUViewRenderer().render(host, cameras: cameras, width: width, height: height, on: CPUBackend.shared).floats()
            let gaussians = try gpu.upload(host)
            let renderer = CUDAViewRenderer(gpu: gpu)
            _ = try renderer.render(gaussians, cameras: cameras, width: width, height: height, on: gpu)
            var actual: [Float] = []
            let milliseconds = try gpu.measure {
                actual = try gpu.readFloats(try renderer.render(gaussians, cameras: cameras, width: width, height: height, on: gpu))
            }
            var squared = 0.0
            for (a, e) in zip(actual, expected) { squared += Double((a - e) / 2) * Double((a - e) / 2) }
            let mse = squared / Double(max(expected.count, 1))
            let psnr = actual.count == expected.count ? (mse > 0 ? 10 * log10(1 / mse) : 200) : 0
            results.append(("\(frames) views of \(count) Gaussians at \(width)x\(height)", psnr, milliseconds))
        }
        return results
    }
}
