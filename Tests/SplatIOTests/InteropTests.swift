import SplatCore
import Testing

@testable import SplatIO

/// Files written by the reference codecs (gaussforge, which embeds Niantic's SPZ library, and gsply), read by Diorama;
/// and Diorama's SPZ payloads compared with gaussforge's byte for byte. `tools/interop/make_fixtures.py` wrote the
/// fixtures; `tools/interop/check_diorama_outputs.py` checks the other direction (Diorama writes, they read).
@Suite struct InteropTests {
    static let degrees = [0, 2, 3]

    @Test(arguments: degrees)
    func sourcePLYHasTheExpectedShape(degree: Int) throws {
        let cloud = try readFixture("source-deg\(degree).ply")
        #expect(cloud.count == 256)
        #expect(cloud.shDegree == degree)
        #expect(cloud.frame == .rdf)
    }

    @Test(arguments: degrees, [2, 3, 4])
    func gaussforgeSPZDecodesToTheSource(degree: Int, version: Int) throws {
        let source = try readFixture("source-deg\(degree).ply")
        let (cloud, info) = try SPZReader.read(fixture("gaussforge-deg\(degree)-v\(version).spz"))
        #expect(info.version == version)
        expectClose(source, cloud, version == 2 ? .spzV2 : .spz)
    }

    @Test(arguments: degrees, [3, 4])
    func gsplySPZDecodesToTheSource(degree: Int, version: Int) throws {
        let source = try readFixture("source-deg\(degree).ply")
        let cloud = try readFixture("gsply-deg\(degree)-v\(version).spz")
        // gsply keeps SH at 8 bits, so the SPZ tolerance holds with room to spare.
        expectClose(source, cloud, .spz)
    }

    @Test(arguments: degrees, [2, 3, 4])
    func spzPayloadIsByteIdenticalToTheReference(degree: Int, version: Int) throws {
        let source = try readFixture("source-deg\(degree).ply")
        let ours = try written(source, as: .spz, options: .init(spz: .init(version: version)))
        let reference = try SPZReader.decompressedPayload(fixture("gaussforge-deg\(degree)-v\(version).spz"))
        let mine = try SPZReader.decompressedPayload(InputSource(bytes: ours))
        #expect(mine.count == reference.count)
        let firstDifference = zip(mine, reference).enumerated().first { $0.element.0 != $0.element.1 }?.offset
        #expect(firstDifference == nil, "payloads differ first at byte \(firstDifference ?? -1)")
    }

    @Test(arguments: degrees)
    func gaussforgePLYAndSplatReadBack(degree: Int) throws {
        let source = try readFixture("source-deg\(degree).ply")
        expectClose(source, try readFixture("gaussforge-deg\(degree).ply"), .exact)
        let splat = try readFixture("gaussforge-deg\(degree).splat")
        // .splat is importance-sorted; its positions are exact floats, so sorting both by position pairs them up.
        expectClose(source.sortedByPosition(), splat.sortedByPosition(), .splat)
    }

    @Test(arguments: [2, 3])
    func gsplyPLYWithoutNormalsReadsBack(degree: Int) throws {
        expectClose(try readFixture("source-deg\(degree).ply"), try readFixture("gsply-deg\(degree).ply"), .exact)
    }

    @Test(arguments: ["flashworld-38.ply", "ascii-deg2.ply", "big-endian-deg2.ply"])
    func plyVariantsMatchTheSource(name: String) throws {
        let source = try readFixture("source-deg2.ply")
        let cloud = try readFixture(name)
        #expect(cloud.shDegree == 2)
        // FlashWorld exports in camera 0's OpenGL frame; other PLY files default to RDF.
        #expect(cloud.frame == (name == "flashworld-38.ply" ? .rub : .rdf))
        expectClose(source, cloud, .exact)
    }

    @Test func pointCloudWithRGBAndOtherElements() throws {
        let source = try readFixture("source-deg2.ply")
        let points = try readFixture("points-rgb.ply")
        #expect(points.count == 256 && points.shDegree == 0)
        // Doubles narrowed to float: exact; colours through 8 bits.
        #expect(zip(points.positions, source.positions).allSatisfy { $0 == $1 })
        for i in 0..<points.count {
            let expected = min(max(source.sh[i * source.shStride], -0.5 / SphericalHarmonics.c0), 0.5 / SphericalHarmonics.c0)
            #expect(abs(points.sh[i * 3] - expected) <= 0.5 / (255 * SphericalHarmonics.c0) + 1e-5)
            #expect(points.logScales[i * 3] == PLYReader.defaultLogScale)
            #expect(points.rotations[i * 4] == 1)
        }
    }
}
