import SplatCore
import Testing

@testable import SplatIO

/// Corrupt, truncated and lying files: each gives a typed error that says where, never a crash.
@Suite struct BadInputTests {
    func error(reading bytes: [UInt8], as format: SplatFormat?, name: String = "bad") -> SplatFileError? {
        do {
            _ = try SplatFile.read(InputSource(bytes: bytes, name: name), format: format)
            return nil
        } catch { return error }
    }

    static let plyHeader = "ply\nformat binary_little_endian 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\nend_header\n"

    @Test func plyCountExceedingTheFile() {
        let bytes = Array("ply\nformat binary_little_endian 1.0\nelement vertex 1000\nproperty float x\nproperty float y\nproperty float z\nend_header\n".utf8) + [UInt8](repeating: 0, count: 24)
        let e = error(reading: bytes, as: .ply)
        #expect(e?.kind == .countExceedsFileSize)
        #expect(e?.offset != nil)
    }

    @Test func plyAbsurdCountIsRefusedBeforeAllocating() {
        let bytes = Array("ply\nformat ascii 1.0\nelement vertex 9000000000000\nproperty float x\nproperty float y\nproperty float z\nend_header\n".utf8)
        #expect(error(reading: bytes, as: .ply)?.kind == .invalidHeader)
    }

    @Test func plyNaNNamesVertexPropertyAndOffset() {
        var body = [Float](repeating: 1, count: 6)
        body[4] = .nan
        let bytes = Array(Self.plyHeader.utf8) + body.withUnsafeBytes { Array($0) }
        let e = error(reading: bytes, as: .ply)
        #expect(e?.kind == .nonFiniteValue)
        #expect(e?.field == "vertex 1, property 'y'")
        #expect(e?.offset == Int64(Self.plyHeader.utf8.count + 16))
    }

    @Test func plyWithoutPositionsOrEndHeader() {
        let noX = Array("ply\nformat ascii 1.0\nelement vertex 1\nproperty float y\nend_header\n1\n".utf8)
        #expect(error(reading: noX, as: .ply)?.kind == .invalidHeader)
        let noEnd = Array("ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\n".utf8)
        #expect(error(reading: noEnd, as: .ply)?.kind == .truncated)
    }

    @Test func plyTruncatedASCIIAndGarbageTokens() {
        let header = "ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\nend_header\n"
        #expect(error(reading: Array((header + "1 2 3\n4 5" + String(repeating: " ", count: 8)).utf8), as: .ply)?.kind == .truncated)
        let e = error(reading: Array((header + "1 2 3\n4 five 6\n").utf8), as: .ply)
        #expect(e?.kind == .invalidHeader)
        #expect(e?.field == "y")
    }

    @Test func wrongMagic() {
        #expect(error(reading: Array("plx\n".utf8) + [UInt8](repeating: 0, count: 40), as: .ply)?.kind == .badMagic)
        #expect(error(reading: [0x00, 0x01, 0x02, 0x03, 0x04], as: .spz)?.kind == .badMagic)
        #expect(error(reading: [1, 2, 3], as: nil, name: "noextension")?.kind == .badMagic)
    }

    @Test func splatNotAWholeNumberOfRecords() {
        let e = error(reading: [UInt8](repeating: 0, count: 70), as: .splat)
        #expect(e?.kind == .truncated)
        #expect(e?.offset == 64)
    }

    @Test func spzHeaderLies() throws {
        let cloud = GaussianCloud.synthetic(count: 50, shDegree: 1)
        // v4: a point count the file cannot hold.
        var v4 = try written(cloud, as: .spz, options: .init(spz: .init(version: 4)))
        v4[8] = 0; v4[9] = 0; v4[10] = 0x10; v4[11] = 0  // 1 Mi points: under the limit, over what the file can hold
        #expect(error(reading: v4, as: .spz)?.kind == .countExceedsFileSize)
        // v4: trailing bytes after the last stream.
        let trailing = try written(cloud, as: .spz, options: .init(spz: .init(version: 4))) + [0]
        #expect(error(reading: trailing, as: .spz)?.kind == .trailingData)
        // v3: truncated gzip.
        let v3 = try written(cloud, as: .spz)
        #expect(error(reading: Array(v3.prefix(v3.count / 2)), as: .spz)?.kind == .truncated)
    }

