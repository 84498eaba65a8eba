/// Why a splat file could not be read or written, with where: the file, the byte offset and the field when known.
public struct SplatFileError: Error, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Equatable {
        /// The file ends before the data its header promises.
        case truncated
        /// The first bytes are not those of the format.
        case badMagic
        case unsupportedVersion
        /// A header line or field that cannot be parsed or makes no sense.
        case invalidHeader
        /// A count whose data could not fit in the file.
        case countExceedsFileSize
        /// NaN or an infinity where a finite number is required.
        case nonFiniteValue
        /// A compressed stream that does not decompress, or decompresses to the wrong size.
        case corruptData
        /// Bytes after the end of the data.
        case trailingData
        /// A cloud or option the format cannot store.
        case unsupported
        /// The operating system refused (missing file, permissions, full disk).
        case io
        /// The caller stopped the work.
        case cancelled
    }

    public var kind: Kind
    public var file: String
    public var offset: Int64?
    public var field: String?
    public var message: String

    public init(_ kind: Kind, file: String, offset: Int64? = nil, field: String? = nil, _ message: String) {
        self.kind = kind
        self.file = file
        self.offset = offset
        self.field = field
        self.message = message
    }

    public var description: String {
        var place = file
        if let offset { place += " at byte \(offset)" }
        if let field { place += " (\(field))" }
        return "\(place): \(message)"
    }
}
