/// Why an image or video could not be written.
public struct MediaError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// Pixel data whose size does not match the stated dimensions, or dimensions out of range.
        case invalidImage
        /// The `ffmpeg` program is not installed.
        case encoderMissing
        /// The encoder failed or stopped early.
        case encoderFailed
        /// A file could not be written, renamed or removed.
        case io
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}
