import Parallelism
import SplatCore

/// What an SPZ file's header says, for `diorama info`.
public struct SPZFileInfo: Sendable, Equatable {
    public var version: Int
    public var count: Int
    public var shDegree: Int
    public var fractionalBits: Int
    public var antialiased: Bool
    /// The frame named by a coordinate-system extension, if the file has one.
    public var recordedFrame: CoordinateFrame?
    /// Types of extension records present (known or not).
    public var extensionTypes: [UInt32]
    /// Diorama's scene metadata record, if present (`SplatMetadata`).
    public var metadata: String? = nil
}

/// Reads SPZ versions 1-3 (one gzip member) and 4 (NGSP header, table of contents, one zstd frame per attribute).
public enum SPZReader {
    /// Frame assumed for files without a coordinate-system extension: most SPZ files hold raw PLY axes (the reference
    /// command-line tool, gsply and gaussforge store them unchanged).
    public static let defaultFrame = CoordinateFrame.rdf

    public static func read(
        _ source: InputSource, limits: ReadLimits = .init(), progress: ProgressHandler? = nil
    ) throws(SplatFileError) -> (GaussianCloud, SPZFileInfo) {
        let decoded = try decode(source, limits: limits)
        progress?(source.size / 2, source.size)
        let info = decoded.info
        guard info.shDegree <= GaussianCloud.maxSHDegree else {
            throw SplatFileError(
                .unsupported, file: source.name, offset: 12, field: "shDegree",
                "SH degree \(info.shDegree) is not supported (0 to \(GaussianCloud.maxSHDegree))")
        }
        var cloud = GaussianCloud(
            unsafeUninitializedCount: info.count, shDegree: info.shDegree,
            frame: info.recordedFrame ?? defaultFrame, antialiased: info.antialiased)
        decoded.payload.withUnsafeBytes { raw in
            let s = decoded.streams.map { UnsafeRawBufferPointer(rebasing: raw[$0]) }
            SPZCodec.unpack(
                .init(positions: s[0], alphas: s[1], colors: s[2], scales: s[3], rotations: s[4], sh: s[5]),
                count: info.count, version: info.version, shDegree: info.shDegree,
                fractionalBits: info.fractionalBits, into: &cloud)
        }
        progress?(source.size, source.size)
        return (cloud, info)
    }

    /// The decompressed payload: for v1-3 the gzip member's bytes; for v4 the 32-byte header, the extension records
    /// and the decompressed streams in order (the table of contents is left out, since compressed sizes vary between
    /// encoders). Two writers agree on an SPZ file exactly when these bytes are equal.
    public static func decompressedPayload(_ source: InputSource) throws(SplatFileError) -> [UInt8] {
        let decoded = try decode(source, limits: .init())
        if decoded.info.version < 4 { return decoded.payload }
        var out = try source.bytes(at: 0, count: decoded.plaintextPrefix)
        for r in decoded.streams where !r.isEmpty { out.append(contentsOf: decoded.payload[r]) }
        return out
    }

    /// Header fields and extensions (the streams are decoded and checked too, so a corrupt file fails here).
    public static func info(_ source: InputSource) throws(SplatFileError) -> SPZFileInfo {
        try decode(source, limits: .init()).info
    }

    struct Decoded {
        var info: SPZFileInfo
        var payload: [UInt8]
        var streams: [Range<Int>]
        /// v4: bytes of header and extensions before the table of contents.
        var plaintextPrefix: Int
    }

    static func decode(_ source: InputSource, limits: ReadLimits) throws(SplatFileError) -> Decoded {
        guard source.size >= 4 else {
            throw SplatFileError(.truncated, file: source.name, offset: 0, "\(source.size) bytes is too short for SPZ")
        }
        let head = try source.bytes(at: 0, count: Int(min(source.size, 32)))
        if head[0] == 0x1F && head[1] == 0x8B { return try decodeLegacy(source, limits: limits) }
        let magic = head.withUnsafeBytes { loadLE32($0, 0) }
        if magic == SPZLayout.magic { return try decodeNGSP(source, head: head, limits: limits) }
        throw SplatFileError(
            .badMagic, file: source.name, offset: 0,
            "not an SPZ file: it starts with neither gzip (1F 8B) nor NGSP")
    }

