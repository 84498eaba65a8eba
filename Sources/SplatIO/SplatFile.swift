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
    /// Diorama's scene metadata, when the file records it (`SplatMetadata`).
    public var metadata: String?
}

/// Diorama's own scene metadata: one line of JSON (a scene's cameras, a world's chunk placements) that travels inside
/// the file. PLY holds it in `comment diorama <part>` header lines, read back in order and joined (each part at most
/// `plyLineBytes`, as line-based PLY readers such as RPly take lines of at most 1,024 bytes); SPZ in an extension
/// record of type 0xD10A0001 (readers that do not know it skip it by length, as the format asks); .splat has nowhere
/// to keep it.
public enum SplatMetadata {
    public static let plyComment = "diorama"
    public static let spzExtensionType: UInt32 = 0xD10A_0001
    /// The most bytes a document may take (an SPZ reader's extension ceiling is 1 MiB).
    public static let maxBytes = 512 << 10
    /// The most bytes of a document one PLY comment line carries.
    public static let plyLineBytes = 900

    /// `metadata` cut into parts of at most `plyLineBytes`, between characters.
    static func plyLines(_ metadata: String) -> [String] {
        var parts: [String] = [], current = "", bytes = 0
        for character in metadata {
            let size = character.utf8.count
            if bytes + size > plyLineBytes, !current.isEmpty {
                parts.append(current)
                (current, bytes) = ("", 0)
            }
            current.append(character)
            bytes += size
        }
        if !current.isEmpty { parts.append(current) }
        return parts
    }

    /// The document a PLY header's comments hold, if any: its `diorama` lines joined in order.
    static func fromPLY(_ comments: [String]) -> String? {
        let parts = comments.compactMap { comment -> String? in
            guard comment.hasPrefix(plyComment + " ") else { return nil }
            return String(comment.dropFirst(plyComment.count + 1))
        }
        return parts.isEmpty ? nil : parts.joined()
    }

    static func check(_ metadata: String?, file: String) throws(SplatFileError) {
        guard let metadata else { return }
        // Bytes, not characters: "\r\n" is one character.
        guard !metadata.utf8.contains(where: { $0 == 10 || $0 == 13 }) else {
            throw SplatFileError(.unsupported, file: file, field: "metadata", "scene metadata must be one line (compact JSON)")
        }
        guard metadata.utf8.count <= maxBytes else {
            throw SplatFileError(.unsupported, file: file, field: "metadata", "scene metadata is \(metadata.utf8.count) bytes; at most \(maxBytes) fit")
        }
    }
}

/// Options for writing any format.
public struct SplatWriteOptions: Sendable {
    public var spz = SPZWriteOptions()
    /// Written into PLY and SPZ files (`SplatMetadata`); .splat drops it.
    public var metadata: String?
    public init(spz: SPZWriteOptions = .init(), metadata: String? = nil) {
        self.spz = spz
        self.metadata = metadata
    }
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
            return (cloud, .init(format: .ply, variant: header.format.rawValue, plyHeader: header, metadata: SplatMetadata.fromPLY(header.comments)))
        case .spz:
            let (cloud, info) = try SPZReader.read(source, limits: limits, progress: progress)
            let container = info.version >= 4 ? "NGSP + zstd" : "gzip"
            return (cloud, .init(format: .spz, variant: "SPZ v\(info.version) (\(container))", spz: info, metadata: info.metadata))
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
        case .ply: try PLYWriter.write(cloud, to: sink, metadata: options.metadata, progress: progress)
        case .spz: try SPZWriter.write(cloud, to: sink, options: options.spz, metadata: options.metadata, progress: progress)
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
