import Cameras
import Parallelism
import SplatCore

#if canImport(Glibc)
    import Glibc
#endif

/// A truncated signed distance field on a voxel grid, fused from depth maps (Curless and Levoy's running weighted
/// average): per voxel, the distance to the observed surface along the viewing ray, positive in front of it, clamped
/// to ±1 truncation and averaged over the views that saw it, with the colour of the surface near it.
public struct TSDFVolume: Sendable {
    public let origin: SIMD3<Float>
    public let voxelSize: Float
    public let dimensions: SIMD3<Int32>
    public let truncation: Float
    /// Signed distance over the truncation, in [−1, 1]; weight 0 where no view saw the voxel.
    public private(set) var distance: [Float]
    public private(set) var weight: [Float]
    /// RGB per voxel, averaged where the voxel lies within a truncation of the surface.
    public private(set) var colour: [Float]
    private var colourWeight: [Float]

    /// Pixels where depth changes by more than this many footprints per pixel (a surface past 63 degrees from head-on)
    /// carry no depth.
    static let grazingTangent: Float = 2

    /// Voxels at most this many; a grid is refused past it (4 x 4 + 12 bytes each).
    public static let maxVoxels = 1 << 25

    public init(origin: SIMD3<Float>, voxelSize: Float, dimensions: SIMD3<Int32>, truncation: Float) throws(RenderError) {
        let count = Int(dimensions.x) * Int(dimensions.y) * Int(dimensions.z)
        guard voxelSize > 0, voxelSize.isFinite, truncation > 0, dimensions.x >= 2, dimensions.y >= 2, dimensions.z >= 2, count <= Self.maxVoxels else {
            throw RenderError(.invalidSize, "a TSDF grid of \(dimensions.x)x\(dimensions.y)x\(dimensions.z) voxels of \(voxelSize) is not possible (2 to \(Self.maxVoxels) voxels)")
        }
        self.origin = origin
        self.voxelSize = voxelSize
        self.dimensions = dimensions
        self.truncation = truncation
        distance = [Float](repeating: 1, count: count)
        weight = [Float](repeating: 0, count: count)
        colour = [Float](repeating: 0, count: 3 * count)
        colourWeight = [Float](repeating: 0, count: count)
    }

    public var voxelCount: Int { weight.count }

    @inlinable func index(_ x: Int, _ y: Int, _ z: Int) -> Int { (z * Int(dimensions.y) + y) * Int(dimensions.x) + x }

    public func center(_ x: Int, _ y: Int, _ z: Int) -> SIMD3<Float> { origin + voxelSize * SIMD3(Float(x), Float(y), Float(z)) }

