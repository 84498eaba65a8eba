import FoundationEssentials

/// Any JSON value, for bodies read field by field (strict APIs that name unknown or mistyped fields).
enum JSONValue: Codable, Equatable {
    case null, bool(Bool), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    var text: String? { if case .string(let s) = self { s } else { nil } }

    /// A strict API's refusal of the fields of `object` it does not know (a 400 naming them, and the known ones).
    static func refuseUnknownFields(of object: [String: JSONValue], known: Set<String>) throws(ServiceError) {
        let unknown = object.keys.filter { !known.contains($0) }.sorted()
        guard unknown.isEmpty else {
            throw ServiceError(
                400, "unknown field\(unknown.count == 1 ? "" : "s") \(unknown.prefix(10).joined(separator: ", ")); known: \(known.sorted().joined(separator: ", "))")
        }
    }
    var integer: Int? { if case .number(let n) = self, n == n.rounded(), abs(n) < 1e15 { Int(n) } else { nil } }
}
