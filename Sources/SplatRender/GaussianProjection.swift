import Parallelism
import SplatCore

#if canImport(Glibc)
    import Glibc
#endif

/// One Gaussian as the rasterizer sees it. A record rather than columns because the rasterizer gathers whole splats
/// in depth order, so one cache line per splat beats ten.
public struct ProjectedSplat: Sendable, Equatable {
    /// The projected centre in pixels (x right, y down).
    public var x: Float
    public var y: Float
    /// The inverse 2D covariance (after the low-pass), upper triangle: `[xx, xy, yy]`.
    public var conicA: Float
    public var conicB: Float
    public var conicC: Float
    public var opacity: Float
    /// View-dependent colour, `max(SH + 0.5, 0)`.
    public var red: Float
    public var green: Float
    public var blue: Float
    /// Camera-space z.
    public var depth: Float
    /// Half-extent of the bounding box in pixels, per axis; 0 when culled.
    public var radiusX: Int32
    public var radiusY: Int32

    public var isVisible: Bool { radiusX > 0 || radiusY > 0 }

    static let culled = ProjectedSplat(
        x: 0, y: 0, conicA: 0, conicB: 0, conicC: 0, opacity: 0, red: 0, green: 0, blue: 0, depth: 0, radiusX: 0,
        radiusY: 0)
}

/// Stage 1 of the renderer: every Gaussian projected into one camera, as gsplat's packed "classic" projection does it
/// (`flashworld-model.md` §9): EWA splatting with the frustum guard band, the `eps2d` low-pass, near/far culling and
/// the opacity-aware extent, then the SH colour seen from the camera centre.
public struct ProjectedSplats: Sendable {
    /// One record per input Gaussian, in cloud order; culled ones have zero radii.
    public var splats: [ProjectedSplat]
    public var visibleCount: Int

    public var count: Int { splats.count }
}

public enum GaussianProjection {
    /// Projects `cloud` (in world coordinates) into `camera`.
    public static func project(_ cloud: GaussianCloud, camera: RenderCamera, options: RenderOptions) -> ProjectedSplats {
        let n = cloud.count
        let degree = min(max(options.shDegree ?? cloud.shDegree, 0), cloud.shDegree)
        var splats = [ProjectedSplat](repeating: .culled, count: n)
        let parts = ranges(of: n, parts: activeProcessorCount * 8, minimum: 8192)
        var visible = [Int](repeating: 0, count: parts.count)
        cloud.withReadOnlyColumns { columns in
            splats.withUnsafeMutableBufferPointer { out in
                visible.withUnsafeMutableBufferPointer { visibleOut in
                    let shared = UncheckedSendable((columns, out.baseAddress!, visibleOut.baseAddress!))
                    parallelFor(parts.count) { part in
                        let (columns, out, visibleOut) = shared.value
                        var seen = 0
                        for i in parts[part] {
                            let splat = projectOne(i, columns, camera: camera, options: options, degree: degree)
                            out[i] = splat
                            if splat.isVisible { seen += 1 }
                        }
                        visibleOut[part] = seen
                    }
                }
            }
        }
        return ProjectedSplats(splats: splats, visibleCount: visible.reduce(0, +))
    }

