import EngineCore

/// Renders Gaussians in FlashWorld's head layout from many views on the GPU (`KernelSource.raster`): projection,
/// tile keys, a stable radix sort, tile runs and front-to-back blending, all on the backend's stream. One small
/// read-back per batch of views (how many tile overlaps there are, to size the sort) is the only wait.
extension CUDABackend {
    /// One view as the kernels read it: world-to-camera rotation rows, translation, fx, fy, cx, cy, near, far, and the
    /// camera centre (24 floats with padding).
    public struct RasterView: Sendable {
        public var rotation: [Float]
        public var translation: [Float]
        public var fx, fy, cx, cy, near, far: Float
        public var center: [Float]

        public init(rotation: [Float], translation: [Float], fx: Float, fy: Float, cx: Float, cy: Float, near: Float, far: Float, center: [Float]) {
            self.rotation = rotation
            self.translation = translation
            (self.fx, self.fy, self.cx, self.cy, self.near, self.far) = (fx, fy, cx, cy, near, far)
            self.center = center
        }

        var packed: [Float] { rotation + translation + [fx, fy, cx, cy, near, far] + center + [0, 0, 0] }
    }

    /// What the rasterizer writes: colour `[views, 3, H, W]` (raw with the background, or FlashWorld's renders in
    /// [−1, 1]), and optionally coverage and accumulated depth `[views, H, W]`.
    public struct RasterOutput: Sendable {
        public var rgb: Tensor
        public var alpha: Tensor?
        public var depth: Tensor?
    }

    static let splatRecordBytes = 48
    static let rasterTile = 16

    /// Renders `gaussians` (`[n, 11 + 3·coefficients]` float32 on this device: FlashWorld's `[n, 38]` head layout,
    /// or a cloud's rows with SH degree 0-3) from every view, shading with SH up to `shDegree` (the rows' own by
    /// default). `flashWorldRange` writes `clamp(2·rgb − 1, −1, 1)` in `outputType`, as FlashWorld feeds its VAE;
    /// otherwise plain RGB in float32.
    public func rasterize(
        _ gaussians: Tensor, views: [RasterView], width: Int, height: Int, shDegree: Int? = nil, background: (Float, Float, Float) = (1, 1, 1),
        eps2d: Float = 0.3, maxAlpha: Float = 0.999, flashWorldRange: Bool = false, outputType: DType = .float32,
        withAlphaAndDepth: Bool = false
    ) throws(EngineError) -> RasterOutput {
        let rowDegrees = [14: 0, 23: 1, 38: 2, 59: 3]
        guard gaussians.device == device, gaussians.rank == 2, let rowDegree = rowDegrees[gaussians.shape[1]] else {
            throw EngineError(.shapeMismatch, "rasterize: Gaussians must be [n, 14 | 23 | 38 | 59] on \(device) (SH degree 0-3), not \(gaussians)")
        }
        let degree = min(max(shDegree ?? rowDegree, 0), rowDegree)
        guard width > 0, height > 0, width <= 16384, height <= 16384, !views.isEmpty else {
            throw EngineError(.invalidArgument, "rasterize: size \(width)x\(height) must be 1 to 16384 a side, with at least one view")
        }
        let points = try contiguous(gaussians.dtype == .float32 ? gaussians : try cast(gaussians, to: .float32))
        let n = points.shape[0]
        let tilesWide = (width + Self.rasterTile - 1) / Self.rasterTile, tilesHigh = (height + Self.rasterTile - 1) / Self.rasterTile
        let tileBits = max(1, Int.bitWidth - (tilesWide * tilesHigh - 1).leadingZeroBitCount)
        let rgb = try empty([views.count, 3, height, width], dtype: flashWorldRange ? outputType : .float32)
        let alpha = withAlphaAndDepth ? try empty([views.count, height, width], dtype: .float32) : nil
        let depth = withAlphaAndDepth ? try empty([views.count, height, width], dtype: .float32) : nil
        // Views per batch: the splat records of a batch stay under about 2 GiB.
        let perView = max(n * (Self.splatRecordBytes + 8), 1)
        let batchViews = max(1, min(views.count, (2 << 30) / perView, 1 << max(0, 32 - tileBits - 1)))
        var first = 0
        while first < views.count {
            let count = min(batchViews, views.count - first)
            try rasterizeBatch(
                points, degree: degree, views: Array(views[first..<(first + count)]), width: width, height: height, tileBits: tileBits,
                tiles: tilesWide * tilesHigh,
                background: background, eps2d: eps2d, maxAlpha: maxAlpha, mode: flashWorldRange ? 1 : 0, rgb: rgb, alpha: alpha, depth: depth,
                viewOffset: first)
            first += count
        }
        return RasterOutput(rgb: rgb, alpha: alpha, depth: depth)
    }

