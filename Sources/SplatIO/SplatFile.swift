import SplatCore

/// Called with (done, total) as long work advances; units are whatever the work counts (bytes, Gaussians).
public typealias ProgressHandler = (_ done: Int64, _ total: Int64) -> Void

/// The splat formats Diorama reads and writes.
public enum SplatFormat: String, Sendable, CaseIterable {
    case ply, spz, splat

    /// The format named by a path's extension, if any.
    public init?(path: String) {
        guard let dot = path.lastIndex(of: "."), !path[dot...].contains("/") else { return nil }
        self.init(rawValue: path[path.index(after: dot)...].lowercased())
    }

    /// The format recognised from a file's first bytes (.splat has no magic and is never sniffed).
    public static func sniff(_ source: InputSource) throws(SplatFileError) -> SplatFormat? {
        let head = try source.bytes(at: 0, count: Int(min(source.size, 4)))
        if head.starts(with: Array("ply".utf8)) { return .ply }
        if head.starts(with: Gzip.magic) || head.starts(with: [0x4E, 0x47, 0x53, 0x50]) { return .spz }
        return nil
    }
}

/// What a file held, beside the cloud.
public struct SplatFileDescription: Sendable {
    public var format: SplatFormat
    /// "binary_little_endian", "SPZ v3 (gzip)", "32-byte records", ...
    public var variant: String
    public var spz: SPZFileInfo?
    public var plyHeader: PLYHeader?
}

/// Options for writing any format.
public struct SplatWriteOptions: Sendable {
    public var spz = SPZWriteOptions()
    public init(spz: SPZWriteOptions = .init()) { self.spz = spz }
}

public enum SplatFile {
    /// Reads a file in `format` (by default its extension's, else its magic bytes').
    public static func read(
        _ source: InputSource, format: SplatFormat? = nil, limits: ReadLimits = .init(),
        progress: ProgressHandler? = nil
    ) throws(SplatFileError) -> (GaussianCloud, SplatFileDescription) {
        let sniffed = try SplatFormat.sniff(source)
        guard let format = format ?? SplatFormat(path: source.name) ?? sniffed else {
            throw SplatFileError(
                .badMagic, file: source.name, offset: 0,
                "cannot tell the format: name it with an extension (.ply, .spz, .splat) or --from")
        }
        switch format {
        case .ply:
            let (cloud, header) = try PLYReader.read(source, limits: limits, progress: progress)
            return (cloud, .init(format: .ply, variant: header.format.rawValue, plyHeader: header))
        case .spz:
            let (cloud, info) = try SPZReader.read(source, limits: limits, progress: progress)
            let container = info.version >= 4 ? "NGSP + zstd" : "gzip"
            return (cloud, .init(format: .spz, variant: "SPZ v\(info.version) (\(container))", spz: info))
        case .splat:
            if sniffed == .ply || sniffed == .spz {
                throw SplatFileError(
                    .badMagic, file: source.name, offset: 0,
                    "named .splat but holds \(sniffed!.rawValue.uppercased()) data: rename it or pass --from")
            }
            let cloud = try DotSplatFormat.read(source, limits: limits, progress: progress)
            return (cloud, .init(format: .splat, variant: "32-byte records"))
        }
    }

    public static func write(
        _ cloud: GaussianCloud, to sink: OutputSink, format: SplatFormat, options: SplatWriteOptions = .init(),
        progress: ProgressHandler? = nil
    ) throws(SplatFileError) {
        switch format {
        case .ply: try PLYWriter.write(cloud, to: sink, progress: progress)
        case .spz: try SPZWriter.write(cloud, to: sink, options: options.spz, progress: progress)
        case .splat:
            // .splat has no frame field; its readers assume RDF (as this reader does).
            try DotSplatFormat.write(cloud.frame == .rdf ? cloud : cloud.converted(to: .rdf), to: sink, progress: progress)
        }
    }

    /// Writes to `path` atomically: the file appears complete or not at all.
    public static func write(
        _ cloud: GaussianCloud, toPath path: String, format: SplatFormat? = nil, options: SplatWriteOptions = .init(),
        durable: Bool = true,
        progress: ProgressHandler? = nil
    ) throws(SplatFileError) {
        guard let format = format ?? SplatFormat(path: path) else {
            throw SplatFileError(
                .unsupported, file: path, "cannot tell the output format: use .ply, .spz or .splat, or --to")
        }
        let output = try AtomicFileOutput(path: path, durable: durable)
        try write(cloud, to: output, format: format, options: options, progress: progress)
        try output.commit()
    }
}
