import Cameras
import FoundationEssentials
import EngineCore
import Models
import SplatCore
import SplatRender

#if canImport(Glibc)
    import Glibc
#endif

/// Where a chunk went in the world: the pose of its path's first camera (its frame's origin) and the scale its
/// positions were multiplied by, with how the scale was found.
public struct ChunkPlacement: Sendable, Equatable {
    public var pose: Camera
    public var scale: Double
    /// Pixels the scale was estimated over (both renders confident), and their ratios' spread: the median absolute
    /// deviation over the median (0 when the chunk's geometry agrees everywhere up to one scale).
    public var pixels: Int
    public var spread: Double
    /// Gaussians of the chunk dropped because the world already had their surface.
    public var pruned: Int
}

/// World expansion (`diorama extend`): a scene grows along a camera path that starts inside it. The world is
/// rendered from the path's first camera; the next chunk is generated conditioned on that render at image index 0;
/// the chunk (made in its first camera's frame, at the path's scale as FlashWorld exports) is scaled by the ratio of
/// the world's rendered depth to the chunk's own at that shared view (a median over pixels both render confidently),
/// placed at the camera's pose, and merged without the Gaussians that duplicate surfaces the world already has.
public enum WorldExpansion {
    /// Depth ratios counted only where both renders cover the pixel at least this much.
    public static let confidentAlpha: Float = 0.9

    /// The scale taking the chunk's depth to the world's at one shared view: the median of their ratios over pixels
    /// both cover confidently; nil with fewer than 16 such pixels.
    public static func scale(world: RenderedImage, chunk: RenderedImage) -> (scale: Double, pixels: Int, spread: Double)? {
        let (w, c) = (world.expectedDepth, chunk.expectedDepth)
        var ratios: [Double] = []
        for i in w.indices where world.alpha[i] >= confidentAlpha && chunk.alpha[i] >= confidentAlpha && w[i] > 0 && c[i] > 0 {
            ratios.append(Double(w[i]) / Double(c[i]))
        }
        guard ratios.count >= 16 else { return nil }
        ratios.sort()
        let median = ratios[ratios.count / 2]
        let deviations = ratios.map { abs($0 - median) }.sorted()
        return (median, ratios.count, deviations[deviations.count / 2] / median)
    }

    /// `cloud` (in a camera's OpenGL frame) scaled by `scale` about that camera, then moved to the camera's pose:
    /// positions, scales, rotations and the SH bands all follow.
    public static func placed(_ cloud: GaussianCloud, at pose: Camera, scale: Double) -> GaussianCloud {
        let rotation = pose.orientation.rotationMatrix
        let r = rotation.rowMajor.map(Float.init)
        let t = SIMD3<Float>(pose.position)
        let q = pose.orientation.normalized
        let (qw, qx, qy, qz) = (Float(q.w), Float(q.x), Float(q.y), Float(q.z))
        let logScale = Float(log(scale))
        let s = Float(scale)
        var out = cloud
        out.frame = .rub
        out.sh = cloud.shTransformed(orthogonal: [0, 3, 6].map { Array(rotation.rowMajor[$0..<($0 + 3)]) })
        for g in 0..<cloud.count {
            let p = SIMD3(cloud.positions[3 * g], cloud.positions[3 * g + 1], cloud.positions[3 * g + 2]) * s
            for i in 0..<3 {
                out.positions[3 * g + i] = r[3 * i] * p.x + r[3 * i + 1] * p.y + r[3 * i + 2] * p.z + t[i]
                out.logScales[3 * g + i] = cloud.logScales[3 * g + i] + logScale
            }
            // q' = q_pose · q (w first).
            let (bw, bx, by, bz) = (cloud.rotations[4 * g], cloud.rotations[4 * g + 1], cloud.rotations[4 * g + 2], cloud.rotations[4 * g + 3])
            out.rotations[4 * g] = qw * bw - qx * bx - qy * by - qz * bz
            out.rotations[4 * g + 1] = qw * bx + qx * bw + qy * bz - qz * by
            out.rotations[4 * g + 2] = qw * by - qx * bz + qy * bw + qz * bx
            out.rotations[4 * g + 3] = qw * bz + qx * by - qy * bx + qz * bw
        }
        return out
    }

    /// The side of the voxels duplicates are found in: twice the median of the world's Gaussians' largest scale.
    public static func duplicateVoxel(for world: GaussianCloud) -> Float {
        guard world.count > 0 else { return 0 }
        let step = max(1, world.count / 100_000)
        var sizes: [Float] = []
        for g in stride(from: 0, to: world.count, by: step) {
            sizes.append(expf(max(world.logScales[3 * g], world.logScales[3 * g + 1], world.logScales[3 * g + 2])))
        }
        sizes.sort()
        return 2 * sizes[sizes.count / 2]
    }

