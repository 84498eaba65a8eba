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

    /// 8-bit RGB, clamped to [0, 1] and rounded (NaN, which a valid scene cannot produce, becomes 0).
    public func rgb8() -> [UInt8] {
        rgb.map { $0.isNaN ? 0 : UInt8((min(max($0, 0), 1) * 255).rounded()) }
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

    /// Lanes per vector step: half a tile row.
    typealias Lanes = SIMD8<Float>
    static let laneCount = 8

    @inline(__always)
    static func rasterizeTile(
        _ tile: Int, splats: UnsafePointer<ProjectedSplat>, order: UnsafePointer<Int32>?, count: Int, tilesWide: Int,
        target: TileTarget, options: RenderOptions
    ) {
        let size = RasterizationConstants.tileSize
        let x0 = (tile % tilesWide) * size, y0 = (tile / tilesWide) * size
        let w = min(size, target.width - x0), h = min(size, target.height - y0)
        let threshold = Lanes(repeating: RasterizationConstants.alphaThreshold)
        let transmittanceFloor = Lanes(repeating: RasterizationConstants.transmittanceFloor)
        let maxAlpha = Lanes(repeating: options.maxAlpha)
        let laneOffsets = Lanes(0, 1, 2, 3, 4, 5, 6, 7)
        let plane = size * size

        // Six planes of one tile: transmittance, colour, depth, and 1 where a pixel has stopped.
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 6 * plane) { scratch in
            let base = scratch.baseAddress!
            let transmittance = base, red = base + plane, green = red + plane
            let blue = green + plane, z = blue + plane, finished = z + plane
            base.initialize(repeating: 0, count: 6 * plane)
            transmittance.update(repeating: 1, count: plane)
            // Pixels outside the image count as finished, so the tile can stop early.
            for p in 0..<plane where p % size >= w || p / size >= h { finished[p] = 1 }
            var remaining = w * h
            @inline(__always) func load(_ p: UnsafeMutablePointer<Float>) -> Lanes {
                UnsafeRawPointer(p).loadUnaligned(as: Lanes.self)
            }
            @inline(__always) func store(_ v: Lanes, _ p: UnsafeMutablePointer<Float>) {
                UnsafeMutableRawPointer(p).storeBytes(of: v, as: Lanes.self)
            }
            if let order {
                for k in 0..<count where remaining > 0 {
                    let s = splats[Int(order[k])]
                    // Only pixels inside the splat's box can reach alpha 1/255 (the box is the opacity-aware extent).
                    let rx = Float(s.radiusX), ry = Float(s.radiusY)
                    let jLow = Int(max((s.x - rx - 0.5).rounded(.up), Float(x0)))
                    let jHigh = Int(min((s.x + rx - 0.5).rounded(.down), Float(x0 + w - 1)))
                    let iLow = Int(max((s.y - ry - 0.5).rounded(.up), Float(y0)))
                    let iHigh = Int(min((s.y + ry - 0.5).rounded(.down), Float(y0 + h - 1)))
                    if jLow > jHigh || iLow > iHigh { continue }
                    let a = Lanes(repeating: s.conicA), b = Lanes(repeating: s.conicB), c = Lanes(repeating: s.conicC)
                    let opacity = Lanes(repeating: s.opacity)
                    for half in stride(from: (jLow - x0) / laneCount * laneCount, through: jHigh - x0, by: laneCount) {
                        let columns = Lanes(repeating: Float(x0 + half)) + laneOffsets
                        let inBox = (columns .>= Lanes(repeating: Float(jLow))) .& (columns .<= Lanes(repeating: Float(jHigh)))
                        let dx = Lanes(repeating: s.x) - (columns + 0.5)
                        let adx2 = 0.5 * a * dx * dx
                        for i in iLow...iHigh {
                            let p = (i - y0) * size + half
                            let done = load(finished + p)
                            let dy = Lanes(repeating: s.y - (Float(i) + 0.5))
                            let sigma = adx2 + 0.5 * c * dy * dy + b * dx * dy
                            let raw = opacity * negativeExp(sigma)
                            let alpha = raw.replacing(with: maxAlpha, where: raw .> maxAlpha)
                            var active = inBox .& (done .== 0) .& (sigma .>= 0) .& (alpha .>= threshold)
                            if !any(active) { continue }
                            let t = load(transmittance + p)
                            let next = t * (1 - alpha)
                            let stops = active .& (next .<= transmittanceFloor)
                            if any(stops) {
                                store(done.replacing(with: 1, where: stops), finished + p)
                                for lane in 0..<laneCount where stops[lane] { remaining -= 1 }
                                active = active .& .!stops
                            }
                            let visibility = Lanes(repeating: 0).replacing(with: alpha * t, where: active)
                            store(load(red + p) + s.red * visibility, red + p)
                            store(load(green + p) + s.green * visibility, green + p)
                            store(load(blue + p) + s.blue * visibility, blue + p)
                            store(load(z + p) + s.depth * visibility, z + p)
                            store(t.replacing(with: next, where: active), transmittance + p)
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

    /// `exp(−x)` for `x ≥ 0`, to about 2 ulp, on all lanes at once: `2^n · e^r` with `|r| ≤ ln2/2` and a degree-6
    /// polynomial. Arguments past 87 flush to 0, far below the 1/255 cut-off.
    @inline(__always)
    static func negativeExp(_ x: Lanes) -> Lanes {
        // (The generic pointwiseMin is not specialised across modules; a select is.)
        let v = -x.replacing(with: 87, where: x .> 87)
        let shifter = Lanes(repeating: 12_582_912)  // 1.5·2²³: adding it rounds to an integer
        let k = v * 1.442_695_040_888_963_4 + shifter
        let n = k - shifter
        let r = (v - n * 0.693_145_751_953_125) - n * 1.428_606_765_330_187_e-06
        var p = Lanes(repeating: 1.0 / 720)
        p = p * r + 1.0 / 120
        p = p * r + 1.0 / 24
        p = p * r + 1.0 / 6
        p = p * r + 0.5
        p = p * r + 1
        p = p * r + 1
        // 2^n from the integer sitting in k's low mantissa bits.
        let bits = (unsafeBitCast(k, to: SIMD8<UInt32>.self) &- 0x4B40_0000 &+ 127) &<< 23
        return p * unsafeBitCast(bits, to: Lanes.self)
    }
}