    /// Fuses one rendered view: its expected depth (camera-space, along the view axis) where coverage is at least
    /// `minimumAlpha` and the ray is within `maximumTangent` of the axis, and its colour. (Far off the axis of a wide
    /// view, front-to-back compositing by depth lets the splats beside a surface point, nearer along the axis, hide
    /// it: 90-degree faces read corners 15% short.)
    public mutating func integrate(_ image: RenderedImage, camera: RenderCamera, minimumAlpha: Float = 0.5, maximumTangent: Float = .infinity) {
        let (w, h) = (image.width, image.height)
        let depth = image.expectedDepth
        // Each pixel's weight: cos¹⁶ of the angle at which it sees its surface (from the depth's slope across its
        // neighbours). A surface seen obliquely reads short (compositing by depth lets the splats beside a point, nearer
        // along the ray, cover it), and seen nearly edge-on it would paint the free space beside it as lying behind
        // it, so the view that faces a surface most squarely decides where it is (cos⁴ left a box's faces 2.3% off).
        // Pixels at a depth edge (a silhouette, a neighbour with nothing drawn) or past `grazingTangent` carry no depth.
        var pixelWeight = [Float](repeating: 0, count: w * h)
        for v in 1..<max(1, h - 1) {
            for u in 1..<max(1, w - 1) {
                let i = v * w + u
                guard image.alpha[i] >= minimumAlpha, depth[i] > 0 else { continue }
                let neighbours = [i - 1, i + 1, i - w, i + w]
                guard neighbours.allSatisfy({ image.alpha[$0] >= minimumAlpha && abs(depth[$0] - depth[i]) <= truncation }) else { continue }
                // Depth change per unit of lateral distance: the tangent of the incidence angle.
                let footprint = depth[i] / camera.fx
                let gx = (depth[i + 1] - depth[i - 1]) / (2 * footprint), gy = (depth[i + w] - depth[i - w]) / (2 * footprint)
                let tangent2 = gx * gx + gy * gy
                guard tangent2 <= Self.grazingTangent * Self.grazingTangent else { continue }
                let cosine2 = 1 / (1 + tangent2)
                let cosine4 = cosine2 * cosine2
                pixelWeight[i] = cosine4 * cosine4 * cosine4 * cosine4
            }
        }
        let (nx, ny, nz) = (Int(dimensions.x), Int(dimensions.y), Int(dimensions.z))
        let trunc = truncation
        let grid = self
        distance.withUnsafeMutableBufferPointer { distances in
            weight.withUnsafeMutableBufferPointer { weights in
                colour.withUnsafeMutableBufferPointer { colours in
                    colourWeight.withUnsafeMutableBufferPointer { colourWeights in
                        let out = UncheckedSendable((distances, weights, colours, colourWeights))
                        parallelFor(nz) { z in
                            let (distances, weights, colours, colourWeights) = out.value
                            for y in 0..<ny {
                                for x in 0..<nx {
                                    let p = camera.toCamera(grid.center(x, y, z))
                                    guard p.z > camera.nearPlane else { continue }
                                    let (tx, ty) = (p.x / p.z, p.y / p.z)
                                    guard tx * tx + ty * ty <= maximumTangent * maximumTangent else { continue }
                                    let u = camera.fx * tx + camera.cx, v = camera.fy * ty + camera.cy
                                    guard u >= 0, v >= 0, u < Float(w), v < Float(h) else { continue }
                                    let pixel = Int(v) * w + Int(u)
                                    let observation = pixelWeight[pixel]
                                    guard observation > 0 else { continue }
                                    let sdf = depth[pixel] - p.z
                                    guard sdf > -trunc else { continue }
                                    let i = grid.index(x, y, z)
                                    let value = min(1, sdf / trunc)
                                    let weight = weights[i]
                                    distances[i] = (distances[i] * weight + value * observation) / (weight + observation)
                                    weights[i] = weight + observation
                                    if abs(sdf) < trunc {
                                        let cw = colourWeights[i]
                                        for c in 0..<3 {
                                            colours[3 * i + c] = (colours[3 * i + c] * cw + image.rgb[3 * pixel + c] * observation) / (cw + observation)
                                        }
                                        colourWeights[i] = cw + observation
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The zero level set as a watertight indexed mesh, by marching tetrahedra over the Freudenthal split of every
    /// cube (six tetrahedra around its main diagonal, the same split in every cube, so neighbours agree on their
    /// shared faces and no ambiguity table is needed). Cells with an unobserved corner are skipped, or with
    /// `closingUnobserved` the unobserved voxels and the grid's outer layer count as empty space, which closes every
    /// surface (a collider's need;
    /// a band seen from one side then gets a second, inner face). Triangles face the positive side (where the cameras
    /// were); vertices carry the interpolated colour.
    public func extractSurface(closingUnobserved: Bool = false) -> TriangleMesh {
        var field = self
        if closingUnobserved {
            for i in field.weight.indices where field.weight[i] == 0 {
                field.distance[i] = 1
                field.weight[i] = 1
            }
            // The grid's outer layer empty too, so that no surface is cut open by the grid's end.
            let (nx, ny, nz) = (Int(dimensions.x), Int(dimensions.y), Int(dimensions.z))
            for z in 0..<nz {
                for y in 0..<ny {
                    for x in 0..<nx where x == 0 || y == 0 || z == 0 || x == nx - 1 || y == ny - 1 || z == nz - 1 {
                        field.distance[index(x, y, z)] = 1
                    }
                }
            }
        }
        return field.surface()
    }

    private func surface() -> TriangleMesh {
        let (nx, ny, nz) = (Int(dimensions.x), Int(dimensions.y), Int(dimensions.z))
        var mesh = TriangleMesh()
        var vertexOfEdge: [UInt64: UInt32] = [:]
        // Corner k of a cube: bit 0 along x, bit 1 along y, bit 2 along z.
        let tetrahedra: [(Int, Int, Int, Int)] = [(0, 1, 3, 7), (0, 1, 5, 7), (0, 2, 3, 7), (0, 2, 6, 7), (0, 4, 5, 7), (0, 4, 6, 7)]
        func vertex(_ a: Int, _ b: Int) -> UInt32 {
            let key = UInt64(min(a, b)) << 32 | UInt64(max(a, b))
            if let known = vertexOfEdge[key] { return known }
            let (da, db) = (distance[a], distance[b])
            let t = da == db ? 0.5 : min(max(da / (da - db), 0), 1)
            let pa = position(of: a), pb = position(of: b)
            let p = pa + t * (pb - pa)
            mesh.positions += [p.x, p.y, p.z]
            for c in 0..<3 {
                let value = colour[3 * a + c] + t * (colour[3 * b + c] - colour[3 * a + c])
                mesh.colours.append(UInt8((min(max(value, 0), 1) * 255).rounded()))
            }
            mesh.colours.append(255)
            let made = UInt32(mesh.vertexCount - 1)
            vertexOfEdge[key] = made
            return made
        }
        func emit(_ triangle: (UInt32, UInt32, UInt32), towards outside: SIMD3<Float>) {
            let (a, b, c) = triangle
            guard a != b, b != c, a != c else { return }
            let pa = point(a), pb = point(b), pc = point(c)
            let normal = cross(pb - pa, pc - pa)
            if (normal * outside).sum() >= 0 { mesh.indices += [a, b, c] } else { mesh.indices += [a, c, b] }
        }
        for z in 0..<(nz - 1) {
            for y in 0..<(ny - 1) {
                for x in 0..<(nx - 1) {
                    let corners = (0..<8).map { k in index(x + (k & 1), y + (k >> 1 & 1), z + (k >> 2 & 1)) }
                    guard corners.allSatisfy({ weight[$0] > 0 }) else { continue }
                    let negatives = corners.filter { distance[$0] < 0 }.count
                    guard negatives > 0, negatives < 8 else { continue }
                    for (i0, i1, i2, i3) in tetrahedra {
                        let tet = [corners[i0], corners[i1], corners[i2], corners[i3]]
                        let inside = tet.filter { distance[$0] < 0 }, outside = tet.filter { distance[$0] >= 0 }
                        guard !inside.isEmpty, !outside.isEmpty else { continue }
                        // From the inside corners towards the outside ones: the way the surface faces.
                        var outsideMean = SIMD3<Float>.zero, insideMean = SIMD3<Float>.zero
                        for o in outside { outsideMean += position(of: o) }
                        for i in inside { insideMean += position(of: i) }
                        let towards: SIMD3<Float> = outsideMean / Float(outside.count) - insideMean / Float(inside.count)
                        if inside.count == 2 {
                            let q = (vertex(inside[0], outside[0]), vertex(inside[0], outside[1]), vertex(inside[1], outside[1]), vertex(inside[1], outside[0]))
                            emit((q.0, q.1, q.2), towards: towards)
                            emit((q.0, q.2, q.3), towards: towards)
                        } else {
                            let (single, others) = inside.count == 1 ? (inside[0], outside) : (outside[0], inside)
                            emit((vertex(single, others[0]), vertex(single, others[1]), vertex(single, others[2])), towards: towards)
                        }
                    }
                }
            }
        }
        return mesh

        func point(_ v: UInt32) -> SIMD3<Float> {
            let i = 3 * Int(v)
            return SIMD3(mesh.positions[i], mesh.positions[i + 1], mesh.positions[i + 2])
        }
    }

    func position(of i: Int) -> SIMD3<Float> {
        let (nx, ny) = (Int(dimensions.x), Int(dimensions.y))
        return center(i % nx, (i / nx) % ny, i / (nx * ny))
    }

    /// Every other voxel along each axis, each the mean of the observed ones of its 2x2x2 block: a coarser field of the
    /// same surface (a collider's), with the same truncation in world units.
    public func halved() throws(RenderError) -> TSDFVolume {
        let size = SIMD3<Int32>((dimensions.x + 1) / 2, (dimensions.y + 1) / 2, (dimensions.z + 1) / 2)
        var coarse = try TSDFVolume(origin: origin, voxelSize: 2 * voxelSize, dimensions: size, truncation: truncation)
        for z in 0..<Int(size.z) {
            for y in 0..<Int(size.y) {
                for x in 0..<Int(size.x) {
                    var sum: Float = 0, total: Float = 0, rgb = SIMD3<Float>.zero
                    for k in 0..<8 {
                        let (fx, fy, fz) = (2 * x + (k & 1), 2 * y + (k >> 1 & 1), 2 * z + (k >> 2 & 1))
                        guard fx < Int(dimensions.x), fy < Int(dimensions.y), fz < Int(dimensions.z) else { continue }
                        let i = index(fx, fy, fz)
                        guard weight[i] > 0 else { continue }
                        sum += distance[i] * weight[i]
                        total += weight[i]
                        rgb += SIMD3(colour[3 * i], colour[3 * i + 1], colour[3 * i + 2]) * weight[i]
                    }
                    guard total > 0 else { continue }
                    let j = coarse.index(x, y, z)
                    coarse.distance[j] = sum / total
                    coarse.weight[j] = total
                    for c in 0..<3 { coarse.colour[3 * j + c] = rgb[c] / total }
                }
            }
        }
        return coarse
    }
}

@inlinable func cross(_ a: SIMD3<Float>, _ b: SIMD3<Float>) -> SIMD3<Float> {
    SIMD3(a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x)
}
