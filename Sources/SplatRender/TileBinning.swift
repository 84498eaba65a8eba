import Parallelism

/// Stage 2 of the renderer: which splats touch which 16x16 tile, each tile's list front to back. It is the same list
/// gsplat gets by sorting `tile | depth` keys (one image, so no image bits), ties kept in cloud order.
public struct TileBins: Sendable {
    public let tilesWide: Int
    public let tilesHigh: Int
    /// `tileCount + 1` entries: tile `t`'s splats are `splatIndices[offsets[t] ..< offsets[t + 1]]`.
    public var offsets: [Int32]
    /// Indices into `ProjectedSplats.splats`, grouped by tile (row-major), nearest first within a tile.
    public var splatIndices: [Int32]

    public var tileCount: Int { tilesWide * tilesHigh }
    public var intersectionCount: Int { splatIndices.count }

    public func range(ofTile t: Int) -> Range<Int> { Int(offsets[t])..<Int(offsets[t + 1]) }
}

public enum TileBinning {
    /// The tiles a splat's bounding box touches, as gsplat computes them: `[min, max)` in tile units, clamped to the
    /// image.
    @inline(__always)
    static func tileRect(_ s: ProjectedSplat, tilesWide: Int, tilesHigh: Int) -> (x0: Int, y0: Int, x1: Int, y1: Int) {
        let size = Float(RasterizationConstants.tileSize)
        let (mx, my) = (s.x / size, s.y / size)
        let (rx, ry) = (Float(s.radiusX) / size, Float(s.radiusY) / size)
        @inline(__always) func clamped(_ v: Float, _ limit: Int) -> Int { Int(min(max(v, 0), Float(limit))) }
        return (
            clamped((mx - rx).rounded(.down), tilesWide), clamped((my - ry).rounded(.down), tilesHigh),
            clamped((mx + rx).rounded(.up), tilesWide), clamped((my + ry).rounded(.up), tilesHigh)
        )
    }

    /// Bins the visible splats of `projected` into the tiles of a `width` × `height` image. Fails when the overlaps
    /// would not fit in `maxIntersections`.
    public static func bin(
        _ projected: ProjectedSplats, width: Int, height: Int, maxIntersections: Int = Int(Int32.max)
    ) throws(RenderError) -> TileBins {
        let size = RasterizationConstants.tileSize
        let tilesWide = (width + size - 1) / size, tilesHigh = (height + size - 1) / size
        let tileCount = tilesWide * tilesHigh
        let order = depthOrder(projected)

        var counts = [Int](repeating: 0, count: tileCount + 1)
        var total = 0
        projected.splats.withUnsafeBufferPointer { splats in
            for g in order {
                let r = tileRect(splats[Int(g)], tilesWide: tilesWide, tilesHigh: tilesHigh)
                guard r.x1 > r.x0 && r.y1 > r.y0 else { continue }
                total += (r.x1 - r.x0) * (r.y1 - r.y0)
                for ty in r.y0..<r.y1 {
                    for tx in r.x0..<r.x1 { counts[ty * tilesWide + tx] += 1 }
                }
            }
        }
        guard total <= min(maxIntersections, Int(Int32.max)) else {
            throw RenderError(
                .tooManyIntersections,
                "\(total) splat-tile overlaps exceed the limit of \(min(maxIntersections, Int(Int32.max))); render a smaller image or prune the scene")
        }
        var offsets = [Int32](repeating: 0, count: tileCount + 1)
        var cursor = [Int](repeating: 0, count: tileCount)
        var running = 0
        for t in 0..<tileCount {
            offsets[t] = Int32(running)
            cursor[t] = running
            running += counts[t]
        }
        offsets[tileCount] = Int32(running)

        // Scattering in depth order keeps every tile's list sorted nearest first.
        var indices = [Int32](repeating: 0, count: total)
        projected.splats.withUnsafeBufferPointer { splats in
            indices.withUnsafeMutableBufferPointer { out in
                for g in order {
                    let r = tileRect(splats[Int(g)], tilesWide: tilesWide, tilesHigh: tilesHigh)
                    guard r.x1 > r.x0 && r.y1 > r.y0 else { continue }
                    for ty in r.y0..<r.y1 {
                        for tx in r.x0..<r.x1 {
                            let t = ty * tilesWide + tx
                            out[cursor[t]] = g
                            cursor[t] += 1
                        }
                    }
                }
            }
        }
        return TileBins(tilesWide: tilesWide, tilesHigh: tilesHigh, offsets: offsets, splatIndices: indices)
    }

    /// The visible splats' indices sorted by depth, stable: an LSD radix sort on the float bits, which order like the
    /// values because depths are positive.
    static func depthOrder(_ projected: ProjectedSplats) -> [Int32] {
        let n = projected.visibleCount
        var keys = [UInt32](repeating: 0, count: n)
        var values = [Int32](repeating: 0, count: n)
        var k = 0
        for (i, s) in projected.splats.enumerated() where s.isVisible {
            keys[k] = s.depth.bitPattern
            values[k] = Int32(i)
            k += 1
        }
        radixSort(keys: &keys, values: &values)
        return values
    }

    /// Sorts `values` by `keys`, stably, eight bits a pass; passes where every key shares the byte are skipped.
    static func radixSort(keys: inout [UInt32], values: inout [Int32]) {
        let n = keys.count
        guard n > 1 else { return }
        var keysOut = [UInt32](repeating: 0, count: n)
        var valuesOut = [Int32](repeating: 0, count: n)
        for shift in stride(from: 0, to: 32, by: 8) {
            var histogram = [Int](repeating: 0, count: 256)
            for key in keys { histogram[Int((key >> UInt32(shift)) & 0xFF)] += 1 }
            if histogram.contains(n) { continue }
            var sum = 0
            for b in 0..<256 {
                let c = histogram[b]
                histogram[b] = sum
                sum += c
            }
            keys.withUnsafeBufferPointer { kIn in
                values.withUnsafeBufferPointer { vIn in
                    keysOut.withUnsafeMutableBufferPointer { kOut in
                        valuesOut.withUnsafeMutableBufferPointer { vOut in
                            for i in 0..<n {
                                let b = Int((kIn[i] >> UInt32(shift)) & 0xFF)
                                let at = histogram[b]
                                kOut[at] = kIn[i]
                                vOut[at] = vIn[i]
                                histogram[b] = at + 1
                            }
                        }
                    }
                }
            }
            swap(&keys, &keysOut)
            swap(&values, &valuesOut)
        }
    }
}
