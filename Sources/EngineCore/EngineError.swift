/// Why an engine operation failed. Messages name the op, the shapes and the fix.
public struct EngineError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// Shapes, ranks or axes that do not fit the op.
        case shapeMismatch
        /// An element type the op or backend does not take.
        case unsupportedDType
        /// An op the backend does not implement.
        case unsupportedOp
        /// The allocator could not find the memory, even after dropping its cache.
        case outOfMemory
        /// A device or driver call failed, or no such device exists.
        case device
        /// An argument out of range.
        case invalidArgument
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}
