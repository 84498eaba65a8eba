import SplatCore
import Testing

@testable import SplatIO

/// Every format into every other, with the tolerance of the lossiest step.
@Suite struct RoundTripTests {
    struct Route: CustomTestStringConvertible, Sendable {
        var formats: [SplatFormat]
        var spzVersion = 3
        var tolerance: String
        var testDescription: String { formats.map(\.rawValue).joined(separator: "→") + (formats.contains(.spz) ? " v\(spzVersion)" : "") }
    }

    static let routes: [Route] = [
        Route(formats: [.ply], tolerance: "exact"),
        Route(formats: [.spz], spzVersion: 2, tolerance: "spzV2"),
        Route(formats: [.spz], spzVersion: 3, tolerance: "spz"),
        Route(formats: [.spz], spzVersion: 4, tolerance: "spz"),
        Route(formats: [.splat], tolerance: "splat"),
        Route(formats: [.ply, .spz], tolerance: "spz"),
        Route(formats: [.spz, .ply], spzVersion: 4, tolerance: "spz"),
        Route(formats: [.spz, .spz], tolerance: "spz"),
        Route(formats: [.splat, .ply], tolerance: "splat"),
        Route(formats: [.ply, .splat], tolerance: "splat"),
        Route(formats: [.spz, .splat], tolerance: "splat+spz"),
        Route(formats: [.splat, .spz], tolerance: "splat+spz"),
    ]

    @Test(arguments: routes)
    func roundTrip(route: Route) throws {
        // Positions inside SPZ's range, SH inside its [-1, 1] clip.
        let source = GaussianCloud.synthetic(count: 3000, shDegree: 3, seed: 7)
        var cloud = source
        // What the source should turn into: .splat reorders by importance as it writes.
        var expected = source
        for format in route.formats {
            if format == .splat { expected = expected.selecting(cloud.importanceOrder()) }
            let bytes = try written(cloud, as: format, options: .init(spz: .init(version: route.spzVersion)))
            cloud = try reread(bytes, as: format)
        }
        var tolerance: Tolerance
        switch route.tolerance {
        case "exact": tolerance = .exact
        case "spz": tolerance = .spz
        case "spzV2": tolerance = .spzV2
        case "splat": tolerance = .splat
        default:
            tolerance = .splat
            tolerance.position = Tolerance.spz.position
            tolerance.logScale = Tolerance.spz.logScale + 1e-5
            tolerance.opacity = Tolerance.splat.opacity + Tolerance.spz.opacity
            tolerance.dc = Tolerance.splat.dc + Tolerance.spz.dc
        }
        if route.formats.contains(.splat) { #expect(cloud.shDegree == 0) }
        expectClose(expected, cloud, tolerance)
    }

    @Test func spzToSPZIsStable() throws {
        let once = try reread(written(GaussianCloud.synthetic(count: 500, shDegree: 2), as: .spz), as: .spz)
        let first = try SPZReader.decompressedPayload(InputSource(bytes: written(once, as: .spz)))
        let twice = try reread(written(once, as: .spz), as: .spz)
        let second = try SPZReader.decompressedPayload(InputSource(bytes: written(twice, as: .spz)))
        #expect(first == second)
    }

    @Test func extremeOpacitiesSurviveSPZ() throws {
        var cloud = GaussianCloud.synthetic(count: 4, shDegree: 0)
        cloud.logitOpacities = [-40, 40, -.infinity, .infinity]
        let back = try reread(written(cloud, as: .spz), as: .spz)
        #expect(back.logitOpacities.allSatisfy { $0.isFinite })
        #expect(back.opacity(0) < 0.001 && back.opacity(1) > 0.999)
        let again = try reread(written(back, as: .spz), as: .spz)
        #expect(again.logitOpacities == back.logitOpacities)
    }

    @Test func frameIsRecordedAndRestored() throws {
        let cloud = GaussianCloud.synthetic(count: 100, shDegree: 2).converted(to: .rub)
        for format in [SplatFormat.ply, .spz] {
            for version in format == .spz ? [3, 4] : [3] {
                let back = try reread(written(cloud, as: format, options: .init(spz: .init(version: version))), as: format)
                #expect(back.frame == .rub, "\(format) v\(version)")
            }
        }
    }

    /// Scene metadata travels in PLY (a comment line) and SPZ v3 and v4 (an extension record), the splats unchanged
    /// beside it; a document that would break a PLY header is refused, naming the problem.
    @Test func metadataTravelsInsideTheFile() throws {
        let cloud = GaussianCloud.synthetic(count: 50, shDegree: 1).converted(to: .rub)
        // Long enough to take several PLY comment lines, with double spaces and characters of several bytes.
        let document = #"{"chunks":[{"scale":1.7}],"frame":"RUB","note":"é  ü "# + String(repeating: "ab  cd é 😀 ", count: 200) + #""}"#
        for (format, version) in [(SplatFormat.ply, 3), (.spz, 3), (.spz, 4)] {
            let bytes = try written(cloud, as: format, options: .init(spz: .init(version: version), metadata: document))
            let (back, description) = try SplatFile.read(InputSource(bytes: bytes, name: "m.\(format.rawValue)"), format: format)
            #expect(description.metadata == document, "\(format) v\(version)")
            #expect(back.frame == .rub, "\(format) v\(version)")
            let plain = try reread(written(cloud, as: format, options: .init(spz: .init(version: version))), as: format)
            #expect(back.positions == plain.positions && back.sh == plain.sh, "\(format) v\(version)")
            #expect(try SplatFile.read(InputSource(bytes: try written(cloud, as: format), name: "p.\(format.rawValue)")).1.metadata == nil)
        }
        // Every header line stays within the 1,024 bytes line-based PLY readers take.
        let ply = try written(cloud, as: .ply, options: .init(metadata: document))
        let header = ply[..<(ply.firstRange(of: Array("end_header\n".utf8))!.lowerBound)]
        #expect(header.split(separator: 10).allSatisfy { $0.count <= 1024 } && header.split(separator: 10).count > 5)
        #expect(throws: SplatFileError.self) { try written(cloud, as: .ply, options: .init(metadata: "two\nlines")) }
        #expect(throws: SplatFileError.self) { try written(cloud, as: .ply, options: .init(metadata: "crlf\r\nline")) }
        #expect(throws: SplatFileError.self) { try written(cloud, as: .spz, options: .init(metadata: String(repeating: "x", count: SplatMetadata.maxBytes + 1))) }
    }

    @Test func emptyCloudRoundTrips() throws {
        let empty = GaussianCloud(count: 0, shDegree: 1)
        for format in SplatFormat.allCases {
            let back = try reread(written(empty, as: format), as: format)
            #expect(back.count == 0, "\(format)")
        }
        let v4 = try reread(written(empty, as: .spz, options: .init(spz: .init(version: 4))), as: .spz)
        #expect(v4.count == 0)
    }
}

extension GaussianCloud {
    func sortedByPosition() -> GaussianCloud {
        let order = (0..<Int32(count)).sorted {
            let a = Int($0) * 3, b = Int($1) * 3
            return (positions[a], positions[a + 1], positions[a + 2]) < (positions[b], positions[b + 1], positions[b + 2])
        }
        return selecting(order)
    }
}
