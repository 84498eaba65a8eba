import Parallelism
import SplatCore

/// Writes SPZ versions 2 and 3 (gzip) and 4 (NGSP + zstd). For the same cloud and options the decompressed payload is
/// byte-identical to what Niantic's reference library writes (positions stored in the cloud's axes, unchanged).
public enum SPZWriter {
    public static func write(
        _ cloud: GaussianCloud, to sink: OutputSink, options: SPZWriteOptions = .init(), metadata: String? = nil,
        progress: ProgressHandler? = nil
    ) throws(SplatFileError) {
        guard (2...4).contains(options.version) else {
            throw SplatFileError(
                .unsupported, file: sink.name, field: "version",
                "SPZ version \(options.version) cannot be written (2, 3 or 4)")
        }
        guard (1...8).contains(options.sh1Bits), (1...8).contains(options.shRestBits) else {
            throw SplatFileError(.unsupported, file: sink.name, field: "sh bits", "SH bits must be 1 to 8")
        }
        try validate(cloud, file: sink.name)
        var extensions: [UInt8] = []
        if cloud.frame != SPZReader.defaultFrame {
            // Record any other frame so readers that know the extension place the scene correctly.
            guard let value = SPZLayout.coordinateSystemValue(cloud.frame) else {
                throw SplatFileError(
                    .unsupported, file: sink.name, field: "frame",
                    "SPZ cannot record frame \(cloud.frame); convert the scene to one of "
                        + SPZLayout.coordinateSystems.dropFirst().joined(separator: ", "))
            }
            extensions.appendLE32(SPZLayout.ExtensionType.coordinateSystem)
            extensions.appendLE32(4)
            extensions.appendLE32(value)
        }
        try SplatMetadata.check(metadata, file: sink.name)
        if let metadata {
            extensions.appendLE32(SplatMetadata.spzExtensionType)
            extensions.appendLE32(UInt32(metadata.utf8.count))
            extensions.append(contentsOf: metadata.utf8)
        }
        let payload = SPZCodec.pack(cloud, options: options, extensions: extensions)
        progress?(Int64(cloud.count) / 4, Int64(cloud.count))
        if options.version < 4 {
            let n = Int64(cloud.count)
            try payload.bytes.withUnsafeBytes { bytes in
                Result { () throws(SplatFileError) in
                    try Gzip.compress(bytes, to: sink) { done, total in
                        progress?(n / 4 + done * 3 * n / 4 / max(total, 1), n)
                    }
                }
            }.get()
        } else {
            try writeNGSP(payload, cloud: cloud, options: options, extensions: extensions, to: sink)
        }
        progress?(Int64(cloud.count), Int64(cloud.count))
    }

    private static func writeNGSP(
        _ payload: SPZPayload, cloud: GaussianCloud, options: SPZWriteOptions, extensions: [UInt8], to sink: OutputSink
    ) throws(SplatFileError) {
        let present = payload.streams.filter { !$0.isEmpty }
        // One stream at a time with every core inside libzstd: the SH stream alone is half the bytes, so splitting by
        // stream would leave cores idle.
        let chunks: [[UInt8]?] = payload.bytes.withUnsafeBytes { raw in
            present.map { range in
                Zstd.compress(
                    UnsafeRawBufferPointer(rebasing: raw[range]), level: Int32(options.zstdLevel),
                    workers: activeProcessorCount)
            }
        }
        var head: [UInt8] = []
        head.appendLE32(SPZLayout.magic)
        head.appendLE32(4)
        head.appendLE32(UInt32(cloud.count))
        head.append(UInt8(cloud.shDegree))
        head.append(12)
        head.append((cloud.antialiased ? SPZLayout.flagAntialiased : 0) | (extensions.isEmpty ? 0 : SPZLayout.flagHasExtensions))
        head.append(UInt8(present.count))
        head.appendLE32(UInt32(SPZLayout.ngspHeaderSize + extensions.count))
        head.append(contentsOf: [UInt8](repeating: 0, count: 12))
        head.append(contentsOf: extensions)
        for (k, range) in present.enumerated() {
            guard let chunk = chunks[k] else {
                throw SplatFileError(.io, file: sink.name, "zstd failed to compress the \(k)th stream")
            }
            head.appendLE64(UInt64(chunk.count))
            head.appendLE64(UInt64(range.count))
        }
        try sink.write(head)
        for chunk in chunks { try sink.write(chunk!) }
    }

    /// Values SPZ cannot encode: non-finite numbers, and positions beyond the ±2048 range of 24-bit fixed point.
    static func validate(_ cloud: GaussianCloud, file: String) throws(SplatFileError) {
        let limit: Float = Float(1 << 23) / 4096
        for (i, v) in cloud.positions.enumerated() where !(abs(v) < limit) {
            throw SplatFileError(
                .unsupported, file: file, field: "Gaussian \(i / 3) position",
                v.isFinite
                    ? "coordinate \(v) is outside SPZ's range of ±\(limit) (24-bit fixed point, 12 fractional bits)"
                    : "coordinate is \(v)")
        }
        try requireNoNaN(cloud, file: file)
        for (i, v) in cloud.sh.enumerated() where !v.isFinite {
            throw SplatFileError(
                .nonFiniteValue, file: file, field: "Gaussian \(i / cloud.shStride) SH", "coefficient is \(v)")
        }
    }
}

/// NaN has no encoding in any splat format; infinities are allowed only where a writer clamps them.
func requireNoNaN(_ cloud: GaussianCloud, file: String) throws(SplatFileError) {
    for (name, column, width) in [
        ("position", cloud.positions, 3), ("scale", cloud.logScales, 3), ("rotation", cloud.rotations, 4),
        ("opacity", cloud.logitOpacities, 1), ("SH", cloud.sh, cloud.shStride),
    ] {
        if let i = column.firstIndex(where: { $0.isNaN }) {
            throw SplatFileError(.nonFiniteValue, file: file, field: "Gaussian \(i / width) \(name)", "value is NaN")
        }
    }
}
