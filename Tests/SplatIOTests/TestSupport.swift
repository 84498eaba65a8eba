import SplatCore
import Testing

@testable import SplatIO

/// The folder of committed fixtures, beside this file.
let fixtureDirectory: String = {
    let file = "\(#filePath)"
    return String(file[..<file.lastIndex(of: "/")!]) + "/Fixtures/interop"
}()

func fixture(_ name: String) throws -> InputSource { try InputSource(path: "\(fixtureDirectory)/\(name)") }

func readFixture(_ name: String) throws -> GaussianCloud { try SplatFile.read(fixture(name)).0 }

/// How far a value may move through a format, per column; named after the step that loses the precision.
struct Tolerance: CustomStringConvertible {
    var name: String
    var position: Float
    var logScale: Float
    /// Minimum |dot| between normalised quaternions.
    var rotationDot: Float
    /// On linear opacity.
    var opacity: Float
    var dc: Float
    /// On SH beyond DC; nil when the format drops them.
    var rest: Float?

    var description: String { name }

    static let exact = Tolerance(name: "exact", position: 0, logScale: 0, rotationDot: 1 - 1e-6, opacity: 0, dc: 0, rest: 0)
    /// SPZ v3/v4: 12 fractional bits, 1/16 log-scale steps, smallest-three 9-bit quaternions, 8-bit alpha and colour,
    /// SH buckets of 5 bits (degree 1) and 4 bits (higher) over [-1, 1].
    static let spz = Tolerance(
        name: "spz", position: 0.5 / 4096 + 1e-6, logScale: 0.5 / 16 + 1e-6, rotationDot: 0.998, opacity: 0.5 / 255 + 1e-4,
        dc: 0.5 / (0.15 * 255) + 1e-5, rest: 8.5 / 128 + 1e-5)
    /// SPZ v2: quaternions keep 8 bits of x, y, z.
    static let spzV2 = Tolerance(
        name: "spz v2", position: spz.position, logScale: spz.logScale, rotationDot: 0.99, opacity: spz.opacity,
        dc: spz.dc, rest: spz.rest)
    /// .splat: float positions and scales (scales through exp/log), 8-bit truncated colour, alpha and quaternion, no
    /// SH rest.
    static let splat = Tolerance(
        name: "splat", position: 0, logScale: 1e-5, rotationDot: 0.97, opacity: 1.0 / 255 + 1e-4,
        dc: 1.0 / (255 * SphericalHarmonics.c0) + 1e-4, rest: nil)
}

/// Asserts `b` equals `a` within `tolerance`, Gaussian by Gaussian in the same order.
func expectClose(_ a: GaussianCloud, _ b: GaussianCloud, _ tolerance: Tolerance, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(a.count == b.count, "count", sourceLocation: sourceLocation)
    guard a.count == b.count else { return }
    func maxError(_ x: [Float], _ y: [Float]) -> Float { zip(x, y).reduce(0) { max($0, abs($1.0 - $1.1)) } }
    #expect(maxError(a.positions, b.positions) <= tolerance.position, "positions (\(tolerance))", sourceLocation: sourceLocation)
    #expect(maxError(a.logScales, b.logScales) <= tolerance.logScale, "log-scales (\(tolerance))", sourceLocation: sourceLocation)
    var worstDot: Float = 1, worstOpacity: Float = 0, worstDC: Float = 0, worstRest: Float = 0
    let n = min(a.coefficientsPerChannel, b.coefficientsPerChannel)
    for i in 0..<a.count {
        worstDot = min(worstDot, abs((a.normalizedRotation(i) * b.normalizedRotation(i)).sum()))
        worstOpacity = max(worstOpacity, abs(a.opacity(i) - b.opacity(i)))
        for c in 0..<3 { worstDC = max(worstDC, abs(a.sh[i * a.shStride + c] - b.sh[i * b.shStride + c])) }
        for k in 3..<(3 * n) {
            // Reference quantisers clip SH beyond DC to [-1, 127/128].
            let expected = min(max(a.sh[i * a.shStride + k], -1), 127.0 / 128)
            worstRest = max(worstRest, abs(expected - b.sh[i * b.shStride + k]))
        }
    }
    #expect(worstDot >= tolerance.rotationDot, "rotations |dot| \(worstDot) (\(tolerance))", sourceLocation: sourceLocation)
    #expect(worstOpacity <= tolerance.opacity, "opacity \(worstOpacity) (\(tolerance))", sourceLocation: sourceLocation)
    #expect(worstDC <= tolerance.dc, "SH DC \(worstDC) (\(tolerance))", sourceLocation: sourceLocation)
    if let rest = tolerance.rest {
        #expect(worstRest <= rest, "SH rest \(worstRest) (\(tolerance))", sourceLocation: sourceLocation)
    }
}

func written(_ cloud: GaussianCloud, as format: SplatFormat, options: SplatWriteOptions = .init()) throws -> [UInt8] {
    let out = MemoryOutput(name: "out.\(format.rawValue)")
    try SplatFile.write(cloud, to: out, format: format, options: options)
    return out.bytes
}

func reread(_ bytes: [UInt8], as format: SplatFormat) throws -> GaussianCloud {
    try SplatFile.read(InputSource(bytes: bytes, name: "memory.\(format.rawValue)"), format: format).0
}
