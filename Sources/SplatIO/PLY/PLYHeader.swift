/// The header of a PLY file: its format, elements and their properties, parsed without any splat knowledge.
public struct PLYHeader: Sendable, Equatable {
    public enum Format: String, Sendable {
        case ascii
        case binaryLittleEndian = "binary_little_endian"
        case binaryBigEndian = "binary_big_endian"
    }

    public enum ScalarType: String, Sendable, CaseIterable {
        case int8, uint8, int16, uint16, int32, uint32, float32, float64

        init?(plyName: String) {
            switch plyName {
            case "char", "int8": self = .int8
            case "uchar", "uint8": self = .uint8
            case "short", "int16": self = .int16
            case "ushort", "uint16": self = .uint16
            case "int", "int32": self = .int32
            case "uint", "uint32": self = .uint32
            case "float", "float32": self = .float32
            case "double", "float64": self = .float64
            default: return nil
            }
        }

        public var byteWidth: Int {
            switch self {
            case .int8, .uint8: 1
            case .int16, .uint16: 2
            case .int32, .uint32, .float32: 4
            case .float64: 8
            }
        }

        /// The full-scale value of an integer type, used to read integer colours as 0...1.
        var integerMaximum: Double? {
            switch self {
            case .int8: 127
            case .uint8: 255
            case .int16: 32767
            case .uint16: 65535
            case .int32: 2_147_483_647
            case .uint32: 4_294_967_295
            case .float32, .float64: nil
            }
        }
    }

    public struct Property: Sendable, Equatable {
        public var name: String
        public var type: ScalarType
        /// For list properties: the type of the leading count.
        public var listCountType: ScalarType?
    }

    public struct Element: Sendable, Equatable {
        public var name: String
        public var count: Int
        public var properties: [Property]

        /// Bytes per row in a binary file, or nil when a list property makes rows vary.
        public var fixedRowSize: Int? {
            properties.contains { $0.listCountType != nil } ? nil : properties.reduce(0) { $0 + $1.type.byteWidth }
        }
    }

    public var format: Format
    public var elements: [Element]
    public var comments: [String]
    /// Bytes from the start of the file to the first byte of data.
    public var byteCount: Int

    static let maxHeaderBytes = 1 << 20

    /// Parses the header at the start of `source`, reading at most 1 MiB.
    public static func read(_ source: InputSource) throws(SplatFileError) -> PLYHeader {
        let probe = try source.bytes(at: 0, count: Int(min(source.size, Int64(maxHeaderBytes))))
        guard probe.starts(with: Array("ply".utf8)), probe.count > 3, probe[3] == 10 || probe[3] == 13 else {
            throw SplatFileError(.badMagic, file: source.name, offset: 0, "not a PLY file: it does not start with 'ply'")
        }
        guard let end = findEndHeader(probe) else {
            throw SplatFileError(
                probe.count < maxHeaderBytes ? .truncated : .invalidHeader, file: source.name,
                offset: Int64(probe.count), "no 'end_header' line in the first \(probe.count) bytes")
        }
        var format: Format? = nil
        var elements: [Element] = []
        var comments: [String] = []
        var offset = 0
        for rawLine in probe[0..<end.lineStart].split(separator: 10, omittingEmptySubsequences: false) {
            let lineOffset = Int64(offset)
            offset += rawLine.count + 1
            guard let line = String(validating: rawLine, as: UTF8.self) else {
                throw SplatFileError(.invalidHeader, file: source.name, offset: lineOffset, "a header line is not text")
            }
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
            guard let keyword = words.first else { continue }
            func fail(_ message: String) -> SplatFileError {
                SplatFileError(.invalidHeader, file: source.name, offset: lineOffset, field: line, message)
            }
            switch keyword {
            case "ply": continue
            case "comment", "obj_info":
                // The text as written after the keyword and one separator (scene metadata keeps its spaces).
                var rest = line.drop { $0 == " " || $0 == "\t" }.dropFirst(keyword.count)
                if rest.first == " " || rest.first == "\t" { rest = rest.dropFirst() }
                while rest.last == "\r" { rest = rest.dropLast() }
                comments.append(String(rest))
            case "format":
                guard words.count >= 3, let f = Format(rawValue: words[1]) else {
                    throw fail("unknown format line (ascii, binary_little_endian or binary_big_endian)")
                }
                guard words[2] == "1.0" else { throw fail("unsupported PLY version \(words[2])") }
                format = f
            case "element":
                guard words.count == 3, let count = Int(words[2]), count >= 0 else {
                    throw fail("an element line needs a name and a non-negative count")
                }
                elements.append(Element(name: words[1], count: count, properties: []))
            case "property":
                guard !elements.isEmpty else { throw fail("a property before any element") }
                if words.count == 5 && words[1] == "list" {
                    guard let countType = ScalarType(plyName: words[2]), let type = ScalarType(plyName: words[3]) else {
                        throw fail("unknown list property types")
                    }
                    guard countType != .float32 && countType != .float64 else { throw fail("a list count must be an integer") }
                    elements[elements.count - 1].properties.append(
                        Property(name: words[4], type: type, listCountType: countType))
                } else if words.count == 3, let type = ScalarType(plyName: words[1]) {
                    elements[elements.count - 1].properties.append(Property(name: words[2], type: type))
                } else {
                    throw fail("unknown property line")
                }
            default:
                throw fail("unknown header keyword '\(keyword)'")
            }
        }
        guard let format else {
            throw SplatFileError(.invalidHeader, file: source.name, offset: 4, "the header has no format line")
        }
        return PLYHeader(format: format, elements: elements, comments: comments, byteCount: end.dataStart)
    }

    /// Where the `end_header` line starts and where data begins after its line ending.
    private static func findEndHeader(_ bytes: [UInt8]) -> (lineStart: Int, dataStart: Int)? {
        let marker = Array("end_header".utf8)
        var i = 0
        while i + marker.count <= bytes.count {
            if (i == 0 || bytes[i - 1] == 10) && bytes[i..<i + marker.count].elementsEqual(marker) {
                var j = i + marker.count
                while j < bytes.count && (bytes[j] == 32 || bytes[j] == 9) { j += 1 }
                if j < bytes.count && bytes[j] == 13 { j += 1 }
                guard j < bytes.count, bytes[j] == 10 else { return nil }
                return (i, j + 1)
            }
            i += 1
        }
        return nil
    }

    /// The header text for `elements` (all written as given), ending in `end_header\n`.
    static func text(format: Format, comments: [String], elements: [Element]) -> String {
        var lines = ["ply", "format \(format.rawValue) 1.0"]
        lines += comments.map { "comment \($0)" }
        for e in elements {
            lines.append("element \(e.name) \(e.count)")
            for p in e.properties {
                lines.append("property \(p.type.plyName) \(p.name)")
            }
        }
        lines.append("end_header")
        return lines.joined(separator: "\n") + "\n"
    }
}

extension PLYHeader.ScalarType {
    /// The classic PLY type names most readers expect.
    var plyName: String {
        switch self {
        case .int8: "char"
        case .uint8: "uchar"
        case .int16: "short"
        case .uint16: "ushort"
        case .int32: "int"
        case .uint32: "uint"
        case .float32: "float"
        case .float64: "double"
        }
    }
}
