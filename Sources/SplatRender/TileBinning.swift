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
    ///
    /// Splats are counted and scattered into their tiles in cloud order, then each tile's list is sorted by depth
    /// on its own: reading the splats in order and sorting lists that fit in cache beats one global sort.
    public static func bin(
        _ projected: ProjectedSplats, width: Int, height: Int, maxIntersections: Int = Int(Int32.max)
    ) throws(RenderError) -> TileBins {
        let size = RasterizationConstants.tileSize
        let tilesWide = (width + size - 1) / size, tilesHigh = (height + size - 1) / size
        let tileCount = tilesWide * tilesHigh
        let n = projected.count
        guard n <= Int(Int32.max) else {
            throw RenderError(.tooManyIntersections, "\(n) Gaussians exceed the renderer's limit of \(Int32.max)")
        }
        // Per-part tile counters cost parts × tiles words: fewer parts for huge images.
        let maxParts = max(1, (1 << 24) / max(tileCount, 1))
        let parts = ranges(of: n, parts: min(activeProcessorCount * 4, maxParts), minimum: 16384)
        let p = parts.count

        // Overlaps per (part, tile).
        var counts = [Int](repeating: 0, count: p * tileCount)
        projected.splats.withUnsafeBufferPointer { splats in
            counts.withUnsafeMutableBufferPointer { countsOut in
                let shared = UncheckedSendable((splats.baseAddress!, countsOut.baseAddress!))
                parallelFor(p) { part in
                    let (splats, counts) = shared.value
                    let row = counts + part * tileCount
                    for g in parts[part] where splats[g].isVisible {
                        let r = tileRect(splats[g], tilesWide: tilesWide, tilesHigh: tilesHigh)
                        guard r.x1 > r.x0 && r.y1 > r.y0 else { continue }
                        for ty in r.y0..<r.y1 {
                            for tx in r.x0..<r.x1 { row[ty * tilesWide + tx] += 1 }
                        }
                    }
                }
            }
        }
        // Offsets: tile by tile, and within a tile part by part, so the scatter keeps cloud order.
        var offsets = [Int32](repeating: 0, count: tileCount + 1)
        var cursors = [Int](repeating: 0, count: p * tileCount)
        var total = 0
        for t in 0..<tileCount {
            guard total <= Int(Int32.max) else { break }
            offsets[t] = Int32(total)
            for part in 0..<p {
                cursors[part * tileCount + t] = total
                total += counts[part * tileCount + t]
            }
        }
        let limit = min(maxIntersections, Int(Int32.max))
        guard total <= limit else {
            throw RenderError(
                .tooManyIntersections,
                "\(total) splat-tile overlaps exceed the limit of \(limit); render a smaller image or prune the scene")
        }
        offsets[tileCount] = Int32(total)

        // Entries sort as depth then cloud index: the order gsplat's stable key sort gives.
        var entries = [UInt64](repeating: 0, count: total)
        projected.splats.withUnsafeBufferPointer { splats in
            entries.withUnsafeMutableBufferPointer { entriesOut in
                cursors.withUnsafeMutableBufferPointer { cursorsIn in
                    let shared = UncheckedSendable((splats.baseAddress!, entriesOut.baseAddress, cursorsIn.baseAddress!))
                    parallelFor(p) { part in
                        let (splats, entries, cursors) = shared.value
                        guard let entries else { return }
                        let cursor = cursors + part * tileCount
                        for g in parts[part] where splats[g].isVisible {
                            let s = splats[g]
                            let r = tileRect(s, tilesWide: tilesWide, tilesHigh: tilesHigh)
                            guard r.x1 > r.x0 && r.y1 > r.y0 else { continue }
                            let entry = UInt64(s.depth.bitPattern) << 32 | UInt64(g)
                            for ty in r.y0..<r.y1 {
                                for tx in r.x0..<r.x1 {
                                    let t = ty * tilesWide + tx
                                    entries[cursor[t]] = entry
                                    cursor[t] += 1
                                }
                            }
                        }
                    }
                }
            }
        }

        var indices = [Int32](repeating: 0, count: total)
        entries.withUnsafeMutableBufferPointer { entriesBuffer in
            indices.withUnsafeMutableBufferPointer { indicesOut in
                let shared = UncheckedSendable((entriesBuffer.baseAddress, indicesOut.baseAddress))
                let longest = (0..<tileCount).map { Int(offsets[$0 + 1] - offsets[$0]) }.max() ?? 0
                let tileGroups = ranges(of: tileCount, parts: activeProcessorCount * 4)
                parallelFor(tileGroups.count) { group in
                    let (entries, indices) = shared.value
                    guard let entries, let indices else { return }
                    var scratch = [UInt64](repeating: 0, count: longest)
                    scratch.withUnsafeMutableBufferPointer { scratch in
                        for t in tileGroups[group] {
                            let range = Int(offsets[t])..<Int(offsets[t + 1])
                            sortByDepth(entries + range.lowerBound, count: range.count, scratch: scratch.baseAddress)
                            for k in range { indices[k] = Int32(truncatingIfNeeded: entries[k]) }
                        }
                    }
                }
            }
        }
        return TileBins(tilesWide: tilesWide, tilesHigh: tilesHigh, offsets: offsets, splatIndices: indices)
    }

    /// Sorts one tile's entries by their depth bits (the high half), stably, so equal depths stay in cloud order:
    /// insertion sort for short lists, else LSD radix over the bytes that differ.
    static func sortByDepth(_ entries: UnsafeMutablePointer<UInt64>, count n: Int, scratch: UnsafeMutablePointer<UInt64>?) {
        if n < 64 {
            for i in 1..<max(n, 1) {
                let e = entries[i]
                var j = i - 1
                while j >= 0 && entries[j] > e {
                    entries[j + 1] = entries[j]
                    j -= 1
                }
                entries[j + 1] = e
            }
            return
        }
        guard let scratch else { return }
        var source = entries, target = scratch
        var histogram = [Int](repeating: 0, count: 256)
        for shift in stride(from: 32, to: 64, by: 8) {
            for b in 0..<256 { histogram[b] = 0 }
            for i in 0..<n { histogram[Int((source[i] >> UInt64(shift)) & 0xFF)] += 1 }
            if histogram.contains(n) { continue }
            var sum = 0
            for b in 0..<256 {
                let c = histogram[b]
                histogram[b] = sum
                sum += c
            }
            for i in 0..<n {
                let b = Int((source[i] >> UInt64(shift)) & 0xFF)
                target[histogram[b]] = source[i]
                histogram[b] += 1
            }
            swap(&source, &target)
        }
        if source != entries { entries.update(from: source, count: n) }
    }
}
