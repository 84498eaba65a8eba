import Parallelism
import SplatCore

#if canImport(Glibc)
    import Glibc
#endif

/// Reads Gaussian splats from PLY: ASCII and binary of either byte order, any scalar type, properties found by name.
///
/// Layouts understood: INRIA 3DGS (`f_dc_0..2` + channel-major `f_rest_*`), the 17- and 14-float variants without
/// SH rest or normals, FlashWorld's 38-float layout naming all 27 SH coefficients `f_dc_*` (coefficient-major), and
/// plain point clouds with `red/green/blue`. Missing fields get defaults: scale 0.01, identity rotation, nearly
/// opaque, grey.
public enum PLYReader {
    public static let defaultLogScale: Float = logf(0.01)
    public static let defaultOpacityLogit: Float = logit(1 - 0.25 / 255)
    /// Logits beyond this are clamped: infinities in opacity (from alpha 0 or 1) and `log(0)` scales carry no more
    /// meaning than a large finite value, and every writer can store it.
    public static let saturationLimit: Float = 30

    public static func read(
        _ source: InputSource, limits: ReadLimits = .init(), progress: ProgressHandler? = nil
    ) throws(SplatFileError) -> (GaussianCloud, PLYHeader) {
        let header = try PLYHeader.read(source)
        guard let vertexIndex = header.elements.firstIndex(where: { $0.name == "vertex" }) else {
            throw SplatFileError(.invalidHeader, file: source.name, field: "element vertex", "the PLY has no vertex element")
        }
        let vertex = header.elements[vertexIndex]
        guard vertex.count <= limits.maxGaussians else {
            throw SplatFileError(
                .invalidHeader, file: source.name, field: "element vertex",
                "the header claims \(vertex.count) vertices, more than the limit of \(limits.maxGaussians)")
        }
        let mapping = try SplatPropertyMapping(vertex, file: source.name, comments: header.comments)
        var cloud = mapping.emptyCloud(count: vertex.count)
        let reader = SequentialReader(source: source, position: Int64(header.byteCount), format: header.format)
        for element in header.elements[..<vertexIndex] { try reader.skip(element) }

        if header.format != .ascii, let rowSize = vertex.fixedRowSize {
            let available = source.size - reader.position
            guard Int64(vertex.count) * Int64(rowSize) <= available else {
                throw SplatFileError(
                    .countExceedsFileSize, file: source.name, offset: reader.position, field: "element vertex",
                    "\(vertex.count) vertices of \(rowSize) bytes need \(Int64(vertex.count) * Int64(rowSize)) bytes; "
                        + "\(available) remain")
            }
            try decodeFixedRows(
                source, at: reader.position, rowSize: rowSize, mapping: mapping, bigEndian: header.format == .binaryBigEndian,
                into: &cloud, progress: progress)
        } else {
            // ASCII and list-bearing rows: each value needs at least one byte (two in ASCII), which bounds the count.
            let minimumRow = Int64(vertex.properties.count) * (header.format == .ascii ? 2 : 1)
            guard Int64(vertex.count) * minimumRow <= source.size - reader.position else {
                throw SplatFileError(
                    .countExceedsFileSize, file: source.name, offset: reader.position, field: "element vertex",
                    "\(vertex.count) vertices cannot fit in the \(source.size - reader.position) bytes that remain")
            }
            try decodeRowByRow(reader, vertex: vertex, mapping: mapping, into: &cloud, progress: progress)
        }
        return (cloud, header)
    }

    // MARK: Fixed-size binary rows: the fast path, decoded on every core

    private static func decodeFixedRows(
        _ source: InputSource, at start: Int64, rowSize: Int, mapping: SplatPropertyMapping, bigEndian: Bool,
        into cloud: inout GaussianCloud, progress: ProgressHandler?
    ) throws(SplatFileError) {
        let count = cloud.count
        let blockRows = max(1, (1 << 20) / max(rowSize, 1))
        let blockCount = (count + blockRows - 1) / blockRows
        let wave = activeProcessorCount * 4
        try cloud.withColumns { (columns) throws(SplatFileError) in
            var b = 0
            while b < blockCount {
                let end = min(blockCount, b + wave)
                var errors = [SplatFileError?](repeating: nil, count: end - b)
                let first = b
                errors.withUnsafeMutableBufferPointer { errs in
                    let e = UncheckedSendable(errs)
                    parallelFor(end - first) { k in
                        let block = first + k
                        let rows = (block * blockRows)..<min(count, (block + 1) * blockRows)
                        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: rows.count * rowSize, alignment: 16)
                        defer { buffer.deallocate() }
                        do throws(SplatFileError) {
                            try source.read(at: start + Int64(rows.lowerBound) * Int64(rowSize), into: buffer)
                            try mapping.decode(
                                UnsafeRawBufferPointer(buffer), rows: rows, rowSize: rowSize, bigEndian: bigEndian,
                                into: columns, file: source.name, dataStart: start)
                        } catch { e.value[k] = error }
                    }
                }
                if let error = errors.compactMap({ $0 }).first { throw error }
                b = end
                progress?(Int64(min(count, b * blockRows)), Int64(count))
            }
        }
    }

    // MARK: ASCII, and rows with lists

    private static func decodeRowByRow(
        _ reader: SequentialReader, vertex: PLYHeader.Element, mapping: SplatPropertyMapping,
        into cloud: inout GaussianCloud, progress: ProgressHandler?
    ) throws(SplatFileError) {
        var values = [Double](repeating: 0, count: vertex.properties.count)
        try cloud.withColumns { (columns) throws(SplatFileError) in
        for row in 0..<vertex.count {
            let rowStart = reader.position
            for (p, property) in vertex.properties.enumerated() {
                if let countType = property.listCountType {
                    let n = try reader.value(countType, field: property.name)
                    guard n >= 0, n <= Double(1 << 20), n == n.rounded() else {
                        throw SplatFileError(
                            .invalidHeader, file: reader.source.name, offset: reader.position, field: property.name,
                            "list length \(n) is invalid")
                    }
                    for _ in 0..<Int(n) { _ = try reader.value(property.type, field: property.name) }
                } else {
                    values[p] = try reader.value(property.type, field: property.name)
                }
            }
            try mapping.store(values, row: row, into: columns, file: reader.source.name, rowOffset: rowStart)
            if row & 0xFFFF == 0xFFFF { progress?(Int64(row), Int64(vertex.count)) }
        }
        }
        progress?(Int64(vertex.count), Int64(vertex.count))
    }
}

