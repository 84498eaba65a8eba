import Testing

@testable import SplatCore

@Suite struct CoordinateFrameTests {
    @Test func namesParseAndPrint() {
        #expect(CoordinateFrame(name: "rdf") == .rdf)
        #expect(CoordinateFrame(name: "RUB")?.name == "RUB")
        #expect(CoordinateFrame(name: "RRF") == nil)
        #expect(CoordinateFrame(name: "RD") == nil)
        #expect(CoordinateFrame.allFrames.count == 48)
    }

    /// The worked RDF → RUB table of splat-formats.md §1.5 (Niantic's `coordinateConverter`).
    @Test func rdfToRUBMatchesTheSpecTable() {
        var cloud = GaussianCloud(count: 1, shDegree: 3)
        cloud.positions = [1, 2, 3]
        cloud.rotations = [0.5, 0.1, 0.2, 0.3]
        cloud.sh = (0..<48).map { Float($0 + 1) }
        let out = cloud.converted(to: .rub)
        #expect(out.positions == [1, -2, -3])
        #expect(out.rotations == [0.5, 0.1, -0.2, -0.3])
        let bandSigns: [Float] = [-1, -1, 1, -1, 1, 1, -1, 1, -1, 1, -1, -1, 1, -1, 1]
        for k in 0..<15 {
            for c in 0..<3 {
                #expect(out.sh[(k + 1) * 3 + c] == bandSigns[k] * cloud.sh[(k + 1) * 3 + c], "coefficient \(k + 1)")
            }
        }
    }

    /// Any conversion keeps the scene: colours seen from a direction, covariances, and a round trip back.
    @Test(arguments: ["RUB", "LUF", "RFU", "BLD", "DRB"])
    func conversionKeepsTheScene(target: String) throws {
        let frame = try #require(CoordinateFrame(name: target))
        let cloud = GaussianCloud.synthetic(count: 20, shDegree: 3, seed: 5)
        let out = cloud.converted(to: frame)
        let m = CoordinateFrame.rdf.matrix(to: frame).map { $0.map(Double.init) }
        let d = SIMD3<Double>(0.48, -0.6, 0.64)
        let md = SIMD3((0..<3).map { i in m[i][0] * d.x + m[i][1] * d.y + m[i][2] * d.z })
        for g in 0..<cloud.count {
            for c in 0..<3 {
                var a = 0.0, b = 0.0
                for l in 1...3 {
                    let ya = SphericalHarmonics.band(l, at: d), yb = SphericalHarmonics.band(l, at: SIMD3(md[0], md[1], md[2]))
                    for j in 0..<(2 * l + 1) {
                        a += ya[j] * Double(cloud.sh[g * 48 + (l * l + j) * 3 + c])
                        b += yb[j] * Double(out.sh[g * 48 + (l * l + j) * 3 + c])
                    }
                }
                #expect(abs(a - b) < 1e-5)
            }
            let sa = covariance(cloud, g), sb = covariance(out, g)
            for i in 0..<3 {
                for j in 0..<3 {
                    var expected = 0.0
                    for k in 0..<3 { for l in 0..<3 { expected += m[i][k] * sa[k][l] * m[j][l] } }
                    #expect(abs(expected - sb[i][j]) < 1e-6)
                }
            }
        }
        let back = out.converted(to: .rdf)
        #expect(zip(back.positions, cloud.positions).allSatisfy { $0 == $1 })
        #expect(zip(back.sh, cloud.sh).allSatisfy { abs($0 - $1) < 1e-5 })
    }

    func covariance(_ cloud: GaussianCloud, _ i: Int) -> [[Double]] {
        let q = cloud.normalizedRotation(i).map { Double($0) }
        let (w, x, y, z) = (q[0], q[1], q[2], q[3])
        let r0: [Double] = [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)]
        let r1: [Double] = [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)]
        let r2: [Double] = [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]
        let r = [r0, r1, r2]
        let s = (0..<3).map { Double(expf(cloud.logScales[i * 3 + $0])) }
        var sigma = [[Double]](repeating: [0, 0, 0], count: 3)
        for a in 0..<3 {
            for b in 0..<3 {
                for k in 0..<3 {
                    let term: Double = r[a][k] * s[k] * s[k] * r[b][k]
                    sigma[a][b] += term
                }
            }
        }
        return sigma
    }
}

extension SIMD4 where Scalar == Float {
    func map<T>(_ f: (Float) -> T) -> [T] { [f(x), f(y), f(z), f(w)] }
}

#if canImport(Glibc)
    import Glibc
#endif
