/// Element types a tensor can hold. The raw values are PyTorch's names, which fixtures and error messages use.
public enum DType: String, Sendable, CaseIterable, Hashable, CustomStringConvertible {
    case float32
    case float16
    case bfloat16
    /// OCP FP8 E4M3 ("fn": finite, no infinities; ±448 at most). Conversions saturate.
    case float8E4M3 = "float8_e4m3fn"
    /// OCP FP8 E5M2 (±57344 at most). Conversions saturate.
    case float8E5M2 = "float8_e5m2"
    case int32
    case int64
    case bool

    public var byteSize: Int {
        switch self {
        case .float32, .int32: 4
        case .float16, .bfloat16: 2
        case .float8E4M3, .float8E5M2, .bool: 1
        case .int64: 8
        }
    }

    public var isFloatingPoint: Bool {
        switch self {
        case .float32, .float16, .bfloat16, .float8E4M3, .float8E5M2: true
        case .int32, .int64, .bool: false
        }
    }

    public var description: String { rawValue }
}

/// A Swift scalar type with a tensor element type.
public protocol HasDType: Sendable {
    static var dtype: DType { get }
}

extension Float: HasDType { public static var dtype: DType { .float32 } }
extension Int32: HasDType { public static var dtype: DType { .int32 } }
extension Int64: HasDType { public static var dtype: DType { .int64 } }
extension Bool: HasDType { public static var dtype: DType { .bool } }
extension Float16: HasDType { public static var dtype: DType { .float16 } }
extension BFloat16: HasDType { public static var dtype: DType { .bfloat16 } }
