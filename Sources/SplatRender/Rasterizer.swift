import Parallelism

#if canImport(Glibc)
    import Glibc
#endif

/// A rendered view: colour, alpha and depth planes, row-major from the top-left pixel.
public struct RenderedImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    /// RGB, three floats per pixel, background composited.
    public var rgb: [Float]
    /// Coverage, `1 − T`.
    public var alpha: [Float]
    /// Camera-space depth accumulated with the same weights as colour, background 0 (gsplat's "RGB+D").
    public var depth: [Float]

    /// Depth divided by coverage (gsplat's "ED"); 0 where nothing was drawn.
    public var expectedDepth: [Float] { zip(depth, alpha).map { $1 > 0 ? $0 / $1 : 0 } }

    /// 8-bit RGB, clamped to [0, 1] and rounded.
    public func rgb8() -> [UInt8] {
        rgb.map { UInt8((min(max($0, 0), 1) * 255).rounded()) }
    }
}

/// Stage 3 of the renderer: front-to-back alpha compositing per pixel, tile by tile, with gsplat 1.5.2/1.5.3's
/// rules (`flashworld-model.md` §9): pixel centres at +0.5, `alpha = min(maxAlpha, o·exp(−½ dᵀΣ⁻¹d))`, skipped below
/// 1/255, and a pixel stops before the splat that would take its transmittance to 1e-4 or below.
public enum Rasterizer {
    public static func rasterize(
        _ projected: ProjectedSplats, bins: TileBins, width: Int, height: Int, options: RenderOptions
    ) -> RenderedImage {
        let pixels = width * height
        var rgb = [Float](repeating: 0, count: pixels * 3)
        var alpha = [Float](repeating: 0, count: pixels)
        var depth = [Float](repeating: 0, count: pixels)
        projected.splats.withUnsafeBufferPointer { splats in
            bins.splatIndices.withUnsafeBufferPointer { indices in
                rgb.withUnsafeMutableBufferPointer { rgbOut in
                    alpha.withUnsafeMutableBufferPointer { alphaOut in
                        depth.withUnsafeMutableBufferPointer { depthOut in
                            let shared = UncheckedSendable(
                                (splats.baseAddress!, indices.baseAddress, rgbOut.baseAddress!, alphaOut.baseAddress!,
                                 depthOut.baseAddress!))
                            parallelFor(bins.tileCount) { tile in
                                let (splats, indices, rgb, alpha, depth) = shared.value
                                let target = TileTarget(rgb: rgb, alpha: alpha, depth: depth, width: width, height: height)
                                rasterizeTile(
                                    tile, splats: splats, order: indices.map { $0 + Int(bins.offsets[tile]) },
                                    count: Int(bins.offsets[tile + 1] - bins.offsets[tile]), tilesWide: bins.tilesWide,
                                    target: target, options: options)
                            }
                        }
                    }
                }
            }
        }
        return RenderedImage(width: width, height: height, rgb: rgb, alpha: alpha, depth: depth)
    }

    struct TileTarget {
        let rgb: UnsafeMutablePointer<Float>
        let alpha: UnsafeMutablePointer<Float>
        let depth: UnsafeMutablePointer<Float>
        let width: Int
        let height: Int
    }

    @inline(__always)
    static func rasterizeTile(
        _ tile: Int, splats: UnsafePointer<ProjectedSplat>, order: UnsafePointer<Int32>?, count: Int, tilesWide: Int,
        target: TileTarget, options: RenderOptions
    ) {
        let size = RasterizationConstants.tileSize
        let x0 = (tile % tilesWide) * size, y0 = (tile / tilesWide) * size
        let w = min(size, target.width - x0), h = min(size, target.height - y0)
        let threshold = RasterizationConstants.alphaThreshold
        let transmittanceFloor = RasterizationConstants.transmittanceFloor
        let maxAlpha = options.maxAlpha

        withUnsafeTemporaryAllocation(of: Float.self, capacity: 6 * size * size) { scratch in
            let base = scratch.baseAddress!
            let transmittance = base, red = base + size * size, green = red + size * size
            let blue = green + size * size, z = blue + size * size, finished = z + size * size
            for p in 0..<(size * size) {
                transmittance[p] = 1
                red[p] = 0
                green[p] = 0
                blue[p] = 0
                z[p] = 0
                finished[p] = 0
            }
            var remaining = w * h
            if let order {
                for k in 0..<count where remaining > 0 {
                    let s = splats[Int(order[k])]
                    // Only pixels inside the splat's box can reach alpha 1/255 (the box is the opacity-aware extent).
                    let rx = Float(s.radiusX), ry = Float(s.radiusY)
                    let jLow = max(x0, Int(max((s.x - rx - 0.5).rounded(.up), Float(x0))))
                    let jHigh = min(x0 + w - 1, Int(min((s.x + rx - 0.5).rounded(.down), Float(x0 + w - 1))))
                    let iLow = max(y0, Int(max((s.y - ry - 0.5).rounded(.up), Float(y0))))
                    let iHigh = min(y0 + h - 1, Int(min((s.y + ry - 0.5).rounded(.down), Float(y0 + h - 1))))
                    if jLow > jHigh || iLow > iHigh { continue }
                    for i in iLow...iHigh {
                        let dy = s.y - (Float(i) + 0.5)
                        let row = (i - y0) * size - x0
                        for j in jLow...jHigh {
                            let p = row + j
                            if finished[p] != 0 { continue }
                            let dx = s.x - (Float(j) + 0.5)
                            let sigma = 0.5 * (s.conicA * dx * dx + s.conicC * dy * dy) + s.conicB * dx * dy
                            let a = min(maxAlpha, s.opacity * expf(-sigma))
                            if sigma < 0 || a < threshold { continue }
                            let t = transmittance[p]
                            let next = t * (1 - a)
                            if next <= transmittanceFloor {
                                finished[p] = 1
                                remaining -= 1
                                continue
                            }
                            let visibility = a * t
                            red[p] += s.red * visibility
                            green[p] += s.green * visibility
                            blue[p] += s.blue * visibility
                            z[p] += s.depth * visibility
                            transmittance[p] = next
                        }
                    }
                }
            }
            let background = options.background
            for i in 0..<h {
                for j in 0..<w {
                    let p = i * size + j
                    let pixel = (y0 + i) * target.width + x0 + j
                    let t = transmittance[p]
                    target.rgb[3 * pixel] = red[p] + t * background.x
                    target.rgb[3 * pixel + 1] = green[p] + t * background.y
                    target.rgb[3 * pixel + 2] = blue[p] + t * background.z
                    target.alpha[pixel] = 1 - t
                    target.depth[pixel] = z[p]
                }
            }
        }
    }
}
