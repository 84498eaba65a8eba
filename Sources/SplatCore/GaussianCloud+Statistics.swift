#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#else
    import Darwin
#endif

/// Summary numbers of a cloud, for `diorama info` and sanity checks.
public struct CloudStatistics: Sendable {
    public struct Range: Sendable {
        public var min: Float
        public var max: Float
        public var mean: Float
    }
    public var count: Int
    /// Per axis, over positions.
    public var bounds: [Range]
    /// Over `sigmoid(logit)`.
    public var opacity: Range
    /// Over `exp(logScale)`, all three axes together.
    public var scale: Range
    /// Gaussians whose opacity is below 1/255 (invisible to a rasteriser).
    public var nearlyTransparent: Int
}

extension GaussianCloud {
    public func statistics() -> CloudStatistics {
        func range(_ n: Int, _ value: (Int) -> Float) -> CloudStatistics.Range {
            guard n > 0 else { return .init(min: 0, max: 0, mean: 0) }
            var lo = Float.infinity, hi = -Float.infinity
            var sum: Double = 0
            for i in 0..<n {
                let v = value(i)
                lo = Swift.min(lo, v)
                hi = Swift.max(hi, v)
                sum += Double(v)
            }
            return .init(min: lo, max: hi, mean: Float(sum / Double(n)))
        }
        let bounds = (0..<3).map { axis in range(count) { positions[$0 * 3 + axis] } }
        let opacity = range(count) { self.opacity($0) }
        let scale = range(count * 3) { expf(logScales[$0]) }
        let transparent = (0..<count).reduce(0) { $0 + (self.opacity($1) < 1.0 / 255 ? 1 : 0) }
        return CloudStatistics(
            count: count, bounds: bounds, opacity: opacity, scale: scale, nearlyTransparent: transparent)
    }
}