    /// The world plus the chunk's Gaussians whose voxel (of side `voxel`) holds no reasonably opaque Gaussian of the
    /// world: in the overlap the world keeps its own surfaces, so repeated extension does not pile layer on layer.
    public static func merged(_ world: GaussianCloud, _ chunk: GaussianCloud, voxel: Float) -> (cloud: GaussianCloud, pruned: Int) {
        guard voxel > 0, voxel.isFinite, world.count > 0 else { return (appended(world, chunk), 0) }
        func key(_ c: GaussianCloud, _ g: Int) -> SIMD3<Int32> {
            SIMD3(
                Int32(clamping: Int((c.positions[3 * g] / voxel).rounded(.down))), Int32(clamping: Int((c.positions[3 * g + 1] / voxel).rounded(.down))),
                Int32(clamping: Int((c.positions[3 * g + 2] / voxel).rounded(.down))))
        }
        var occupied = Set<SIMD3<Int32>>()
        for g in 0..<world.count where world.opacity(g) >= 0.1 { occupied.insert(key(world, g)) }
        let kept = (0..<chunk.count).filter { !occupied.contains(key(chunk, $0)) }.map { Int32($0) }
        return (appended(world, chunk.selecting(kept)), chunk.count - kept.count)
    }

    /// Both clouds' Gaussians, the second after the first, at the higher SH degree, in the first's frame.
    static func appended(_ a: GaussianCloud, _ b: GaussianCloud) -> GaussianCloud {
        let degree = max(a.shDegree, b.shDegree)
        let first = a.withSHDegree(degree)
        let second = (b.frame == a.frame ? b : b.converted(to: a.frame)).withSHDegree(degree)
        // Columns of matching widths by construction.
        return try! GaussianCloud(
            positions: first.positions + second.positions, logScales: first.logScales + second.logScales,
            rotations: first.rotations + second.rotations, logitOpacities: first.logitOpacities + second.logitOpacities,
            sh: first.sh + second.sh, shDegree: degree, frame: first.frame, antialiased: first.antialiased)
    }

    /// One expansion: the world rendered from the path's first camera, a chunk generated on that render (image index
    /// 0) along the path, scaled, placed and merged. `generation` gives the prompt, frames, size and steps; its
    /// cameras are replaced by `path` and its image by the render.
    public static func extend(
        _ world: GaussianCloud, along path: [Camera], generation: GenerationRequest, pipeline: FlashWorldPipeline, noise: inout some NoiseSource,
        progress: FlashWorldPipeline.Progress = { _, _, _ in }, isCancelled: () -> Bool = { Task.isCancelled }
    ) throws -> (world: GaussianCloud, chunk: GaussianCloud, placement: ChunkPlacement) {
        guard let first = path.first else { throw ModelError("the path has no cameras") }
        let world = world.frame == .rub ? world : world.converted(to: .rub)
        let renderer = SplatRenderer()
        let (width, height) = (generation.width, generation.height)
        progress("world render", 0, 1)
        let view = try renderer.render(world, camera: RenderCamera(first, width: width, height: height))
        guard view.alpha.filter({ $0 >= confidentAlpha }).count * 4 >= view.alpha.count else {
            throw ModelError("the path's first camera sees little of the scene (under a quarter of its view is covered): start the path inside it")
        }
        var request = generation
        request.cameras = path
        request.imageIndex = 0
        // The render as the conditioning image: planar RGB in [−1, 1].
        var planes = [Float](repeating: 0, count: 3 * width * height)
        for pixel in 0..<(width * height) {
            for c in 0..<3 { planes[c * width * height + pixel] = 2 * min(max(view.rgb[3 * pixel + c], 0), 1) - 1 }
        }
        request.image = try Tensor(planes, shape: [3, height, width])
        let result = try pipeline.generate(request, noise: &noise, progress: progress, isCancelled: isCancelled)
        // The chunk at the shared view: its first camera sits at the origin of its frame, looking down -z.
        let origin = Camera(orientation: .identity, position: .zero, intrinsics: first.intrinsics)
        let own = try renderer.render(result.cloud, camera: RenderCamera(origin, width: width, height: height))
        guard let estimate = scale(world: view, chunk: own) else {
            throw ModelError("the chunk and the world share too few confidently rendered pixels at the path's first camera to estimate a scale")
        }
        let chunk = placed(result.cloud, at: first, scale: estimate.scale)
        let (merged, pruned) = merged(world, chunk, voxel: duplicateVoxel(for: world))
        return (merged, chunk, ChunkPlacement(pose: first, scale: estimate.scale, pixels: estimate.pixels, spread: estimate.spread, pruned: pruned))
    }
}
