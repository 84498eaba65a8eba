import Cameras
import EngineCPU
import EngineCore
import Foundation
import Testing

@testable import Models

struct GaussianHeadTests {
    /// With zero weights, the reference's bias initialisation means depth 1, opacity 0.1, a scale factor of 1 and
    /// the identity rotation (`flashworld-model.md` §8.2): each Gaussian sits one unit along its pixel's ray.
    @Test func biasInitialisationPlacesGaussiansOneUnitAlongTheirRays() throws {
        let (channels, h, w) = (4, 6, 8)
        let inverseSigmoid = { (p: Float) in logf(p / (1 - p)) }
        var point = [Float](repeating: 0, count: 38)
        point[29] = 0  // log depth 1
        point[30] = inverseSigmoid(0.1)
        for a in 0..<3 { point[31 + a] = inverseSigmoid(1.0 / 16) }
        point[34] = 1
        let lrs = GaussianHead.learningRateMultipliers
        // The stored bias is divided by lrs_mul, as the reference stores it.
        let bias = zip(point + point, lrs).map { $0 / $1 }
        let weights = ModelWeights(
            [
                "gs_head.gs_proj.weight": try Tensor([Float](repeating: 0, count: 76 * channels * 9), shape: [76, channels, 3, 3]),
                "gs_head.gs_proj.bias": try Tensor(bias, shape: [76]),
                "gs_head.lrs_mul": try Tensor(lrs, shape: [76]),
            ], source: "test")
        let camera = Camera.lookingAt(
            SIMD3(0, 0, -3), from: SIMD3(0.5, 0.2, 1), up: SIMD3(0, 1, 0),
            intrinsics: NormalizedIntrinsics(verticalFieldOfView: 60, width: w, height: h))
        let features = try Tensor([Float](repeating: 0.3, count: channels * h * w), shape: [1, channels, h, w])
        let gaussians = try GaussianHead(weights: weights)(features, cameras: [camera], on: CPUBackend.shared)
        #expect(gaussians.shape == [2 * h * w, 38])
        let values = gaussians.floats()
        let rays = RayGrid(camera: camera, width: w, height: h)
        let pixelScale = (camera.intrinsics.fx / Double(w) * camera.intrinsics.fx / Double(w) + camera.intrinsics.fy / Double(h) * camera.intrinsics.fy / Double(h)).squareRoot()
        for index in [0, 13, h * w - 1, h * w + 5] {
            let pixel = index % (h * w)
            let g = Array(values[(index * 38)..<(index * 38 + 38)])
            for k in 0..<3 {
                #expect(abs(g[k] - (rays.origins[3 * pixel + k] + rays.directions[3 * pixel + k])) < 1e-5)
            }
            #expect(abs(g[3] - 0.1) < 1e-6)
            #expect(abs(Double(g[4]) - pixelScale) < 1e-6 * max(pixelScale, 1))
            #expect(Array(g[7..<11]) == [1, 0, 0, 0])
        }
    }

    @Test func theScheduleIsFlashWorlds() {
        let sigmas = FlowMatchSchedule.sigmas
        for (s, expected) in zip(sigmas, [1.0, 0.9, 0.75, 0.5]) { #expect(abs(s - expected) < 1e-12) }
        #expect(FlowMatchSchedule.timesteps.map { $0.rounded() } == [1000, 900, 750, 500])
    }
}
