import CZlib

/// Writes 8-bit PNG images (grey, grey+alpha, RGB, RGBA) with per-row adaptive filtering, the heuristic libpng uses:
/// the filter whose output has the smallest sum of absolute signed bytes.
public enum PNGEncoder {
    /// The largest side PNG allows is 2³¹−1; this keeps memory sane.
    public static let maxSide = 1 << 16

    /// Encodes `pixels` (row-major, `channels` bytes per pixel, no padding) as a PNG file.
    public static func encode(
        width: Int, height: Int, channels: Int, pixels: [UInt8], compressionLevel: Int32 = 6
    ) throws(MediaError) -> [UInt8] {
        guard (1...4).contains(channels) else {
            throw MediaError(.invalidImage, "PNG images have 1 to 4 channels, not \(channels)")
        }
        guard width > 0 && height > 0 && width <= maxSide && height <= maxSide else {
            throw MediaError(.invalidImage, "image size \(width)x\(height) is outside 1...\(maxSide)")
        }
        guard pixels.count == width * height * channels else {
            throw MediaError(.invalidImage, "\(pixels.count) bytes of pixels for a \(width)x\(height)x\(channels) image, which needs \(width * height * channels)")
        }
        let colorType: UInt8 = [0, 4, 2, 6][channels - 1]
        var header: [UInt8] = []
        header.appendBigEndian(UInt32(width))
        header.appendBigEndian(UInt32(height))
        header += [8, colorType, 0, 0, 0]

        let filtered = filteredRows(width: width, height: height, channels: channels, pixels: pixels)
        let compressed = try deflate(filtered, level: compressionLevel)

        var file: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        appendChunk("IHDR", header, to: &file)
        appendChunk("IDAT", compressed, to: &file)
        appendChunk("IEND", [], to: &file)
        return file
    }

    /// Each row prefixed by its filter byte, filtered.
    static func filteredRows(width: Int, height: Int, channels: Int, pixels: [UInt8]) -> [UInt8] {
        let stride = width * channels
        var out = [UInt8](repeating: 0, count: height * (stride + 1))
        var candidate = [UInt8](repeating: 0, count: stride)
        var best = [UInt8](repeating: 0, count: stride)
        pixels.withUnsafeBufferPointer { src in
            for y in 0..<height {
                let row = src.baseAddress! + y * stride
                let above: UnsafePointer<UInt8>? = y > 0 ? row - stride : nil
                var bestFilter: UInt8 = 0
                var bestCost = Int.max
                for filter in UInt8(0)...4 {
                    var cost = 0
                    for i in 0..<stride {
                        let a = i >= channels ? Int(row[i - channels]) : 0
                        let b = above.map { Int($0[i]) } ?? 0
                        let c = (i >= channels ? above.map { Int($0[i - channels]) } : nil) ?? 0
                        let predicted: Int
                        switch filter {
                        case 0: predicted = 0
                        case 1: predicted = a
                        case 2: predicted = b
                        case 3: predicted = (a + b) / 2
                        default: predicted = paeth(a, b, c)
                        }
                        let v = UInt8(truncatingIfNeeded: Int(row[i]) - predicted)
                        candidate[i] = v
                        cost += v < 128 ? Int(v) : 256 - Int(v)
                    }
                    if cost < bestCost {
                        bestCost = cost
                        bestFilter = filter
                        swap(&best, &candidate)
                    }
                }
                let base = y * (stride + 1)
                out[base] = bestFilter
                for i in 0..<stride { out[base + 1 + i] = best[i] }
            }
        }
        return out
    }

    @inline(__always) static func paeth(_ a: Int, _ b: Int, _ c: Int) -> Int {
        let p = a + b - c
        let pa = abs(p - a), pb = abs(p - b), pc = abs(p - c)
        if pa <= pb && pa <= pc { return a }
        return pb <= pc ? b : c
    }

    /// A zlib stream (PNG's IDAT payload).
    static func deflate(_ data: [UInt8], level: Int32) throws(MediaError) -> [UInt8] {
        var bound = Int(compressBound(uLong(data.count)))
        var out = [UInt8](repeating: 0, count: bound)
        let status = out.withUnsafeMutableBufferPointer { o in
            data.withUnsafeBufferPointer { i in
                var length = uLongf(bound)
                let s = compress2(o.baseAddress, &length, i.baseAddress, uLong(data.count), level)
                bound = Int(length)
                return s
            }
        }
        guard status == Z_OK else { throw MediaError(.invalidImage, "zlib could not compress the image (status \(status))") }
        out.removeSubrange(bound...)
        return out
    }

    static func appendChunk(_ type: String, _ data: [UInt8], to file: inout [UInt8]) {
        file.appendBigEndian(UInt32(data.count))
        let typeBytes = Array(type.utf8)
        var crc = crc32(0, nil, 0)
        crc = typeBytes.withUnsafeBufferPointer { crc32(crc, $0.baseAddress, uInt($0.count)) }
        // zlib treats a null buffer as "reset", so an empty chunk must not reach it.
        if !data.isEmpty { crc = data.withUnsafeBufferPointer { crc32(crc, $0.baseAddress, uInt($0.count)) } }
        file += typeBytes
        file += data
        file.appendBigEndian(UInt32(truncatingIfNeeded: crc))
    }
}

extension [UInt8] {
    mutating func appendBigEndian(_ v: UInt32) {
        append(UInt8(v >> 24))
        append(UInt8((v >> 16) & 0xFF))
        append(UInt8((v >> 8) & 0xFF))
        append(UInt8(v & 0xFF))
    }
}