    private static func checkHeader(
        _ source: InputSource, version: Int, count: Int, degree: Int, fractionalBits: Int, versions: ClosedRange<Int>,
        limits: ReadLimits
    ) throws(SplatFileError) {
        guard versions.contains(version) else {
            throw SplatFileError(
                .unsupportedVersion, file: source.name, offset: 4, field: "version",
                "SPZ version \(version) is not supported here (\(versions.lowerBound) to \(versions.upperBound))")
        }
        guard (0...4).contains(degree) else {
            throw SplatFileError(
                .invalidHeader, file: source.name, offset: 12, field: "shDegree", "SH degree \(degree) is invalid")
        }
        guard (0...23).contains(fractionalBits) else {
            throw SplatFileError(
                .invalidHeader, file: source.name, offset: 13, field: "fractionalBits",
                "\(fractionalBits) fractional bits do not fit in 24-bit positions")
        }
        guard count <= limits.maxGaussians else {
            throw SplatFileError(
                .invalidHeader, file: source.name, offset: 8, field: "numPoints",
                "the header claims \(count) Gaussians, more than the limit of \(limits.maxGaussians)")
        }
    }

    private static func decodeLegacy(_ source: InputSource, limits: ReadLimits) throws(SplatFileError) -> Decoded {
        var info = SPZFileInfo(
            version: 0, count: 0, shDegree: 0, fractionalBits: 0, antialiased: false, recordedFrame: nil,
            extensionTypes: [])
        var expected = 0
        let payload = try Gzip.decompress(source, range: 0..<source.size, headerBytes: SPZLayout.legacyHeaderSize) {
            (header) throws(SplatFileError) -> Int in
            let (version, count, degree, bits, flags) = header.withUnsafeBytes { h in
                (Int(loadLE32(h, 4)), Int(loadLE32(h, 8)), Int(h[12]), Int(h[13]), h[14])
            }
            guard header.withUnsafeBytes({ loadLE32($0, 0) }) == SPZLayout.magic else {
                throw SplatFileError(
                    .badMagic, file: source.name, field: "magic", "the gzip member does not start with NGSP")
            }
            try checkHeader(
                source, version: version, count: count, degree: degree, fractionalBits: bits, versions: 1...3,
                limits: limits)
            info = SPZFileInfo(
                version: version, count: count, shDegree: degree, fractionalBits: bits,
                antialiased: flags & SPZLayout.flagAntialiased != 0, recordedFrame: nil, extensionTypes: [])
            expected = SPZLayout.legacyHeaderSize
                + count * SPZLayout.attributeSizes(version: version, shDegree: degree).reduce(0, +)
            let hasExtensions = flags & SPZLayout.flagHasExtensions != 0
            return expected + (hasExtensions ? limits.maxExtensionBytes : 0)
        }
        guard payload.count >= expected else {
            throw SplatFileError(
                .truncated, file: source.name, field: "payload",
                "the decompressed payload has \(payload.count) bytes; \(info.count) Gaussians need \(expected)")
        }
        var streams: [Range<Int>] = []
        var offset = SPZLayout.legacyHeaderSize
        for size in SPZLayout.attributeSizes(version: info.version, shDegree: info.shDegree) {
            streams.append(offset..<offset + size * info.count)
            offset += size * info.count
        }
        if payload[14] & SPZLayout.flagHasExtensions != 0 {
            try parseExtensions(payload[expected...], source: source, offsetBase: nil, into: &info)
        }
        return Decoded(info: info, payload: payload, streams: streams, plaintextPrefix: 0)
    }

