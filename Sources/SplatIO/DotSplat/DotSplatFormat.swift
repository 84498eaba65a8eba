import SplatCore

#if canImport(Glibc)
    import Glibc
#endif

/// antimatter15's `.splat`: headerless 32-byte records (position f32x3, linear scale f32x3, RGBA u8x4, quaternion
/// u8x4 w-first as `q*128+128`), sorted on write by importance, `exp(s0+s1+s2) * sigmoid(opacity)`, descending. No SH
/// beyond DC; positions are copied with no change of axes (RDF, as from PLY).
public enum DotSplatFormat {
    public static let recordSize = 32

    public static func read(
        _ source: InputSource, limits: ReadLimits = .init(), progress: ProgressHandler? = nil
    ) throws(SplatFileError) -> GaussianCloud {
        let remainder = source.size % Int64(recordSize)
        guard remainder == 0 else {
            throw SplatFileError(
                .truncated, file: source.name, offset: source.size - remainder,
                "the file is \(source.size) bytes, not a whole number of 32-byte records (the last is cut short)")
        }
        let count = Int(source.size / Int64(recordSize))
        guard count <= limits.maxGaussians else {
            throw SplatFileError(
                .invalidHeader, file: source.name, "\(count) records exceed the limit of \(limits.maxGaussians)")
        }
        var cloud = GaussianCloud(unsafeUninitializedCount: count, shDegree: 0, frame: .rdf, antialiased: false)
        let blockRecords = 1 << 15
        try cloud.withColumns { (columns) throws(SplatFileError) in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: blockRecords * recordSize, alignment: 16)
            defer { buffer.deallocate() }
            var first = 0
            while first < count {
                let rows = first..<min(count, first + blockRecords)
                try source.read(
                    at: Int64(first) * Int64(recordSize),
                    into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<rows.count * recordSize]))
                for i in rows {
                    let r = UnsafeRawPointer(buffer.baseAddress! + (i - first) * recordSize)
                    for c in 0..<3 {
                        let p = Float(bitPattern: UInt32(littleEndian: r.loadUnaligned(fromByteOffset: c * 4, as: UInt32.self)))
                        let s = Float(bitPattern: UInt32(littleEndian: r.loadUnaligned(fromByteOffset: 12 + c * 4, as: UInt32.self)))
                        guard p.isFinite, s.isFinite, s >= 0 else {
                            let what = !p.isFinite ? "position" : "scale"
                            throw SplatFileError(
                                .nonFiniteValue, file: source.name,
                                offset: Int64(i) * Int64(recordSize) + Int64(!p.isFinite ? c * 4 : 12 + c * 4),
                                field: "record \(i) \(what)", "value is \(!p.isFinite ? p : s)")
                        }
                        columns.positions[i * 3 + c] = p
                        columns.logScales[i * 3 + c] = max(logf(s), -PLYReader.saturationLimit)
                        columns.sh[i * 3 + c] = (Float(r.load(fromByteOffset: 24 + c, as: UInt8.self)) / 255 - 0.5) / SphericalHarmonics.c0
                    }
                    let a = Float(r.load(fromByteOffset: 27, as: UInt8.self)) / 255
                    columns.logitOpacities[i] = logit(a)
                    for c in 0..<4 {
                        columns.rotations[i * 4 + c] = (Float(r.load(fromByteOffset: 28 + c, as: UInt8.self)) - 128) / 128
                    }
                }
                first = rows.upperBound
                progress?(Int64(first), Int64(count))
            }
        }
        return cloud
    }

    public static func write(
        _ cloud: GaussianCloud, to sink: OutputSink, progress: ProgressHandler? = nil
    ) throws(SplatFileError) {
        try requireNoNaN(cloud, file: sink.name)
        if let i = cloud.positions.firstIndex(where: { !$0.isFinite }) {
            throw SplatFileError(.nonFiniteValue, file: sink.name, field: "Gaussian \(i / 3) position", "coordinate is infinite")
        }
        let order = cloud.importanceOrder()
        let stride = cloud.shStride
        let blockRecords = 1 << 15
        var out = [UInt8](repeating: 0, count: blockRecords * recordSize)
        var first = 0
        while first < order.count {
            let rows = first..<min(order.count, first + blockRecords)
            out.withUnsafeMutableBytes { b in
                for (k, i32) in order[rows].enumerated() {
                    let i = Int(i32)
                    let r = b.baseAddress! + k * recordSize
                    for c in 0..<3 {
                        r.storeBytes(of: cloud.positions[i * 3 + c].bitPattern.littleEndian, toByteOffset: c * 4, as: UInt32.self)
                        r.storeBytes(of: expf(cloud.logScales[i * 3 + c]).bitPattern.littleEndian, toByteOffset: 12 + c * 4, as: UInt32.self)
                        r.storeBytes(of: clampByte((0.5 + SphericalHarmonics.c0 * cloud.sh[i * stride + c]) * 255), toByteOffset: 24 + c, as: UInt8.self)
                    }
                    r.storeBytes(of: clampByte(cloud.opacity(i) * 255), toByteOffset: 27, as: UInt8.self)
                    let q = cloud.normalizedRotation(i)
                    for c in 0..<4 { r.storeBytes(of: clampByte(q[c] * 128 + 128), toByteOffset: 28 + c, as: UInt8.self) }
                }
            }
            try out.withUnsafeBytes { b in
                Result { () throws(SplatFileError) in try sink.write(UnsafeRawBufferPointer(rebasing: b[0..<rows.count * recordSize])) }
            }.get()
            first = rows.upperBound
            progress?(Int64(first), Int64(order.count))
        }
    }

    /// `clamp(x, 0, 255)` then truncation, as the reference converter's `np.clip(...).astype(np.uint8)`.
    @inline(__always) static func clampByte(_ x: Float) -> UInt8 { UInt8(min(max(x, 0), 255)) }
}