/// Reads a PLY body in order through a buffer: ASCII tokens, or binary values of either byte order.
final class SequentialReader {
    let source: InputSource
    private(set) var position: Int64
    let format: PLYHeader.Format
    private var buffer: [UInt8] = []
    private var bufferStart: Int64 = 0

    init(source: InputSource, position: Int64, format: PLYHeader.Format) {
        self.source = source
        self.position = position
        self.format = format
    }

    /// Makes at least `n` bytes from `position` available if the file has them; returns how many are.
    private func fill(_ n: Int) throws(SplatFileError) -> Int {
        let have = Int(bufferStart + Int64(buffer.count) - position)
        if position >= bufferStart && have >= n { return have }
        let want = Int(min(Int64(max(n, 1 << 20)), source.size - position))
        buffer = want > 0 ? try source.bytes(at: position, count: want) : []
        bufferStart = position
        return buffer.count
    }

    func skip(_ element: PLYHeader.Element) throws(SplatFileError) {
        if format != .ascii, let size = element.fixedRowSize {
            let bytes = Int64(element.count) * Int64(size)
            guard bytes <= source.size - position else {
                throw SplatFileError(
                    .countExceedsFileSize, file: source.name, offset: position, field: "element \(element.name)",
                    "\(element.count) rows of \(size) bytes run past the end of the file")
            }
            position += bytes
            return
        }
        for _ in 0..<element.count {
            for property in element.properties {
                if let countType = property.listCountType {
                    let n = try value(countType, field: property.name)
                    guard n >= 0, n <= Double(1 << 24), n == n.rounded() else {
                        throw SplatFileError(
                            .invalidHeader, file: source.name, offset: position, field: property.name,
                            "list length \(n) is invalid")
                    }
                    for _ in 0..<Int(n) { _ = try value(property.type, field: property.name) }
                } else {
                    _ = try value(property.type, field: property.name)
                }
            }
        }
    }

    func value(_ type: PLYHeader.ScalarType, field: String) throws(SplatFileError) -> Double {
        if format == .ascii { return try token(field: field) }
        let width = type.byteWidth
        guard try fill(width) >= width else {
            throw SplatFileError(.truncated, file: source.name, offset: position, field: field, "the file ends inside a value")
        }
        let v = buffer.withUnsafeBytes { b in
            loadScalar(b.baseAddress! + Int(position - bufferStart), type, bigEndian: format == .binaryBigEndian)
        }
        position += Int64(width)
        return v
    }

    private func token(field: String) throws(SplatFileError) -> Double {
        // Skip white space.
        while true {
            guard try fill(1) >= 1 else {
                throw SplatFileError(.truncated, file: source.name, offset: position, field: field, "the file ends before a value")
            }
            let c = buffer[Int(position - bufferStart)]
            if c == 32 || c == 9 || c == 10 || c == 13 { position += 1 } else { break }
        }
        let start = position
        var text: [UInt8] = []
        while try fill(1) >= 1 {
            let c = buffer[Int(position - bufferStart)]
            if c == 32 || c == 9 || c == 10 || c == 13 { break }
            text.append(c)
            position += 1
            guard text.count <= 64 else {
                throw SplatFileError(.invalidHeader, file: source.name, offset: start, field: field, "a value over 64 characters")
            }
        }
        guard let string = String(validating: text, as: UTF8.self), let v = Double(string) else {
            throw SplatFileError(
                .invalidHeader, file: source.name, offset: start, field: field,
                "'\(String(decoding: text, as: UTF8.self))' is not a number")
        }
        return v
    }
}

@inline(__always)
func loadScalar(_ p: UnsafeRawPointer, _ type: PLYHeader.ScalarType, bigEndian: Bool) -> Double {
    switch type {
    case .int8: return Double(p.load(as: Int8.self))
    case .uint8: return Double(p.load(as: UInt8.self))
    case .int16:
        let v = p.loadUnaligned(as: UInt16.self)
        return Double(Int16(bitPattern: bigEndian ? v.byteSwapped : v))
    case .uint16:
        let v = p.loadUnaligned(as: UInt16.self)
        return Double(bigEndian ? v.byteSwapped : v)
    case .int32:
        let v = p.loadUnaligned(as: UInt32.self)
        return Double(Int32(bitPattern: bigEndian ? v.byteSwapped : v))
    case .uint32:
        let v = p.loadUnaligned(as: UInt32.self)
        return Double(bigEndian ? v.byteSwapped : v)
    case .float32:
        let v = p.loadUnaligned(as: UInt32.self)
        return Double(Float(bitPattern: bigEndian ? v.byteSwapped : v))
    case .float64:
        let v = p.loadUnaligned(as: UInt64.self)
        return Double(bitPattern: bigEndian ? v.byteSwapped : v)
    }
}
