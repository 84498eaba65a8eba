import SplatCore

#if canImport(Glibc)
    import Glibc
#endif

/// Renders Gaussian clouds on the CPU with gsplat's classic semantics, in three stages that can also be run (and
/// tested) one by one: `GaussianProjection`, `TileBinning`, `Rasterizer`.
public struct SplatRenderer: Sendable {
    public var options: RenderOptions
    /// The largest image side accepted.
    public static let maxImageSide = 16384

    public init(options: RenderOptions = RenderOptions()) { self.options = options }

    /// Renders `cloud`, whose coordinates are taken as world coordinates, from `camera`.
    public func render(_ cloud: GaussianCloud, camera: RenderCamera) throws(RenderError) -> RenderedImage {
        try Self.check(camera)
        let projected = GaussianProjection.project(cloud, camera: camera, options: options)
        // Each overlap costs 12 bytes while binning (a sort entry and the final index); leave room for the rest.
        let bins = try TileBinning.bin(
            projected, width: camera.width, height: camera.height,
            maxIntersections: Self.memoryBudget / 16)
        return Rasterizer.rasterize(projected, bins: bins, width: camera.width, height: camera.height, options: options)
    }

    /// Throws when `camera` cannot be rendered: a size of zero or one too large for memory, non-finite values,
    /// focal lengths that are not positive, or depth limits out of order.
    public static func check(_ camera: RenderCamera) throws(RenderError) {
        let (w, h) = (camera.width, camera.height)
        guard w > 0 && h > 0 else { throw RenderError(.invalidSize, "image size \(w)x\(h) must be positive") }
        guard w <= maxImageSide && h <= maxImageSide else {
            throw RenderError(.invalidSize, "image size \(w)x\(h) exceeds the largest side of \(maxImageSide)")
        }
        // Colour, alpha and depth planes in float.
        let bytes = w * h * 5 * MemoryLayout<Float>.size
        guard bytes <= memoryBudget else {
            throw RenderError(.invalidSize, "a \(w)x\(h) image needs \(bytes >> 20) MiB, more than this machine can spare")
        }
        let (r0, r1, r2) = camera.rotation
        let values = [r0.x, r0.y, r0.z, r1.x, r1.y, r1.z, r2.x, r2.y, r2.z] + [camera.translation.x, camera.translation.y, camera.translation.z]
        guard values.allSatisfy(\.isFinite) else { throw RenderError(.invalidCamera, "the view matrix has a value that is not finite") }
        guard camera.fx > 0 && camera.fy > 0 && camera.fx.isFinite && camera.fy.isFinite else {
            throw RenderError(.invalidCamera, "focal lengths fx=\(camera.fx) fy=\(camera.fy) must be positive and finite")
        }
        guard camera.cx.isFinite && camera.cy.isFinite else {
            throw RenderError(.invalidCamera, "principal point cx=\(camera.cx) cy=\(camera.cy) must be finite")
        }
        guard camera.nearPlane >= 0 && camera.farPlane > camera.nearPlane else {
            throw RenderError(.invalidCamera, "depth limits near=\(camera.nearPlane) far=\(camera.farPlane) must satisfy 0 ≤ near < far")
        }
    }

    /// Half of physical memory: what one render may use for its planes and overlap lists.
    public static let memoryBudget: Int = {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), pageSize = sysconf(Int32(_SC_PAGESIZE))
        guard pages > 0 && pageSize > 0 else { return 1 << 32 }
        return pages * pageSize / 2
    }()
}
