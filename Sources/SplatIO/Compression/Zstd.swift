import CZstd

/// Zstandard frames through the system libzstd.
enum Zstd {
    /// Decompresses one frame into `destination`, which must be filled exactly: less output, more output, or bytes
    /// after the frame are errors.
    static func decompress(
        _ compressed: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer, file: String,
        offset: Int64, field: String
    ) throws(SplatFileError) {
        guard let stream = ZSTD_createDStream() else { throw SplatFileError(.io, file: file, "zstd could not start") }
        defer { ZSTD_freeDStream(stream) }
        var input = ZSTD_inBuffer(src: compressed.baseAddress, size: compressed.count, pos: 0)
        var output = ZSTD_outBuffer(dst: destination.baseAddress, size: destination.count, pos: 0)
        while true {
            let r = ZSTD_decompressStream(stream, &output, &input)
            if ZSTD_isError(r) != 0 {
                throw SplatFileError(
                    .corruptData, file: file, offset: offset + Int64(input.pos), field: field,
                    "the zstd stream is corrupt: \(String(cString: ZSTD_getErrorName(r)))")
            }
            if r == 0 { break }  // frame complete
            if output.pos == output.size {
                // Full, yet the frame is not finished: it holds more than the TOC says.
                var probe: UInt8 = 0
                let more = withUnsafeMutablePointer(to: &probe) { p -> Int in
                    var extra = ZSTD_outBuffer(dst: p, size: 1, pos: 0)
                    _ = ZSTD_decompressStream(stream, &extra, &input)
                    return extra.pos
                }
                if more > 0 || input.pos == input.size {
                    throw SplatFileError(
                        .corruptData, file: file, offset: offset, field: field,
                        "the zstd stream holds more than the \(destination.count) bytes its table of contents gives")
                }
            } else if input.pos == input.size {
                throw SplatFileError(
                    .truncated, file: file, offset: offset + Int64(input.pos), field: field,
                    "the zstd stream ends after \(output.pos) of \(destination.count) bytes")
            }
        }
        guard output.pos == destination.count else {
            throw SplatFileError(
                .corruptData, file: file, offset: offset, field: field,
                "the zstd stream holds \(output.pos) bytes where its table of contents gives \(destination.count)")
        }
        guard input.pos == input.size else {
            throw SplatFileError(
                .corruptData, file: file, offset: offset + Int64(input.pos), field: field,
                "\(input.size - input.pos) bytes follow the zstd frame inside its stream")
        }
    }

    /// Compresses `data` at `level` into one frame, using `workers` threads inside libzstd when it was built with
    /// them (the output is one frame either way).
    static func compress(_ data: UnsafeRawBufferPointer, level: Int32, workers: Int) -> [UInt8]? {
        guard let context = ZSTD_createCCtx() else { return nil }
        defer { ZSTD_freeCCtx(context) }
        _ = ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, level)
        if workers > 1 { _ = ZSTD_CCtx_setParameter(context, ZSTD_c_nbWorkers, Int32(workers)) }
        _ = ZSTD_CCtx_setPledgedSrcSize(context, UInt64(data.count))
        let bound = ZSTD_compressBound(data.count)
        var out = [UInt8](repeating: 0, count: bound)
        let size = out.withUnsafeMutableBytes { o in
            ZSTD_compress2(context, o.baseAddress, o.count, data.baseAddress, data.count)
        }
        guard ZSTD_isError(size) == 0 else { return nil }
        out.removeLast(bound - size)
        return out
    }
}
