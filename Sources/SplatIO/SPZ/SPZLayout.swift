import SplatCore

/// Constants and byte layout of Niantic's SPZ format (versions 1-4), as its reference library reads and writes it.
enum SPZLayout {
    static let magic: UInt32 = 0x5053_474E  // "NGSP"
    static let legacyHeaderSize = 16
    static let ngspHeaderSize = 32
    static let flagAntialiased: UInt8 = 0x1
    static let flagHasExtensions: UInt8 = 0x2
    static let colorScale: Float = 0.15
    static let sqrt1_2: Float = 0.707106781186547524401
    /// The reference's bound on a v4 header's point count: `fileSize * 1024 / 9`.
    static let maxCompressionRatio: Int64 = 1024
    static let minBytesPerPoint: Int64 = 9

    /// SH coefficients per channel beyond DC, for SH degree 0-4 (the format allows 4).
    static func restCoefficients(degree: Int) -> Int { (degree + 1) * (degree + 1) - 1 }

    /// Bytes per Gaussian of each attribute, in stream order: positions, alphas, colors, scales, rotations, sh.
    static func attributeSizes(version: Int, shDegree: Int) -> [Int] {
        [version == 1 ? 6 : 9, 1, 3, 3, version >= 3 ? 4 : 3, restCoefficients(degree: shDegree) * 3]
    }

    static let attributeNames = ["positions", "alphas", "colors", "scales", "rotations", "sh"]

    enum ExtensionType {
        static let safeOrbitCamera: UInt32 = 0xADBE_0002
        static let coordinateSystem: UInt32 = 0xADBE_0003
    }

    /// The reference's `CoordinateSystem` enum values (`splat-types.h`), index = value; 0 is UNSPECIFIED.
    static let coordinateSystems = [
        "", "LDB", "RDB", "LUB", "RUB", "LDF", "RDF", "LUF", "RUF", "LFD", "RFD", "LFU", "RFU", "LBD", "RBD", "LBU",
        "RBU",
    ]

    static func coordinateSystemValue(_ frame: CoordinateFrame) -> UInt32? {
        coordinateSystems.firstIndex(of: frame.name).map(UInt32.init)
    }
}

/// Options of the SPZ writer; the defaults are the reference library's, but for the version (3: gzip, which every
/// reader opens; the reference now defaults to 4, which pre-2026 readers cannot).
public struct SPZWriteOptions: Sendable, Equatable {
    public var version: Int = 3
    /// Bits kept of each degree-1 SH coefficient (entropy shaping only; the decoder never sees it).
    public var sh1Bits: Int = 5
    /// Bits kept of each degree-2+ SH coefficient.
    public var shRestBits: Int = 4
    /// Zstandard level of the v4 streams (the reference's 12).
    public var zstdLevel: Int = 12

    public init(version: Int = 3, sh1Bits: Int = 5, shRestBits: Int = 4) {
        self.version = version
        self.sh1Bits = sh1Bits
        self.shRestBits = shRestBits
    }
}

@inline(__always) func loadLE32(_ p: UnsafeRawBufferPointer, _ offset: Int) -> UInt32 {
    UInt32(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
}

@inline(__always) func loadLE64(_ p: UnsafeRawBufferPointer, _ offset: Int) -> UInt64 {
    UInt64(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
}

extension Array where Element == UInt8 {
    mutating func appendLE32(_ v: UInt32) {
        append(contentsOf: [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 24)])
    }
    mutating func appendLE64(_ v: UInt64) {
        for k in 0..<8 { append(UInt8(v >> (8 * UInt64(k)) & 0xFF)) }
    }
}
