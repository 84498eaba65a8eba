/// Portable float maps: one float32 channel per pixel (`Pf`), little-endian, rows bottom to top as the format
/// stores them. Depth maps go out this way, exactly, with no scale to carry.
public enum PFMEncoder {
    /// `values` are row-major from the top row, `width · height` of them.
    public static func encode(width: Int, height: Int, values: [Float]) throws(MediaError) -> [UInt8] {
        guard width > 0, height > 0, values.count == width * height else {
            throw MediaError(.invalidImage, "a \(width)x\(height) float map needs \(max(0, width * height)) values, not \(values.count)")
        }
        var out = Array("Pf\n\(width) \(height)\n-1.0\n".utf8)
        out.reserveCapacity(out.count + 4 * values.count)
        for row in stride(from: height - 1, through: 0, by: -1) {
            for value in values[(row * width)..<((row + 1) * width)] {
                withUnsafeBytes(of: value.bitPattern.littleEndian) { out += $0 }
            }
        }
        return out
    }

    /// The values of a `Pf` map (any endianness), top row first, with its size; nil for anything else.
    public static func decode(_ bytes: [UInt8]) -> (width: Int, height: Int, values: [Float])? {
        var lines: [String] = [], at = 0
        while lines.count < 3, at < bytes.count {
            guard let end = bytes[at...].firstIndex(of: 0x0A) else { return nil }
            lines.append(String(decoding: bytes[at..<end], as: UTF8.self))
            at = end + 1
        }
        let size = lines.count == 3 ? lines[1].split(separator: " ").compactMap { Int($0) } : []
        guard lines.first == "Pf", size.count == 2, let scale = Double(lines[2]), size[0] > 0, size[1] > 0,
            bytes.count - at == 4 * size[0] * size[1]
        else { return nil }
        let (width, height) = (size[0], size[1])
        var values = [Float](repeating: 0, count: width * height)
        for i in 0..<(width * height) {
            let b = bytes[(at + 4 * i)..<(at + 4 * i + 4)].reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            let bits = scale < 0 ? b : b.byteSwapped
            let (row, column) = (height - 1 - i / width, i % width)
            values[row * width + column] = Float(bitPattern: bits)
        }
        return (width, height, values)
    }
}
