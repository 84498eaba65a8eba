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

    /// Against a pinhole render from the same camera: each pixel of the pinhole view has the colour the panorama shows
    /// in its direction (PSNR over [0, 1] at least 40 dB on a scene whose colour varies smoothly over space).
    @Test func itMatchesAPinholeViewFromTheSameCamera() throws {
        var items: [(position: SIMD3<Float>, colour: SIMD3<Float>)] = []
        let count = 6000
        for i in 0..<count {
            let y = 1 - 2 * (Float(i) + 0.5) / Float(count), r = (1 - y * y).squareRoot(), phi = 2.39996 * Float(i)
            let p = 4 * SIMD3(r * cos(phi), y, r * sin(phi))
            items.append((p, SIMD3(0.5 + 0.4 * sin(0.5 * p.x), 0.5 + 0.4 * cos(0.4 * p.y), 0.5 + 0.4 * sin(0.3 * p.z + 1))))
        }
        var scene = try balls(items)
        for i in 0..<scene.count { for k in 0..<3 { scene.logScales[3 * i + k] = logf(0.2) } }
        let intrinsics = NormalizedIntrinsics(verticalFieldOfView: 60, width: 128, height: 128)
        let camera = Camera(orientation: Quaternion(axis: SIMD3(0, 1, 0), angle: 0.4), position: SIMD3(0.2, -0.1, 0.3), intrinsics: intrinsics)
        let (width, height) = (1024, 512)
        let view = try PanoramaRenderer().render(scene, from: camera, width: width, height: height)
        let pinhole = try SplatRenderer().render(scene, camera: RenderCamera(camera, width: 128, height: 128))
        let pixels = intrinsics.inPixels(width: 128, height: 128)
        var squared: Double = 0, count3 = 0
        for v in stride(from: 8, to: 120, by: 7) {
            for u in stride(from: 8, to: 120, by: 7) {
                // The pixel's ray in the camera's OpenGL axes (x right, y up, looking down -z), as longitude and latitude.
                let x = (Double(u) + 0.5 - pixels.cx) / pixels.fx, y = -(Double(v) + 0.5 - pixels.cy) / pixels.fy
                let norm = (x * x + y * y + 1).squareRoot()
                let (longitude, latitude) = (atan2(x, 1), asin(y / norm))
                let column = Int(((longitude + .pi) / (2 * .pi) * Double(width)).rounded(.down))
                let row = Int(((.pi / 2 - latitude) / .pi * Double(height)).rounded(.down))
                for c in 0..<3 {
                    let d = Double(pinhole.rgb[3 * (v * 128 + u) + c] - view.rgb[3 * (row * width + column) + c])
                    squared += d * d
                    count3 += 1
                }
            }
        }
        let psnr = 10 * log10(1 / (squared / Double(count3)))
        #expect(psnr >= 40, "PSNR \(psnr) dB over \(count3 / 3) pixels")
    }

    @Test func impossibleSizesAreRefused() throws {
        let camera = Camera(orientation: .identity, position: .zero, intrinsics: NormalizedIntrinsics(fx: 1, fy: 1, cx: 0.5, cy: 0.5))
        #expect(throws: RenderError.self) { try PanoramaRenderer().render(try balls([]), from: camera, width: 4, height: 2) }
        #expect(throws: RenderError.self) { try PanoramaRenderer().render(try balls([]), from: camera, width: 40000, height: 20000) }
    }
}
