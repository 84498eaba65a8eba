import Cameras
import EngineCPU
import EngineCUDA
import EngineCore
import FlashWorld
import SplatCore
import SplatRender

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
        // Any scene's rows (here SH degree 3, black background) as `diorama render --device cuda` draws them.
        let intrinsics = NormalizedIntrinsics(verticalFieldOfView: 50, width: 160, height: 96)
        let cameras = normalizedCameras(CameraPath.keyframes([.forward, .orbitRight], intrinsics: intrinsics).resampled(count: 2).cameras).cameras
        let head = try scene(count: 30_000, seed: 3).floats()
        var cloud = GaussianCloud(count: 30_000, shDegree: 3, frame: .rub)
        let extra = try CPUBackend.shared.run(.randomNormal(shape: [30_000 * 21], seed: 4), [])[0].floats()
        for i in 0..<30_000 {
            let g = Array(head[(38 * i)..<(38 * i + 38)])
            for k in 0..<3 {
                cloud.positions[3 * i + k] = g[k]
                cloud.logScales[3 * i + k] = logf(g[4 + k])
            }
            cloud.logitOpacities[i] = logit(g[3])
            for k in 0..<4 { cloud.rotations[4 * i + k] = g[7 + k] }
            for k in 0..<27 { cloud.sh[48 * i + k] = g[11 + k] }
            for k in 0..<21 { cloud.sh[48 * i + 27 + k] = 0.1 * extra[21 * i + k] }
        }
        let frames = try GPUFrames(gpu: gpu, cloud: cloud, size: ImageSize(width: 160, height: 96), far: 1000, shDegree: nil, background: SIMD3(0, 0, 0))
        let renderer = SplatRenderer(options: RenderOptions(background: SIMD3(0, 0, 0)))
        let planes = try gpu.readFloats(
            try gpu.rasterize(
                frames.rows, views: CUDAViewRenderer.views(cameras, width: 160, height: 96), width: 160, height: 96, background: (0, 0, 0)
            ).rgb)
        var squared = 0.0, values = 0
        for index in cameras.indices {
            let cpu = try renderer.render(cloud, camera: RenderCamera(cameras[index], width: 160, height: 96, farPlane: 1000)).rgb
            for p in 0..<(160 * 96) {
                for c in 0..<3 {
                    let d = Double(planes[(index * 3 + c) * 160 * 96 + p]) - Double(cpu[3 * p + c])
                    squared += d * d
                }
            }
            values += cpu.count
        }
        let mse = squared / Double(max(values, 1))
        results.append(("SH degree 3 scene, 2 views at 160x96 on black", mse > 0 ? 10 * log10(1 / mse) : 200, 0))
        return results
    }
}
