import Cameras
import SplatCore

#if canImport(Glibc)
    import Glibc
#endif

/// Where a scene is and how big, robust to the floaters generated scenes have: the per-axis median of the
/// reasonably opaque Gaussians, and the distance that holds 90% of them.
public struct SceneFraming: Sendable, Equatable {
    public var center: SIMD3<Double>
    public var radius: Double

    public init(center: SIMD3<Double>, radius: Double) {
        self.center = center
        self.radius = radius
    }

    /// Frames `cloud` from a sample of at most 200,000 Gaussians. An empty cloud frames the unit sphere.
    public init(_ cloud: GaussianCloud) {
        let n = cloud.count
        guard n > 0 else {
            self.init(center: .zero, radius: 1)
            return
        }
        let picked = Self.sample(cloud)
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        let p = cloud.positions
        let center = SIMD3(
            median(picked.map { Double(p[3 * $0]) }), median(picked.map { Double(p[3 * $0 + 1]) }),
            median(picked.map { Double(p[3 * $0 + 2]) }))
        let distances = picked.map { i -> Double in
            let d = SIMD3(Double(p[3 * i]), Double(p[3 * i + 1]), Double(p[3 * i + 2])) - center
            return (d * d).sum().squareRoot()
        }.sorted()
        let radius = distances[min(distances.count - 1, distances.count * 9 / 10)]
        self.init(center: center, radius: radius > 0 && radius.isFinite ? radius : 1)
    }

    /// At most 200,000 evenly spread Gaussians of `cloud`, the reasonably opaque ones (opacity 0.1 or more) when there
    /// are any: what the framing and the mesher's box are measured on.
    static func sample(_ cloud: GaussianCloud) -> [Int] {
        let step = max(1, cloud.count / 200_000)
        var picked: [Int] = []
        for i in stride(from: 0, to: cloud.count, by: step) where cloud.opacity(i) >= 0.1 { picked.append(i) }
        return picked.isEmpty ? Array(stride(from: 0, to: cloud.count, by: step)) : picked
    }

    /// The distance at which a sphere of `radius` fills a vertical field of view of `degrees`, with a little margin.
    public func viewingDistance(verticalFieldOfView degrees: Double) -> Double {
        1.05 * radius / sin(0.5 * degrees * .pi / 180)
    }
}
