import Parallelism
import CZlib

/// gzip (RFC 1952) through the system zlib.
enum Gzip {
    static let magic: [UInt8] = [0x1F, 0x8B]

    /// Inflates the first gzip member of `source[range]`, reading the input in chunks.
    ///
    /// Once the first `headerBytes` bytes are out, `limit(header)` returns the largest payload the header can
    /// justify; more output than that is an error, so a lying header cannot make the reader allocate beyond what the
    /// data really holds.
    static func decompress(
        _ source: InputSource, range: Range<Int64>, headerBytes: Int,
        limit: ([UInt8]) throws(SplatFileError) -> Int
    ) throws(SplatFileError) -> [UInt8] {
        var stream = z_stream()
        guard inflateInit2_(&stream, 16 + MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw SplatFileError(.io, file: source.name, "zlib could not start")
        }
        defer { inflateEnd(&stream) }
        let inputCapacity = Int(min(Int64(4 << 20), max(1, Int64(range.count))))
        let input = UnsafeMutableRawBufferPointer.allocate(byteCount: inputCapacity, alignment: 16)
        defer { input.deallocate() }
        let chunkCapacity = 4 << 20
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkCapacity, alignment: 16)
        defer { chunk.deallocate() }

        var nextRead = range.lowerBound
        var output: [UInt8] = []
        var cap: Int? = nil
        while true {
            if stream.avail_in == 0 {
                let n = Int(min(Int64(inputCapacity), range.upperBound - nextRead))
                guard n > 0 else {
                    throw SplatFileError(
                        .truncated, file: source.name, offset: range.upperBound,
                        "the gzip stream ends early (\(output.count) bytes decompressed)")
                }
                try source.read(at: nextRead, into: UnsafeMutableRawBufferPointer(rebasing: input[0..<n]))
                nextRead += Int64(n)
                stream.next_in = input.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.avail_in = UInt32(n)
            }
            // Stop at the header's end first, so the ceiling is known before anything large is kept.
            let room = cap == nil ? headerBytes - output.count : chunkCapacity
            stream.next_out = chunk.baseAddress!.assumingMemoryBound(to: Bytef.self)
            stream.avail_out = UInt32(room)
            let result = inflate(&stream, Z_NO_FLUSH)
            let produced = room - Int(stream.avail_out)
            output.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[0..<produced]))
            if cap == nil && output.count == headerBytes {
                let ceiling = try limit(output)
                cap = ceiling
                output.reserveCapacity(min(ceiling, Int(range.count) * 8))
            }
            if let cap, output.count > cap {
                throw SplatFileError(
                    .corruptData, file: source.name,
                    "the gzip payload is larger than its header allows (\(cap) bytes)")
            }
            switch result {
            case Z_STREAM_END:
                if cap == nil {
                    throw SplatFileError(
                        .truncated, file: source.name,
                        "the payload is \(output.count) bytes, shorter than its \(headerBytes)-byte header")
                }
                return output
            case Z_OK: continue
            case Z_BUF_ERROR where stream.avail_in == 0: continue
            default:
                let message = stream.msg.map { String(cString: $0) } ?? "zlib error \(result)"
                throw SplatFileError(
                    .corruptData, file: source.name,
                    offset: range.lowerBound + Int64(stream.total_in),
                    "the gzip stream is corrupt: \(message)")
            }
        }
    }

    /// Compresses `payload` into one gzip member, on all cores: the payload is cut into blocks, each deflated with
    /// the previous block's last 32 KiB as its dictionary and ended by a sync flush, so the concatenation is one valid
    /// deflate stream (the pigz method). The decompressed bytes are exactly `payload`.
    static func compress(
        _ payload: UnsafeRawBufferPointer, level: Int32 = Z_DEFAULT_COMPRESSION, to sink: OutputSink,
        progress: ProgressHandler? = nil
    ) throws(SplatFileError) {
        let blockSize = 1 << 20
        let blockCount = max(1, (payload.count + blockSize - 1) / blockSize)
        var header: [UInt8] = [0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3]  // deflate, no name, no mtime, Unix
        try sink.write(header)
        header.removeAll()

        // Compress in waves of a few blocks per core, writing each wave in order, to bound memory.
        let wave = max(2, activeProcessorCount * 4)
        var crc = crc32(0, nil, 0)
        var failed: Int32 = Z_OK
        var first = 0
        while first < blockCount {
            let last = min(blockCount, first + wave)
            var outputs = [[UInt8]](repeating: [], count: last - first)
            var crcs = [uLong](repeating: 0, count: last - first)
            var statuses = [Int32](repeating: Z_OK, count: last - first)
            let base = UncheckedSendable(payload)
            outputs.withUnsafeMutableBufferPointer { outs in
                crcs.withUnsafeMutableBufferPointer { crcOut in
                    statuses.withUnsafeMutableBufferPointer { statusOut in
                        let shared = UncheckedSendable((outs, crcOut, statusOut))
                        parallelFor(last - first) { k in
                            let b = first + k
                            let start = b * blockSize
                            let end = min(payload.count, start + blockSize)
                            let block = UnsafeRawBufferPointer(rebasing: base.value[start..<end])
                            let dictionaryStart = max(0, start - 32768)
                            let dictionary = UnsafeRawBufferPointer(rebasing: base.value[dictionaryStart..<start])
                            let (bytes, status) = deflateBlock(
                                block, dictionary: dictionary, level: level, isLast: b == blockCount - 1)
                            shared.value.0[k] = bytes
                            shared.value.2[k] = status
                            shared.value.1[k] = crc32(
                                0, block.baseAddress.map { UnsafePointer($0.assumingMemoryBound(to: Bytef.self)) },
                                uInt(block.count))
                        }
                    }
                }
            }
            for k in 0..<(last - first) {
                if statuses[k] != Z_OK { failed = statuses[k] }
                let start = (first + k) * blockSize
                let length = min(payload.count, start + blockSize) - start
                crc = crc32_combine(crc, crcs[k], off_t(length))
                try sink.write(outputs[k])
            }
            guard failed == Z_OK else {
                throw SplatFileError(.io, file: sink.name, "zlib failed to compress (status \(failed))")
            }
            progress?(Int64(min(payload.count, last * blockSize)), Int64(payload.count))
            first = last
        }
        let size = UInt32(truncatingIfNeeded: payload.count)
        let c = UInt32(truncatingIfNeeded: crc)
        try sink.write([
            UInt8(c & 0xFF), UInt8(c >> 8 & 0xFF), UInt8(c >> 16 & 0xFF), UInt8(c >> 24),
            UInt8(size & 0xFF), UInt8(size >> 8 & 0xFF), UInt8(size >> 16 & 0xFF), UInt8(size >> 24),
        ])
    }

    private static func deflateBlock(
        _ block: UnsafeRawBufferPointer, dictionary: UnsafeRawBufferPointer, level: Int32, isLast: Bool
    ) -> ([UInt8], Int32) {
        var stream = z_stream()
        // Raw deflate (negative window bits) with memLevel 9, as the reference SPZ writer configures zlib.
        var status = deflateInit2_(
            &stream, level, Z_DEFLATED, -MAX_WBITS, 9, Z_DEFAULT_STRATEGY, ZLIB_VERSION,
            Int32(MemoryLayout<z_stream>.size))
        guard status == Z_OK else { return ([], status) }
        defer { deflateEnd(&stream) }
        if dictionary.count > 0 {
            status = deflateSetDictionary(
                &stream, dictionary.baseAddress!.assumingMemoryBound(to: Bytef.self), uInt(dictionary.count))
            guard status == Z_OK else { return ([], status) }
        }
        let bound = Int(deflateBound(&stream, uLong(block.count))) + 64
        var out = [UInt8](repeating: 0, count: bound)
        let produced: Int32 = out.withUnsafeMutableBytes { ob in
            // zlib never writes through next_in; an empty block points at the output so the pointer is valid.
            stream.next_in = UnsafeMutablePointer(
                mutating: (block.baseAddress ?? UnsafeRawPointer(ob.baseAddress!)).assumingMemoryBound(to: Bytef.self))
            stream.avail_in = uInt(block.count)
            stream.next_out = ob.baseAddress!.assumingMemoryBound(to: Bytef.self)
            stream.avail_out = uInt(ob.count)
            let r = deflate(&stream, isLast ? Z_FINISH : Z_SYNC_FLUSH)
            let ok = isLast ? (r == Z_STREAM_END) : (r == Z_OK && stream.avail_in == 0)
            return ok ? Z_OK : (r == Z_OK ? Z_BUF_ERROR : r)
        }
        guard produced == Z_OK else { return ([], produced) }
        out.removeLast(Int(stream.avail_out))
        return (out, Z_OK)
    }
}