    @inline(__always)
    static func projectOne(
        _ i: Int, _ columns: ReadOnlyCloudColumns, camera: RenderCamera, options: RenderOptions, degree: Int
    ) -> ProjectedSplat {
        let p = columns.positions + 3 * i
        let world = SIMD3(p[0], p[1], p[2])
        let mean = camera.toCamera(world)
        // Written so that NaN fails the test too.
        guard mean.z >= camera.nearPlane && mean.z <= camera.farPlane else { return .culled }
        let opacity = sigmoid(columns.logitOpacities[i])
        guard opacity >= RasterizationConstants.alphaThreshold else { return .culled }

        // World covariance Σ = (R S)(R S)ᵀ from the normalised quaternion and the scales.
        let r = columns.rotations + 4 * i
        let q = normalizedQuaternion(SIMD4(r[0], r[1], r[2], r[3]))
        let (w, x, y, z) = (q[0], q[1], q[2], q[3])
        let s = columns.logScales + 3 * i
        let (sx, sy, sz) = (expf(s[0]), expf(s[1]), expf(s[2]))
        // Columns of R, each scaled: M = R·diag(s).
        let m0 = sx * SIMD3(1 - 2 * (y * y + z * z), 2 * (x * y + w * z), 2 * (x * z - w * y))
        let m1 = sy * SIMD3(2 * (x * y - w * z), 1 - 2 * (x * x + z * z), 2 * (y * z + w * x))
        let m2 = sz * SIMD3(2 * (x * z + w * y), 2 * (y * z - w * x), 1 - 2 * (x * x + y * y))
        // Camera-space M: W·M, so Σc = (W M)(W M)ᵀ.
        let (v0, v1, v2) = camera.rotation
        @inline(__always) func toView(_ c: SIMD3<Float>) -> SIMD3<Float> {
            SIMD3((v0 * c).sum(), (v1 * c).sum(), (v2 * c).sum())
        }
        let c0 = toView(m0), c1 = toView(m1), c2 = toView(m2)
        // Rows of W M are (c0[k], c1[k], c2[k]); Σc[j][k] is the dot of rows j and k.
        let row0 = SIMD3(c0.x, c1.x, c2.x), row1 = SIMD3(c0.y, c1.y, c2.y), row2 = SIMD3(c0.z, c1.z, c2.z)
        let s00 = (row0 * row0).sum(), s01 = (row0 * row1).sum(), s02 = (row0 * row2).sum()
        let s11 = (row1 * row1).sum(), s12 = (row1 * row2).sum(), s22 = (row2 * row2).sum()

        // EWA Jacobian, evaluated at the point clamped into the guard band around the frustum.
        let (fx, fy) = (camera.fx, camera.fy)
        let width = Float(camera.width), height = Float(camera.height)
        let guardX = RasterizationConstants.frustumGuardBand * 0.5 * width / fx
        let guardY = RasterizationConstants.frustumGuardBand * 0.5 * height / fy
        let limXPos = (width - camera.cx) / fx + guardX, limXNeg = camera.cx / fx + guardX
        let limYPos = (height - camera.cy) / fy + guardY, limYNeg = camera.cy / fy + guardY
        let rz = 1 / mean.z, rz2 = rz * rz
        let tx = mean.z * min(limXPos, max(-limXNeg, mean.x * rz))
        let ty = mean.z * min(limYPos, max(-limYNeg, mean.y * rz))
        // J = [[fx/z, 0, -fx tx/z²], [0, fy/z, -fy ty/z²]]
        let j00 = fx * rz, j02 = -fx * tx * rz2, j11 = fy * rz, j12 = -fy * ty * rz2
        // Σ2 = J Σc Jᵀ
        let a0 = j00 * s00 + j02 * s02, a1 = j00 * s01 + j02 * s12, a2 = j00 * s02 + j02 * s22
        let b1 = j11 * s11 + j12 * s12, b2 = j11 * s12 + j12 * s22
        var cov00 = a0 * j00 + a2 * j02
        let cov01 = a1 * j11 + a2 * j12
        var cov11 = b1 * j11 + b2 * j12
        cov00 += options.eps2d
        cov11 += options.eps2d
        let det = cov00 * cov11 - cov01 * cov01
        guard det > 0 else { return .culled }
        let inverseDet = 1 / det

        let meanX = fx * mean.x * rz + camera.cx
        let meanY = fy * mean.y * rz + camera.cy
        // Opacity-aware extent: beyond it alpha < 1/255, so the tighter box changes no pixel.
        let extent = min(RasterizationConstants.maxExtent, (2 * logf(opacity / RasterizationConstants.alphaThreshold)).squareRoot())
        // Capped so that a splat grazing the near plane cannot overflow Int32; images are far smaller.
        let radiusX = min((extent * cov00.squareRoot()).rounded(.up), 1_073_741_824)
        let radiusY = min((extent * cov11.squareRoot()).rounded(.up), 1_073_741_824)
        guard meanX.isFinite && meanY.isFinite && radiusX.isFinite && radiusY.isFinite else { return .culled }
        guard radiusX > 0 || radiusY > 0 else { return .culled }
        guard meanX + radiusX > 0 && meanX - radiusX < width && meanY + radiusY > 0 && meanY - radiusY < height else {
            return .culled
        }

        let direction = world - camera.center
        let norm = (direction * direction).sum().squareRoot()
        let unit = norm > 0 ? direction / norm : SIMD3<Float>(0, 0, 1)
        let sh = columns.sh + columns.shStride * i
        let color = SphericalHarmonics.color(degree: degree, direction: unit, sh: sh) + 0.5
        // Finite but enormous coefficients can overflow; such a splat has no colour to draw.
        guard color.x.isFinite && color.y.isFinite && color.z.isFinite else { return .culled }
        return ProjectedSplat(
            x: meanX, y: meanY, conicA: cov11 * inverseDet, conicB: -cov01 * inverseDet, conicC: cov00 * inverseDet,
            opacity: opacity, red: max(color.x, 0), green: max(color.y, 0), blue: max(color.z, 0), depth: mean.z,
            radiusX: Int32(radiusX), radiusY: Int32(radiusY))
    }
}
