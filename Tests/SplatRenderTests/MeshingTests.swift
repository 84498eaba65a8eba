import Cameras
import SplatCore
import SplatIO
import Testing

@testable import SplatRender

#if canImport(Glibc)
    import Glibc
#endif

/// Meshing a splat scene: the fused surface lies on the splats, is closed, faces the cameras, carries their colour; the
/// collider respects its triangle budget; the GLB is valid binary glTF.
struct MeshingTests {
    /// A shell of opaque orange splats of radius `radius` around `center`.
    func shell(radius: Float, center: SIMD3<Float> = .zero, count: Int = 6000) -> GaussianCloud {
        var cloud = GaussianCloud(count: count, shDegree: 0, frame: .rub)
        let golden = Float.pi * (3 - 5.0.squareRoot().float)
        for i in 0..<count {
            let y = 1 - 2 * (Float(i) + 0.5) / Float(count), r = (1 - y * y).squareRoot(), phi = golden * Float(i)
            let p = center + radius * SIMD3(r * cos(phi), y, r * sin(phi))
            for k in 0..<3 {
                cloud.positions[3 * i + k] = p[k]
                cloud.logScales[3 * i + k] = logf(0.06 * radius)
            }
            cloud.rotations[4 * i] = 1
            cloud.logitOpacities[i] = 6
            for (k, value) in [Float(1), 0.5, 0].enumerated() { cloud.sh[3 * i + k] = (value - 0.5) / SphericalHarmonics.c0 }
        }
        return cloud
    }

    func options() -> SceneMesher.Options {
        var o = SceneMesher.Options()
        o.resolution = 40
        o.viewSize = 96
        o.orbitViews = 10
        return o
    }

    /// Seen from inside (the first camera within it, as in a FlashWorld scene): a closed surface facing in.
    @Test func theSurfaceLiesOnTheSplatsAndIsClosed() throws {
        let scene = shell(radius: 1, center: SIMD3(0.3, 0, -0.2))
        let mesher = SceneMesher(options: options())
        #expect(mesher.viewpoint(for: scene) == .inside)
        let volume = try mesher.fuse(scene)
        let mesh = volume.extractSurface()
        #expect(mesh.triangleCount > 500)
        var radii: [Float] = []
        for v in 0..<mesh.vertexCount {
            let p = SIMD3(mesh.positions[3 * v], mesh.positions[3 * v + 1], mesh.positions[3 * v + 2]) - SIMD3(0.3, 0, -0.2)
            radii.append((p * p).sum().squareRoot())
        }
        radii.sort()
        let near = radii.filter { abs($0 - 1) < 0.12 }.count
        #expect(Double(near) > 0.95 * Double(mesh.vertexCount), "\(near) of \(mesh.vertexCount) vertices within 0.12 of the shell; radii \(radii[0]), \(radii[radii.count / 10]), \(radii[radii.count / 2]), \(radii[radii.count * 9 / 10]), \(radii.last!)")
        #expect(mesh.openEdgeCount == 0, "the surface is closed")
        // Facing the cameras inside: each triangle's normal points towards the centre.
        var inward = 0
        for t in 0..<mesh.triangleCount {
            func p(_ k: Int) -> SIMD3<Float> {
                let v = Int(mesh.indices[3 * t + k])
                return SIMD3(mesh.positions[3 * v], mesh.positions[3 * v + 1], mesh.positions[3 * v + 2])
            }
            let n = cross(p(1) - p(0), p(2) - p(0))
            if (n * (SIMD3(0.3, 0, -0.2) - p(0))).sum() > 0 { inward += 1 }
        }
        #expect(Double(inward) > 0.95 * Double(mesh.triangleCount))
        // Orange where it was seen.
        let reds = stride(from: 0, to: mesh.colours.count, by: 4).map { Int(mesh.colours[$0]) }
        let greens = stride(from: 1, to: mesh.colours.count, by: 4).map { Int(mesh.colours[$0]) }
        #expect(reds.reduce(0, +) / reds.count > 200 && abs(greens.reduce(0, +) / greens.count - 128) < 40)
    }

    /// An object away from the first camera is seen from outside; its collider is closed and within budget.
    @Test func theColliderKeepsToItsBudget() throws {
        let object = shell(radius: 1, center: SIMD3(0, 0, -4))
        let mesher = SceneMesher(options: options())
        #expect(mesher.viewpoint(for: object) == .outside)
        let volume = try mesher.fuse(object)
        let full = volume.extractSurface()
        let collider = try SceneMesher.collider(from: volume, triangles: full.triangleCount / 3)
        #expect(collider.triangleCount <= full.triangleCount / 3 && collider.triangleCount > 0)
        #expect(full.openEdgeCount == 0, "the object's surface is closed")
        #expect(collider.colours.isEmpty && collider.openEdgeCount == 0, "\(collider.openEdgeCount) open edges of \(collider.triangleCount) triangles")
    }

    @Test func anEmptySceneOrImpossibleGridIsRefused() throws {
        #expect(throws: RenderError.self) { try SceneMesher().fuse(GaussianCloud(count: 0, shDegree: 0)) }
        var o = options()
        o.resolution = 4
        #expect(throws: RenderError.self) { try SceneMesher(options: o).fuse(shell(radius: 1)) }
    }

    @Test func theGLBIsBinaryGLTF() throws {
        let mesh = TriangleMesh(positions: [0, 0, 0, 1, 0, 0, 0, 1, 0], colours: [255, 0, 0, 255, 0, 255, 0, 255, 0, 0, 255, 255], indices: [0, 1, 2])
        let glb = try GLBWriter.encode(mesh)
        func word(_ at: Int) -> UInt32 { glb[at..<at + 4].reversed().reduce(0) { $0 << 8 | UInt32($1) } }
        #expect(word(0) == 0x4654_6C67 && word(4) == 2 && Int(word(8)) == glb.count)
        let jsonLength = Int(word(12))
        #expect(word(16) == 0x4E4F_534A && jsonLength % 4 == 0)
        let json = String(decoding: glb[20..<(20 + jsonLength)], as: UTF8.self)
        #expect(json.contains(#""POSITION":0"#) && json.contains(#""COLOR_0":1"#) && json.contains(#""min":[0.0,0.0,0.0]"#))
        let binary = 20 + jsonLength
        #expect(word(binary + 4) == 0x004E_4942 && Int(word(binary)) == 36 + 12 + 12)
        #expect(throws: SplatFileError.self) { try GLBWriter.encode(TriangleMesh(positions: [0, 0, 0], indices: [0, 1, 2])) }
    }
}

extension Double {
    fileprivate var float: Float { Float(self) }
}
