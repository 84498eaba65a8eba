import Parallelism
import SplatCore

#if canImport(Glibc)
    import Glibc
#endif

/// The packed attribute streams of an SPZ file, laid out as the legacy payload: a 16-byte header, then positions,
/// alphas, colors, scales, rotations and SH, each attribute-major, then extension records.
struct SPZPayload {
    var bytes: [UInt8]
    /// Byte ranges of the six attribute streams inside `bytes`.
    var streams: [Range<Int>]
    var extensions: Range<Int>
}

enum SPZCodec {
    // MARK: Packing (exactly the reference's arithmetic, in Float, so the bytes match it)

    @inline(__always) static func toUInt8(_ x: Float) -> UInt8 {
        UInt8(min(max(x.rounded(.toNearestOrAwayFromZero), 0), 255))
    }

    @inline(__always) static func quantizeSH(_ x: Float, bucket: Int32) -> UInt8 {
        var q = Int32((x * 128).rounded(.toNearestOrAwayFromZero) + 128)
        q = (q + bucket / 2) / bucket * bucket
        return UInt8(min(max(q, 0), 255))
    }

    /// Normalises x, y, z, w (in that order, as the reference sums them).
    @inline(__always) static func normalizedXYZW(_ cloud: UnsafeBufferPointer<Float>, _ i: Int) -> SIMD4<Float> {
        let w = cloud[i * 4], x = cloud[i * 4 + 1], y = cloud[i * 4 + 2], z = cloud[i * 4 + 3]
        let norm = (x * x + y * y + z * z + w * w).squareRoot()
        guard norm > 0, norm.isFinite else { return SIMD4(0, 0, 0, 1) }
        return SIMD4(x / norm, y / norm, z / norm, w / norm)
    }