    private static func decodeNGSP(
        _ source: InputSource, head: [UInt8], limits: ReadLimits
    ) throws(SplatFileError) -> Decoded {
        guard head.count >= SPZLayout.ngspHeaderSize else {
            throw SplatFileError(
                .truncated, file: source.name, offset: source.size, "the 32-byte NGSP header is cut short")
        }
        let (version, count, degree, bits, flags, streamCount, tocOffset) = head.withUnsafeBytes { h in
            (Int(loadLE32(h, 4)), Int(loadLE32(h, 8)), Int(h[12]), Int(h[13]), h[14], Int(h[15]), Int64(loadLE32(h, 16)))
        }
        try checkHeader(
            source, version: version, count: count, degree: degree, fractionalBits: bits, versions: 4...4,
            limits: limits)
        guard Int64(count) <= source.size * SPZLayout.maxCompressionRatio / SPZLayout.minBytesPerPoint else {
            throw SplatFileError(
                .countExceedsFileSize, file: source.name, offset: 8, field: "numPoints",
                "\(count) Gaussians cannot fit in a \(source.size)-byte file")
        }
        guard tocOffset >= Int64(SPZLayout.ngspHeaderSize), tocOffset <= source.size else {
            throw SplatFileError(
                .invalidHeader, file: source.name, offset: 16, field: "tocByteOffset",
                "the table of contents offset \(tocOffset) is outside 32...\(source.size)")
        }
        var info = SPZFileInfo(
            version: version, count: count, shDegree: degree, fractionalBits: bits,
            antialiased: flags & SPZLayout.flagAntialiased != 0, recordedFrame: nil, extensionTypes: [])
        if flags & SPZLayout.flagHasExtensions != 0 && tocOffset > 32 {
            let ext = try source.bytes(at: 32, count: Int(tocOffset - 32))
            try parseExtensions(ext[...], source: source, offsetBase: 32, into: &info)
        }
        // Non-empty attributes, in order; empty ones (SH at degree 0, or no points) have no stream.
        let sizes = SPZLayout.attributeSizes(version: version, shDegree: degree).map { $0 * count }
        let present = sizes.indices.filter { sizes[$0] > 0 }
        guard streamCount == present.count else {
            throw SplatFileError(
                .invalidHeader, file: source.name, offset: 15, field: "numStreams",
                "\(streamCount) streams where \(present.count) are needed for SH degree \(degree)")
        }
        let tocEnd = tocOffset + Int64(streamCount * 16)
        guard tocEnd <= source.size else {
            throw SplatFileError(
                .truncated, file: source.name, offset: tocOffset, field: "toc",
                "the table of contents ends past the end of the file")
        }
        let toc = try source.bytes(at: tocOffset, count: streamCount * 16)
        var streamOffset = tocEnd
        var compressed: [(offset: Int64, size: Int)] = []
        for (k, attribute) in present.enumerated() {
            let (cs, us) = toc.withUnsafeBytes { (loadLE64($0, k * 16), loadLE64($0, k * 16 + 8)) }
            guard us == UInt64(sizes[attribute]) else {
                throw SplatFileError(
                    .invalidHeader, file: source.name, offset: tocOffset + Int64(k * 16 + 8),
                    field: "toc[\(SPZLayout.attributeNames[attribute])].uncompressedSize",
                    "\(us) bytes where \(count) Gaussians need \(sizes[attribute])")
            }
            guard cs <= UInt64(source.size - streamOffset) else {
                throw SplatFileError(
                    .truncated, file: source.name, offset: tocOffset + Int64(k * 16),
                    field: "toc[\(SPZLayout.attributeNames[attribute])].compressedSize",
                    "the stream of \(cs) bytes at byte \(streamOffset) runs past the end of the file")
            }
            compressed.append((streamOffset, Int(cs)))
            streamOffset += Int64(cs)
        }
        guard streamOffset == source.size else {
            throw SplatFileError(
                .trailingData, file: source.name, offset: streamOffset,
                "\(source.size - streamOffset) bytes follow the last stream")
        }
        // Decompress every stream straight into its place in one payload laid out as the legacy one.
        var streams: [Range<Int>] = []
        var offset = SPZLayout.legacyHeaderSize
        for size in sizes {
            streams.append(offset..<offset + size)
            offset += size
        }
        let all = try source.bytes(at: tocEnd, count: Int(source.size - tocEnd))
        var payload = [UInt8](unsafeUninitializedCapacity: offset) { _, c in c = offset }
        var failure: SplatFileError? = nil
        payload.withUnsafeMutableBytes { out in
            all.withUnsafeBytes { input in
                let shared = UncheckedSendable((out, input))
                var errors = [SplatFileError?](repeating: nil, count: present.count)
                errors.withUnsafeMutableBufferPointer { errs in
                    let e = UncheckedSendable(errs)
                    parallelFor(present.count) { k in
                        let (out, input) = shared.value
                        let c = compressed[k]
                        let start = Int(c.offset - tocEnd)
                        do throws(SplatFileError) {
                            try Zstd.decompress(
                                UnsafeRawBufferPointer(rebasing: input[start..<start + c.size]),
                                into: UnsafeMutableRawBufferPointer(rebasing: out[streams[present[k]]]),
                                file: source.name, offset: c.offset, field: SPZLayout.attributeNames[present[k]])
                        } catch { e.value[k] = error }
                    }
                }
                failure = errors.compactMap { $0 }.first
            }
        }
        if let failure { throw failure }
        return Decoded(info: info, payload: payload, streams: streams, plaintextPrefix: Int(tocOffset))
    }

