import Cameras
import SplatCore
import Testing

@testable import SplatRender

struct RendererInputTests {
    let camera = RenderCamera(
        viewMatrix: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1], intrinsics: [50, 0, 32, 0, 50, 24, 0, 0, 1],
        width: 64, height: 48)

    @Test func anEmptySceneShowsTheBackground() throws {
        let renderer = SplatRenderer(options: RenderOptions(background: SIMD3(0.25, 0.5, 1)))
        let image = try renderer.render(GaussianCloud(count: 0, shDegree: 0), camera: camera)
        #expect(image.rgb.count == 64 * 48 * 3)
        #expect(image.alpha.allSatisfy { $0 == 0 })
        #expect(stride(from: 0, to: image.rgb.count, by: 3).allSatisfy { image.rgb[$0] == 0.25 && image.rgb[$0 + 2] == 1 })
    }

    @Test(arguments: [
        (0, 48, Float(50), RenderError.Kind.invalidSize),
        (64, 0, 50, .invalidSize),
        (100_000, 48, 50, .invalidSize),
        (16384, 16384 * 2, 50, .invalidSize),
        (64, 48, 0, .invalidCamera),
        (64, 48, .nan, .invalidCamera),
        (64, 48, -3, .invalidCamera),
    ] as [(Int, Int, Float, RenderError.Kind)])
    func degenerateCamerasAreRefused(width: Int, height: Int, focal: Float, kind: RenderError.Kind) {
        var bad = camera
        (bad.width, bad.height, bad.fx) = (width, height, focal)
        #expect {
            _ = try SplatRenderer().render(GaussianCloud.synthetic(count: 10, shDegree: 0), camera: bad)
        } throws: { ($0 as? RenderError)?.kind == kind }
    }

    @Test func nonFiniteViewsAndDepthLimitsAreRefused() {
        var bad = camera
        bad.translation.x = .infinity
        #expect(throws: RenderError.self) { try SplatRenderer.check(bad) }
        bad = camera
        (bad.nearPlane, bad.farPlane) = (5, 1)
        #expect(throws: RenderError.self) { try SplatRenderer.check(bad) }
    }

    /// Gaussians with NaN or huge values, zero quaternions and scales that overflow are culled, never a crash.
    @Test func hostileGaussiansAreCulled() throws {
        var cloud = GaussianCloud.synthetic(count: 64, shDegree: 2, extent: 1)
        for i in 0..<64 { cloud.positions[3 * i + 2] += 3 }
        cloud.positions[0] = .nan
        cloud.positions[4] = 1e30
        cloud.positions[8] = -1e38
        cloud.logScales[9] = 200
        cloud.logScales[12] = .nan
        for k in 0..<4 { cloud.rotations[20 + k] = 0 }
        cloud.logitOpacities[6] = .nan
        // Finite red coefficients whose sum overflows (DC, the z term and the z² term, seen along +z).
        for k in [0, 2, 6] { cloud.sh[cloud.shStride * 7 + 3 * k] = 3.4e38 }
        cloud.positions[21] = 0
        cloud.positions[22] = 0
        let image = try SplatRenderer().render(cloud, camera: camera)
        let projected = GaussianProjection.project(cloud, camera: camera, options: RenderOptions())
        #expect(!projected.splats[0].isVisible && !projected.splats[1].isVisible && !projected.splats[2].isVisible)
        #expect(projected.visibleCount > 10)
        #expect(image.alpha.allSatisfy { $0 >= 0 && $0 <= 1 })
        #expect(image.rgb.allSatisfy { $0.isFinite })
        #expect(!projected.splats[7].isVisible, "a colour that overflows is culled")
        #expect(image.rgb8().count == 64 * 48 * 3)
    }

    /// The whole renderer is its three stages composed.
    @Test func rendererComposesItsStages() throws {
        var cloud = GaussianCloud.synthetic(count: 2000, shDegree: 2, extent: 1)
        for i in 0..<2000 { cloud.positions[3 * i + 2] += 3 }
        let options = RenderOptions(background: SIMD3(0, 0, 0))
        let projected = GaussianProjection.project(cloud, camera: camera, options: options)
        let bins = try TileBinning.bin(projected, width: 64, height: 48)
        let staged = Rasterizer.rasterize(projected, bins: bins, width: 64, height: 48, options: options)
        #expect(try SplatRenderer(options: options).render(cloud, camera: camera) == staged)
        #expect(staged.alpha.contains { $0 > 0.5 })
        // Each tile's list is sorted nearest first.
        for t in 0..<bins.tileCount {
            let depths = bins.range(ofTile: t).map { projected.splats[Int(bins.splatIndices[$0])].depth }
            #expect(depths == depths.sorted())
        }
    }

    @Test func tooManyOverlapsAreRefused() {
        var cloud = GaussianCloud.synthetic(count: 100, shDegree: 0, extent: 0.1)
        for i in 0..<100 {
            cloud.positions[3 * i + 2] += 3
            for k in 0..<3 { cloud.logScales[3 * i + k] = 0 }
            cloud.logitOpacities[i] = 5
        }
        let projected = GaussianProjection.project(cloud, camera: camera, options: RenderOptions())
        #expect {
            _ = try TileBinning.bin(projected, width: 64, height: 48, maxIntersections: 50)
        } throws: { ($0 as? RenderError)?.kind == .tooManyIntersections }
    }

    /// Per-tile sorting orders by depth and keeps cloud order among equal depths, for short and long lists.
    @Test(arguments: [5, 63, 64, 1000])
    func tileListsSortByDepthThenCloudOrder(count: Int) {
        var state: UInt32 = 7
        let depths: [Float] = (0..<count).map { _ in
            state = state &* 1_664_525 &+ 1_013_904_223
            return Float(state >> 26) * 0.25 + 1  // few distinct values: many ties
        }
        var entries = depths.enumerated().map { UInt64($1.bitPattern) << 32 | UInt64($0) }
        var scratch = [UInt64](repeating: 0, count: count)
        entries.withUnsafeMutableBufferPointer { e in
            scratch.withUnsafeMutableBufferPointer { TileBinning.sortByDepth(e.baseAddress!, count: count, scratch: $0.baseAddress) }
        }
        let expected = depths.indices.sorted { (depths[$0], $0) < (depths[$1], $1) }
        #expect(entries.map { Int($0 & 0xFFFF_FFFF) } == expected)
    }

    @Test func framingFindsTheBulkOfTheScene() {
        var cloud = GaussianCloud.synthetic(count: 10_000, shDegree: 0, extent: 1)
        for i in 0..<10_000 {
            cloud.positions[3 * i] += 5
            cloud.logitOpacities[i] = 3
        }
        // A few floaters far away do not move the centre.
        for i in 0..<50 { cloud.positions[3 * i + 1] = 1000 }
        let framing = SceneFraming(cloud)
        #expect(abs(framing.center.x - 5) < 0.1 && abs(framing.center.y) < 0.1)
        #expect(framing.radius > 1 && framing.radius < 2)
    }
}