    private func rasterizeBatch(
        _ points: Tensor, degree: Int, views: [RasterView], width: Int, height: Int, tileBits: Int, tiles: Int, background: (Float, Float, Float),
        eps2d: Float, maxAlpha: Float, mode: Int32, rgb: Tensor, alpha: Tensor?, depth: Tensor?, viewOffset: Int
    ) throws(EngineError) {
        let n = points.shape[0], pairs = n * views.count
        let viewTable = try upload(try Tensor(views.flatMap(\.packed), shape: [views.count, 24]))
        let splats = try empty([pairs * Self.splatRecordBytes], dtype: .bool)
        let counts = try empty([pairs], dtype: .int32)
        var a = KernelArguments()
        a.pointer(points)
        a.append(Int64(n))
        a.append(Int32(points.shape[1]))
        a.append(Int32(degree))
        a.pointer(viewTable)
        a.append(Int32(views.count))
        a.append(Int32(width))
        a.append(Int32(height))
        a.append(eps2d)
        a.pointer(splats)
        a.pointer(counts)
        try launchElementwise("raster_project", count: pairs, a)
        let (offsets, totalTensor) = try exclusiveScan(counts)
        // The one wait of a batch: the sort's size.
        let total = Int(UInt32(bitPattern: Int32(truncatingIfNeeded: try download(totalTensor).int64s()[0])))
        guard total > 0 else {
            try blendTiles(
                splats: splats, values: counts, ranges: try full(shape: [2 * (views.count << tileBits)], value: 0, dtype: .int32), views: views.count,
                width: width, height: height, tileBits: tileBits, tiles: tiles, background: background, maxAlpha: maxAlpha, mode: mode, rgb: rgb,
                alpha: alpha, depth: depth, viewOffset: viewOffset)
            return
        }
        guard total < Int(Int32.max), total * 24 < memoryStats.limit - memoryStats.active else {
            throw EngineError(
                .outOfMemory,
                "rasterize: \(total) splat-tile overlaps in \(views.count) views exceed the memory budget; render fewer views at once, a smaller image, or prune the scene")
        }
        var keys = try empty([total], dtype: .int64), values = try empty([total], dtype: .int32)
        a = KernelArguments()
        a.pointer(splats)
        a.pointer(counts)
        a.pointer(offsets)
        a.append(Int64(pairs))
        a.append(Int64(n))
        a.append(Int32(width))
        a.append(Int32(height))
        a.append(Int32(tileBits))
        a.pointer(keys)
        a.pointer(values)
        try launchElementwise("raster_keys", count: pairs, a)
        (keys, values) = try radixSort(keys: keys, values: values, bits: 32 + tileBits + max(1, Int.bitWidth - (views.count - 1).leadingZeroBitCount))
        let ranges = try full(shape: [2 * (views.count << tileBits)], value: 0, dtype: .int32)
        a = KernelArguments()
        a.pointer(keys)
        a.append(Int64(total))
        a.append(Int32(tileBits))
        a.pointer(ranges)
        try launchElementwise("raster_ranges", count: total, a)
        try blendTiles(
            splats: splats, values: values, ranges: ranges, views: views.count, width: width, height: height, tileBits: tileBits, tiles: tiles,
            background: background, maxAlpha: maxAlpha, mode: mode, rgb: rgb, alpha: alpha, depth: depth, viewOffset: viewOffset)
    }