    /// Packs `cloud` (already validated as finite and within the position range) into the legacy payload layout.
    static func pack(
        _ cloud: GaussianCloud, options: SPZWriteOptions, extensions: [UInt8]
    ) -> SPZPayload {
        let n = cloud.count
        let degree = cloud.shDegree
        let sizes = SPZLayout.attributeSizes(version: options.version, shDegree: degree)
        var streams: [Range<Int>] = []
        var offset = SPZLayout.legacyHeaderSize
        for s in sizes {
            streams.append(offset..<offset + s * n)
            offset += s * n
        }
        let extensionRange = offset..<offset + extensions.count
        let total = offset + extensions.count
        var bytes = [UInt8](unsafeUninitializedCapacity: total) { _, c in c = total }

        // Header (the legacy layout; the v4 writer builds its own 32-byte one).
        var header: [UInt8] = []
        header.appendLE32(SPZLayout.magic)
        header.appendLE32(UInt32(options.version))
        header.appendLE32(UInt32(n))
        header.append(UInt8(degree))
        header.append(12)
        header.append((cloud.antialiased ? SPZLayout.flagAntialiased : 0) | (extensions.isEmpty ? 0 : SPZLayout.flagHasExtensions))
        header.append(0)
        bytes.replaceSubrange(0..<16, with: header)
        bytes.replaceSubrange(extensionRange, with: extensions)

        let restCount = SPZLayout.restCoefficients(degree: degree)
        let sh1Bucket = Int32(1) << (8 - options.sh1Bits)
        let restBucket = Int32(1) << (8 - options.shRestBits)
        let smallestThree = options.version >= 3
        let colorFactor = SPZLayout.colorScale * 255
        let shStride = cloud.shStride

        bytes.withUnsafeMutableBytes { out in
            let o = UncheckedSendable(out)
            cloud.positions.withUnsafeBufferPointer { positions in
            cloud.logScales.withUnsafeBufferPointer { scales in
            cloud.rotations.withUnsafeBufferPointer { rotations in
            cloud.logitOpacities.withUnsafeBufferPointer { alphas in
            cloud.sh.withUnsafeBufferPointer { sh in
                let columns = UncheckedSendable((positions, scales, rotations, alphas, sh))
                let parts = ranges(of: n, parts: activeProcessorCount * 4, minimum: 16384)
                parallelFor(parts.count) { part in
                    let out = o.value
                    let (positions, scales, rotations, alphas, sh) = columns.value
                    let pos = out.baseAddress! + streams[0].lowerBound
                    let alp = out.baseAddress! + streams[1].lowerBound
                    let col = out.baseAddress! + streams[2].lowerBound
                    let scl = out.baseAddress! + streams[3].lowerBound
                    let rot = out.baseAddress! + streams[4].lowerBound
                    let shOut = out.baseAddress! + streams[5].lowerBound
                    for i in parts[part] {
                        for c in 0..<3 {
                            let fixed = Int32((positions[i * 3 + c] * 4096).rounded(.toNearestOrAwayFromZero))
                            pos.storeBytes(of: UInt8(truncatingIfNeeded: fixed), toByteOffset: i * 9 + c * 3, as: UInt8.self)
                            pos.storeBytes(of: UInt8(truncatingIfNeeded: fixed >> 8), toByteOffset: i * 9 + c * 3 + 1, as: UInt8.self)
                            pos.storeBytes(of: UInt8(truncatingIfNeeded: fixed >> 16), toByteOffset: i * 9 + c * 3 + 2, as: UInt8.self)
                            scl.storeBytes(of: toUInt8((scales[i * 3 + c] + 10) * 16), toByteOffset: i * 3 + c, as: UInt8.self)
                            col.storeBytes(
                                of: toUInt8(sh[i * shStride + c] * colorFactor + 0.5 * 255), toByteOffset: i * 3 + c,
                                as: UInt8.self)
                        }
                        alp.storeBytes(of: toUInt8(sigmoidF(alphas[i]) * 255), toByteOffset: i, as: UInt8.self)
                        let q = normalizedXYZW(rotations, i)
                        if smallestThree {
                            var largest = 0
                            for k in 1..<4 where abs(q[k]) > abs(q[largest]) { largest = k }
                            let negate: UInt32 = q[largest] < 0 ? 1 : 0
                            var comp = UInt32(largest)
                            for k in 0..<4 where k != largest {
                                let negbit = (q[k] < 0 ? 1 : 0) ^ negate
                                let mag = UInt32(Float(511) * (abs(q[k]) / SPZLayout.sqrt1_2) + 0.5)
                                comp = (comp << 10) | (negbit << 9) | mag
                            }
                            rot.storeBytes(of: comp.littleEndian, toByteOffset: i * 4, as: UInt32.self)
                        } else {
                            let s: Float = q[3] < 0 ? -127.5 : 127.5
                            for k in 0..<3 {
                                rot.storeBytes(of: toUInt8(q[k] * s + 127.5), toByteOffset: i * 3 + k, as: UInt8.self)
                            }
                        }
                        // SH beyond DC: coefficient-major, channel inner, like the cloud (skipping the DC triplet).
                        for k in 0..<restCount {
                            let bucket = k < 3 ? sh1Bucket : restBucket
                            for c in 0..<3 {
                                shOut.storeBytes(
                                    of: quantizeSH(sh[i * shStride + 3 + k * 3 + c], bucket: bucket),
                                    toByteOffset: (i * restCount + k) * 3 + c, as: UInt8.self)
                            }
                        }
                    }
                }
            }}}}}
        }
        return SPZPayload(bytes: bytes, streams: streams, extensions: extensionRange)
    }

    // MARK: Unpacking

    /// Alpha bytes 0 and 255 decode to -inf and +inf in the reference; we stop just short, at logits that still
    /// re-encode to the same byte.
    static let alphaLogitLimit: Float = logit(1 - 0.25 / 255)

    struct Streams {
        var positions: UnsafeRawBufferPointer
        var alphas: UnsafeRawBufferPointer
        var colors: UnsafeRawBufferPointer
        var scales: UnsafeRawBufferPointer
        var rotations: UnsafeRawBufferPointer
        var sh: UnsafeRawBufferPointer
    }

