import Parallelism
import SplatCore

/// Writes the standard INRIA 3DGS layout, binary little-endian float: `x y z nx ny nz f_dc_0..2 f_rest_* opacity
/// scale_0..2 rot_0..3`, with channel-major `f_rest_*` and zero normals (some viewers expect them). A frame other than
/// RDF, the PLY convention, is recorded in a `comment coordinate_frame` line; scene metadata in `comment diorama` lines.
public enum PLYWriter {
    public static func propertyNames(shDegree: Int) -> [String] {
        let rest = 3 * (SphericalHarmonics.coefficientCount(degree: shDegree) - 1)
        return ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
            + (0..<rest).map { "f_rest_\($0)" }
            + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    }

    public static func write(
        _ cloud: GaussianCloud, to sink: OutputSink, metadata: String? = nil, progress: ProgressHandler? = nil
    ) throws(SplatFileError) {
        try requireNoNaN(cloud, file: sink.name)
        try SplatMetadata.check(metadata, file: sink.name)
        let names = propertyNames(shDegree: cloud.shDegree)
        var comments: [String] = []
        if cloud.frame != .rdf { comments.append("\(SplatPropertyMapping.frameComment) \(cloud.frame.name)") }
        if let metadata { comments += SplatMetadata.plyLines(metadata).map { "\(SplatMetadata.plyComment) \($0)" } }
        let header = PLYHeader.text(
            format: .binaryLittleEndian, comments: comments,
            elements: [.init(name: "vertex", count: cloud.count, properties: names.map { .init(name: $0, type: .float32) })])
        try sink.write(Array(header.utf8))

        let floatsPerRow = names.count
        let coefficients = cloud.coefficientsPerChannel
        let rowsPerBlock = 1 << 14
        let blockCount = (cloud.count + rowsPerBlock - 1) / rowsPerBlock
        let wave = activeProcessorCount * 4
        var copy = cloud
        try copy.withColumns { (columns) throws(SplatFileError) in
            var first = 0
            while first < blockCount {
                let end = min(blockCount, first + wave)
                var blocks = [[Float]](repeating: [], count: end - first)
                let start = first
                blocks.withUnsafeMutableBufferPointer { out in
                    let o = UncheckedSendable(out)
                    parallelFor(end - start) { k in
                        let rows = ((start + k) * rowsPerBlock)..<min(columns.count, (start + k + 1) * rowsPerBlock)
                        o.value[k] = [Float](unsafeUninitializedCapacity: rows.count * floatsPerRow) { row, filled in
                            var w = 0
                            let stride = columns.shStride
                            for i in rows {
                                for c in 0..<3 { row[w + c] = columns.positions[i * 3 + c] }
                                row[w + 3] = 0; row[w + 4] = 0; row[w + 5] = 0
                                for c in 0..<3 { row[w + 6 + c] = columns.sh[i * stride + c] }
                                w += 9
                                for c in 0..<3 {
                                    for j in 1..<coefficients { row[w + c * (coefficients - 1) + j - 1] = columns.sh[i * stride + j * 3 + c] }
                                }
                                w += 3 * (coefficients - 1)
                                row[w] = columns.logitOpacities[i]
                                for c in 0..<3 { row[w + 1 + c] = columns.logScales[i * 3 + c] }
                                for c in 0..<4 { row[w + 4 + c] = columns.rotations[i * 4 + c] }
                                w += 8
                            }
                            filled = rows.count * floatsPerRow
                        }
                    }
                }
                for block in blocks {
                    // Floats are little-endian on every platform Diorama runs on.
                    try block.withUnsafeBytes { b in Result { () throws(SplatFileError) in try sink.write(b) } }.get()
                }
                first = end
                progress?(Int64(min(columns.count, first * rowsPerBlock)), Int64(columns.count))
            }
        }
    }
}
