/// Why a checkpoint could not be read or written: names the file and, where known, the tensor and byte offset.
public struct CheckpointError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The file ends before its structure says it should.
        case truncated
        /// A header or directory that does not parse or contradicts itself.
        case invalidHeader
        /// Data offsets outside the file or a storage, or overlapping.
        case outOfBounds
        /// A dtype and shape that do not match the bytes given, or an unknown dtype.
        case dtypeMismatch
        /// A pickle opcode or class outside what state dicts use; nothing from the file is executed.
        case unsupportedPickle
        /// A format Diorama does not read (legacy PyTorch, compressed zip entries).
        case unsupportedFormat
        /// A file or archive entry that an index or pickle names but that is not there.
        case missingEntry
        case io
    }

    public var kind: Kind
    public var file: String
    public var tensor: String?
    public var offset: Int?
    public var message: String

    public init(_ kind: Kind, file: String, tensor: String? = nil, offset: Int? = nil, _ message: String) {
        self.kind = kind
        self.file = file
        self.tensor = tensor
        self.offset = offset
        self.message = message
    }

    public var description: String {
        var place = file
        if let offset { place += " at byte \(offset)" }
        if let tensor { place += " (tensor '\(tensor)')" }
        return "\(place): \(message)"
    }
}