    static func unpack(
        _ streams: Streams, count n: Int, version: Int, shDegree: Int, fractionalBits: Int, into cloud: inout GaussianCloud
    ) {
        let restCount = SPZLayout.restCoefficients(degree: shDegree)
        let shStride = cloud.shStride
        let positionScale = Float(1.0 / Double(1 << fractionalBits))
        let s = UncheckedSendable(streams)
        cloud.positions.withUnsafeMutableBufferPointer { positions in
        cloud.logScales.withUnsafeMutableBufferPointer { scales in
        cloud.rotations.withUnsafeMutableBufferPointer { rotations in
        cloud.logitOpacities.withUnsafeMutableBufferPointer { alphas in
        cloud.sh.withUnsafeMutableBufferPointer { sh in
            let columns = UncheckedSendable((positions, scales, rotations, alphas, sh))
            let parts = ranges(of: n, parts: activeProcessorCount * 4, minimum: 16384)
            parallelFor(parts.count) { part in
                let (positions, scales, rotations, alphas, sh) = columns.value
                let st = s.value
                for i in parts[part] {
                    for c in 0..<3 {
                        if version == 1 {
                            let bits = st.positions.loadUnaligned(fromByteOffset: (i * 3 + c) * 2, as: UInt16.self)
                            positions[i * 3 + c] = Float(Float16(bitPattern: UInt16(littleEndian: bits)))
                        } else {
                            let b = i * 9 + c * 3
                            var fixed = Int32(st.positions[b]) | Int32(st.positions[b + 1]) << 8
                                | Int32(st.positions[b + 2]) << 16
                            if fixed & 0x80_0000 != 0 { fixed |= Int32(bitPattern: 0xFF00_0000) }
                            positions[i * 3 + c] = Float(fixed) * positionScale
                        }
                        scales[i * 3 + c] = Float(st.scales[i * 3 + c]) / 16 - 10
                        sh[i * shStride + c] = ((Float(st.colors[i * 3 + c]) / 255) - 0.5) / SPZLayout.colorScale
                    }
                    let a = Float(st.alphas[i]) / 255
                    alphas[i] = min(max(logf(a / (1 - a)), -alphaLogitLimit), alphaLogitLimit)
                    var q = SIMD4<Float>()  // x, y, z, w
                    if version >= 3 {
                        var comp = UInt32(littleEndian: st.rotations.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))
                        let largest = Int(comp >> 30)
                        var sumSquares: Float = 0
                        for k in stride(from: 3, through: 0, by: -1) where k != largest {
                            let mag = comp & 511
                            let negative = (comp >> 9) & 1 == 1
                            comp >>= 10
                            var v = SPZLayout.sqrt1_2 * Float(mag) / 511
                            if negative { v = -v }
                            q[k] = v
                            sumSquares += v * v
                        }
                        q[largest] = max(0, 1 - sumSquares).squareRoot()
                    } else {
                        for k in 0..<3 { q[k] = Float(st.rotations[i * 3 + k]) / 127.5 - 1 }
                        q[3] = max(0, 1 - (q[0] * q[0] + q[1] * q[1] + q[2] * q[2])).squareRoot()
                    }
                    rotations[i * 4] = q[3]
                    rotations[i * 4 + 1] = q[0]
                    rotations[i * 4 + 2] = q[1]
                    rotations[i * 4 + 3] = q[2]
                    let restKept = (shStride - 3) / 3
                    for k in 0..<restKept {
                        for c in 0..<3 {
                            let byte = k < restCount ? st.sh[(i * restCount + k) * 3 + c] : 128
                            sh[i * shStride + 3 + k * 3 + c] = (Float(byte) - 128) / 128
                        }
                    }
                }
            }
        }}}}}
    }
}

@inline(__always) func sigmoidF(_ x: Float) -> Float { 1 / (1 + expf(-x)) }