    private func blendTiles(
        splats: Tensor, values: Tensor, ranges: Tensor, views: Int, width: Int, height: Int, tileBits: Int, tiles: Int,
        background: (Float, Float, Float), maxAlpha: Float, mode: Int32, rgb: Tensor, alpha: Tensor?, depth: Tensor?, viewOffset: Int
    ) throws(EngineError) {
        var a = KernelArguments()
        a.pointer(splats)
        a.pointer(values)
        a.pointer(ranges)
        a.append(Int32(width))
        a.append(Int32(height))
        a.append(Int32(tileBits))
        a.append(background.0)
        a.append(background.1)
        a.append(background.2)
        a.append(maxAlpha)
        a.append(mode)
        a.pointer(rgb)
        a.append(rgb.dtype.kernelCode)
        a.append(alpha.map { Self.address($0) } ?? 0)
        a.append(depth.map { Self.address($0) } ?? 0)
        a.append(Int64(viewOffset))
        try launch("raster_tiles", grid: (tiles, views, 1), block: 256, a)
    }

    /// Exclusive prefix sums of 32-bit counts, and their total as a one-element tensor (on the device).
    func exclusiveScan(_ counts: Tensor) throws(EngineError) -> (Tensor, Tensor) {
        let n = counts.count
        let out = try empty([n], dtype: .int32)
        let blocks = max(1, (n + 1023) / 1024)
        let sums = try empty([blocks], dtype: .int32), total = try empty([1], dtype: .int32)
        var a = KernelArguments()
        a.pointer(counts)
        a.pointer(out)
        a.pointer(sums)
        a.append(Int64(n))
        try launch("scan_blocks", grid: (blocks, 1, 1), block: 1024, a)
        a = KernelArguments()
        a.pointer(sums)
        a.append(Int64(blocks))
        a.pointer(total)
        try launch("scan_totals", grid: (1, 1, 1), block: 1024, a)
        a = KernelArguments()
        a.pointer(out)
        a.pointer(sums)
        a.append(Int64(n))
        try launchElementwise("scan_add", count: n, a)
        return (out, total)
    }

    /// Stable LSD radix sort of 64-bit keys (the low `bits` bits) with 32-bit values, 8 bits a pass.
    func radixSort(keys: Tensor, values: Tensor, bits: Int) throws(EngineError) -> (Tensor, Tensor) {
        let n = keys.count
        let items = 256 * 16
        let blocks = (n + items - 1) / items
        var (sourceKeys, sourceValues) = (keys, values)
        var (targetKeys, targetValues) = (try empty([n], dtype: .int64), try empty([n], dtype: .int32))
        let histogram = try empty([256 * blocks], dtype: .int32)
        for shift in stride(from: 0, to: bits, by: 8) {
            var a = KernelArguments()
            a.pointer(sourceKeys)
            a.append(Int64(n))
            a.append(Int32(shift))
            a.pointer(histogram)
            a.append(Int64(blocks))
            try launch("radix_histogram", grid: (blocks, 1, 1), block: 256, a)
            let (offsets, _) = try exclusiveScan(histogram)
            a = KernelArguments()
            a.pointer(sourceKeys)
            a.pointer(sourceValues)
            a.append(Int64(n))
            a.append(Int32(shift))
            a.pointer(offsets)
            a.append(Int64(blocks))
            a.pointer(targetKeys)
            a.pointer(targetValues)
            try launch("radix_scatter", grid: (blocks, 1, 1), block: 256, a)
            swap(&sourceKeys, &targetKeys)
            swap(&sourceValues, &targetValues)
        }
        return (sourceKeys, sourceValues)
    }
}