    @Test func writersRefuseWhatTheyCannotStore() throws {
        var cloud = GaussianCloud.synthetic(count: 10, shDegree: 0)
        cloud.positions[4] = 5000
        #expect(throws: SplatFileError.self) { try written(cloud, as: .spz) }
        cloud.positions[4] = .nan
        for format in SplatFormat.allCases {
            #expect(throws: SplatFileError.self) { try written(cloud, as: format) }
        }
    }

    /// Thousands of corrupted inputs per reader: flipped bits, overwritten bytes, truncations and insertions. Each must
    /// end in a cloud or a `SplatFileError` (a crash fails the whole run; a hang never finishes it).
    @Test(arguments: ["ply-binary", "ply-ascii", "spz-v2", "spz-v3", "spz-v4", "splat"])
    func mutatedInputsNeverCrash(kind: String) throws {
        let cloud = GaussianCloud.synthetic(count: 24, shDegree: 2, seed: 3)
        let (bytes, format): ([UInt8], SplatFormat) = try {
            switch kind {
            case "ply-binary": return (try written(cloud, as: .ply), .ply)
            case "ply-ascii":
                let header = "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\nproperty uchar red\nproperty uchar green\nproperty uchar blue\nproperty list uchar int idx\nend_header\n"
                return (Array((header + "1 2 3 10 20 30 2 7 8\n4 5 6 1 2 3 0\n-1 -2 -3e2 255 0 9 1 4\n").utf8), .ply)
            case "spz-v2": return (try written(cloud, as: .spz, options: .init(spz: .init(version: 2))), .spz)
            case "spz-v3": return (try written(cloud, as: .spz), .spz)
            case "spz-v4": return (try written(cloud, as: .spz, options: .init(spz: .init(version: 4))), .spz)
            default: return (try written(cloud, as: .splat), .splat)
            }
        }()
        #expect(error(reading: bytes, as: format) == nil, "the unmutated file reads")
        var generator = SeededGenerator(seed: UInt64(kind.utf8.reduce(0) { $0 &* 31 &+ UInt64($1) }))
        var outcomes = (ok: 0, errors: 0)
        var kinds = Set<SplatFileError.Kind>()
        for trial in 0..<1500 {
            var m = bytes
            switch trial % 5 {
            case 0:
                let i = Int.random(in: 0..<m.count, using: &generator)
                m[i] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &generator)
            case 1:
                for _ in 0..<Int.random(in: 1...8, using: &generator) {
                    m[Int.random(in: 0..<m.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
                }
            case 2: m = Array(m.prefix(Int.random(in: 0..<m.count, using: &generator)))
            case 3:
                let i = Int.random(in: 0...m.count, using: &generator)
                m.insert(contentsOf: (0..<Int.random(in: 1...16, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }, at: i)
            default:
                // Header fields are where lies hurt: hit the first 40 bytes.
                let i = Int.random(in: 0..<min(40, m.count), using: &generator)
                m[i] = [0, 0xFF, 0x7F, 0x80, 1][Int.random(in: 0..<5, using: &generator)]
            }
            if let e = error(reading: m, as: format) {
                outcomes.errors += 1
                kinds.insert(e.kind)
                #expect(!e.description.isEmpty)
            } else {
                outcomes.ok += 1
            }
        }
        #expect(outcomes.ok + outcomes.errors == 1500)
        #expect(outcomes.errors > 0, "some mutations must be detected")
        #expect(kinds.count >= 2, "the errors say different things: \(kinds)")
    }
}

struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed | 1 }
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }
}
