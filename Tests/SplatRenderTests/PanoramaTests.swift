import Cameras
import SplatCore
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@testable import SplatRender

/// Equirectangular panoramas from six cube faces: each direction lands where longitude and latitude say, across face
/// seams, with the distance along the ray; the camera's orientation turns the panorama.
struct PanoramaTests {
    /// Opaque balls of one colour each around the origin, in a y-up (RUB) world.
    func balls(_ items: [(position: SIMD3<Float>, colour: SIMD3<Float>)]) throws -> GaussianCloud {
        var cloud = GaussianCloud(count: items.count, shDegree: 0, frame: .rub)
        for (i, item) in items.enumerated() {
            for k in 0..<3 {
                cloud.positions[3 * i + k] = item.position[k]
                cloud.logScales[3 * i + k] = logf(0.35)
                cloud.sh[3 * i + k] = (item.colour[k] - 0.5) / SphericalHarmonics.c0
            }
            cloud.rotations[4 * i] = 1
            cloud.logitOpacities[i] = 8
        }
        return cloud
    }

    let red = SIMD3<Float>(1, 0, 0), green = SIMD3<Float>(0, 1, 0), blue = SIMD3<Float>(0, 0, 1), yellow = SIMD3<Float>(1, 1, 0)

    func colour(_ p: Panorama, column: Int, row: Int) -> SIMD3<Float> {
        let i = 3 * (row * p.width + column)
        return SIMD3(p.rgb[i], p.rgb[i + 1], p.rgb[i + 2])
    }

    func close(_ a: SIMD3<Float>, _ b: SIMD3<Float>, _ tolerance: Float = 0.15) -> Bool {
        let d = a - b
        return max(abs(d.x), abs(d.y), abs(d.z)) < tolerance
    }

    @Test func directionsLandAtTheirLongitudeAndLatitude() throws {
        let scene = try balls([
            (SIMD3(0, 0, -3), red),  // ahead: longitude 0
            (SIMD3(3, 0, 0), green),  // to the right: +90 degrees
            (SIMD3(0, 3, 0), blue),  // above
            (SIMD3(-2.1213, 0, -2.1213), yellow),  // -45 degrees: on the seam of the front and left faces
        ])
        let camera = Camera(orientation: .identity, position: .zero, intrinsics: NormalizedIntrinsics(fx: 1, fy: 1, cx: 0.5, cy: 0.5))
        let (width, height) = (256, 128)
        let view = try PanoramaRenderer().render(scene, from: camera, width: width, height: height)
        #expect(view.width == width && view.height == height && view.rgb.count == 3 * width * height)
        #expect(close(colour(view, column: 128, row: 64), red), "\(colour(view, column: 128, row: 64))")
        #expect(close(colour(view, column: 192, row: 64), green), "\(colour(view, column: 192, row: 64))")
        #expect(close(colour(view, column: 96, row: 64), yellow), "\(colour(view, column: 96, row: 64))")
        #expect(close(colour(view, column: 40, row: 1), blue) && close(colour(view, column: 200, row: 1), blue), "the top row is up in every direction")
        #expect(close(colour(view, column: 0, row: 64), SIMD3<Float>(1, 1, 1), 0.01), "behind: the white background")
        // Distances along the rays: each ball's surface, a little nearer than its centre.
        for (column, name) in [(128, "ahead"), (192, "right"), (96, "on the seam")] {
            let range = view.range[64 * width + column]
            #expect(range > 2.3 && range < 3.05, "\(name): \(range)")
        }
        #expect(view.range[64 * width] == 0, "nothing behind")
        // Bottom rows see nothing.
        #expect(close(colour(view, column: 128, row: 127), SIMD3<Float>(1, 1, 1), 0.01))
    }

    @Test func theCamerasOrientationTurnsThePanorama() throws {
        let scene = try balls([(SIMD3(0, 0, -3), red), (SIMD3(3, 0, 0), green)])
        // Looking down +x: the green ball at the centre, the red one 90 degrees to the left.
        let turned = Camera(
            orientation: Quaternion(axis: SIMD3(0, 1, 0), angle: -.pi / 2), position: .zero,
            intrinsics: NormalizedIntrinsics(fx: 1, fy: 1, cx: 0.5, cy: 0.5))
        let view = try PanoramaRenderer().render(scene, from: turned, width: 128, height: 64)
        #expect(close(colour(view, column: 64, row: 32), green), "\(colour(view, column: 64, row: 32))")
        #expect(close(colour(view, column: 32, row: 32), red), "\(colour(view, column: 32, row: 32))")
    }

    @Test func impossibleSizesAreRefused() throws {
        let camera = Camera(orientation: .identity, position: .zero, intrinsics: NormalizedIntrinsics(fx: 1, fy: 1, cx: 0.5, cy: 0.5))
        #expect(throws: RenderError.self) { try PanoramaRenderer().render(try balls([]), from: camera, width: 4, height: 2) }
        #expect(throws: RenderError.self) { try PanoramaRenderer().render(try balls([]), from: camera, width: 40000, height: 20000) }
    }
}
