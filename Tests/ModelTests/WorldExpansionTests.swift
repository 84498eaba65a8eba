import Cameras
import EngineCPU
import EngineCore
import SplatCore
import SplatRender
import Testing

@testable import FlashWorld
@testable import Models

#if canImport(Glibc)
    import Glibc
#endif

/// World expansion: the scale at the shared view, the placement of a chunk, the merge, and chunks chaining along a
/// path on the tiny model.
struct WorldExpansionTests {
    let intrinsics = NormalizedIntrinsics(verticalFieldOfView: 60, width: 64, height: 64)

    /// A room-like shell of opaque splats around the origin, SH degree 2 with random view-dependent colour.
    func room(count: Int = 4000, radius: Float = 3) -> GaussianCloud {
        var cloud = GaussianCloud(count: count, shDegree: 2, frame: .rub)
        var state: UInt64 = 0x1234_5678
        func random() -> Float {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(state >> 40) / Float(1 << 24)
        }
        for i in 0..<count {
            let y = 1 - 2 * (Float(i) + 0.5) / Float(count), r = (1 - y * y).squareRoot(), phi = 2.39996 * Float(i)
            let p = radius * SIMD3(r * cos(phi), y, r * sin(phi))
            for k in 0..<3 {
                cloud.positions[3 * i + k] = p[k]
                cloud.logScales[3 * i + k] = logf(0.12 * radius / 3)
            }
            let q = SIMD4<Float>(1 + random(), random() - 0.5, random() - 0.5, random() - 0.5)
            let n = (q * q).sum().squareRoot()
            for k in 0..<4 { cloud.rotations[4 * i + k] = q[k] / n }
            cloud.logitOpacities[i] = 6
            for k in 0..<27 { cloud.sh[27 * i + k] = random() - 0.5 }
        }
        return cloud
    }

    /// A camera inside the room, turned and raised, looking at a wall.
    var inside: Camera {
        Camera.lookingAt(SIMD3(2, 0.5, -2), from: SIMD3(0.4, 0.3, 0.2), up: SIMD3(0, 1, 0), intrinsics: intrinsics)
    }

    /// The world as a chunk made at `camera` sees it, `1 / scale` times its size: the inverse of `placed`.
    func asChunk(_ world: GaussianCloud, seenFrom camera: Camera, scale: Double) -> GaussianCloud {
        let inverse = camera.orientation.normalized
        let conjugate = Quaternion(w: inverse.w, x: -inverse.x, y: -inverse.y, z: -inverse.z)
        let back = conjugate.rotationMatrix * camera.position
        let pose = Camera(orientation: conjugate, position: -back / scale, intrinsics: camera.intrinsics)
        return WorldExpansion.placed(world, at: pose, scale: 1 / scale)
    }

    @Test func aKnownScaleIsRecoveredAndThePlacementUndoesIt() throws {
        let world = room()
        let truth = 1.7
        let chunk = asChunk(world, seenFrom: inside, scale: truth)
        let renderer = SplatRenderer()
        let seen = try renderer.render(world, camera: RenderCamera(inside, width: 64, height: 64))
        let own = try renderer.render(
            chunk, camera: RenderCamera(Camera(orientation: .identity, position: .zero, intrinsics: intrinsics), width: 64, height: 64))
        let estimate = try #require(WorldExpansion.scale(world: seen, chunk: own))
        #expect(abs(estimate.scale / truth - 1) < 0.02, "estimated \(estimate.scale) for \(truth)")
        #expect(estimate.pixels > 1000 && estimate.spread < 0.02)
        // Placed back at the camera with the estimate: the world again, SH bands included.
        let back = WorldExpansion.placed(chunk, at: inside, scale: truth)
        for i in 0..<world.positions.count { #expect(abs(back.positions[i] - world.positions[i]) < 1e-3) }
        let worst = zip(back.sh, world.sh).map { abs($0 - $1) }.max()!
        #expect(worst < 1e-3, "SH after a round trip through the camera's frame: \(worst)")
        for g in 0..<world.count {
            let dot = (0..<4).map { back.rotations[4 * g + $0] * world.rotations[4 * g + $0] }.reduce(0, +)
            #expect(abs(abs(dot) - 1) < 1e-4)
        }
        // A view that sees nothing gives no estimate.
        let empty = try renderer.render(GaussianCloud(count: 0, shDegree: 0, frame: .rub), camera: RenderCamera(inside, width: 64, height: 64))
        #expect(WorldExpansion.scale(world: empty, chunk: own) == nil)
    }

    @Test func mergingKeepsTheWorldsSurfacesInTheOverlap() throws {
        let world = room()
        // The chunk repeats the world's surface (nudged by under a voxel) and adds a new one beyond it.
        var repeated = world
        for i in repeated.positions.indices { repeated.positions[i] += 0.001 }
        let beyond = WorldExpansion.placed(room(count: 500, radius: 1), at: Camera(orientation: .identity, position: SIMD3(10, 0, 0), intrinsics: intrinsics), scale: 1)
        let chunk = WorldExpansion.appended(repeated, beyond)
        let voxel = WorldExpansion.duplicateVoxel(for: world)
        #expect(voxel > 0.1 && voxel < 0.5)
        let (merged, pruned) = WorldExpansion.merged(world, chunk, voxel: voxel)
        #expect(pruned >= world.count * 9 / 10, "\(pruned) of the \(world.count) repeated Gaussians pruned")
        #expect(merged.count == world.count + chunk.count - pruned)
        #expect(merged.count <= world.count + 500 + world.count / 10, "the overlap does not pile up")
    }

    @Test func chunksChainAlongAPathOnTheTinyModel() throws {
        let pipeline = FlashWorldPipeline(model: PipelineTests.model, backend: CPUBackend.shared)
        let world = room()
        let first = CameraPath.keyframes([.forward, .orbitLeft], intrinsics: intrinsics).cameras.map { c -> Camera in
            var c = c
            c.position *= 0.5
            return c
        }
        let generation = GenerationRequest(prompt: "a room", cameras: first, frames: 2, width: 64, height: 64)
        var noise = SeededNoise(seed: 5)
        let one = try WorldExpansion.extend(world, along: first, generation: generation, pipeline: pipeline, noise: &noise)
        #expect(one.placement.pose == first[0], "the chunk starts at the path's first camera")
        #expect(one.placement.scale > 0 && one.placement.scale.isFinite && one.placement.pixels >= 16)
        #expect(one.world.count == world.count + one.chunk.count - one.placement.pruned)
        // The next path starts where the last one ended: the chunks chain.
        let last = first.last!
        let second = [last, Camera(orientation: last.orientation, position: last.position + SIMD3(0, 0, -0.3), intrinsics: intrinsics)]
        let two = try WorldExpansion.extend(one.world, along: second, generation: generation, pipeline: pipeline, noise: &noise)
        #expect(two.placement.pose == first.last!)
        #expect(two.world.count >= one.world.count)
        // A path that starts outside the world is refused.
        let outside = [Camera(orientation: .identity, position: SIMD3(0, 0, 50), intrinsics: intrinsics)]
        #expect(throws: ModelError.self) { _ = try WorldExpansion.extend(world, along: outside, generation: generation, pipeline: pipeline, noise: &noise) }
    }
}