    /// Walks `[u32 type][u32 length][payload]` records; unknown types are skipped by length.
    private static func parseExtensions(
        _ bytes: ArraySlice<UInt8>, source: InputSource, offsetBase: Int64?, into info: inout SPZFileInfo
    ) throws(SplatFileError) {
        var at = bytes.startIndex
        while bytes.endIndex - at >= 8 {
            let (type, length) = bytes.withUnsafeBytes { b in
                (loadLE32(b, at - bytes.startIndex), Int(loadLE32(b, at - bytes.startIndex + 4)))
            }
            let place = offsetBase.map { $0 + Int64(at - bytes.startIndex) }
            guard length <= bytes.endIndex - at - 8 else {
                throw SplatFileError(
                    .truncated, file: source.name, offset: place, field: "extension 0x\(String(type, radix: 16))",
                    "the extension record claims \(length) bytes; \(bytes.endIndex - at - 8) remain")
            }
            info.extensionTypes.append(type)
            if type == SPZLayout.ExtensionType.coordinateSystem && length >= 4 {
                let value = Int(bytes.withUnsafeBytes { loadLE32($0, at - bytes.startIndex + 8) })
                guard value < SPZLayout.coordinateSystems.count else {
                    throw SplatFileError(
                        .invalidHeader, file: source.name, offset: place, field: "coordinate system",
                        "unknown coordinate system value \(value)")
                }
                // UNSPECIFIED means RUB to the reference library.
                info.recordedFrame = value == 0 ? .rub : CoordinateFrame(name: SPZLayout.coordinateSystems[value])
            }
            if type == SplatMetadata.spzExtensionType {
                info.metadata = String(decoding: bytes[(at + 8)..<(at + 8 + length)], as: UTF8.self)
            }
            at += 8 + length
        }
    }
}

/// Ceilings that keep a hostile file from making a reader allocate absurd amounts of memory.
public struct ReadLimits: Sendable {
    /// The most Gaussians a file may declare (64 Mi by default: about 10 GB as a degree-3 cloud).
    public var maxGaussians: Int = 1 << 26
    /// The most bytes of SPZ extension records.
    public var maxExtensionBytes: Int = 1 << 20
    public init(maxGaussians: Int = 1 << 26) { self.maxGaussians = maxGaussians }
}
