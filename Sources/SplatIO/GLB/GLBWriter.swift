import SplatCore

/// Binary glTF 2.0 (`.glb`) for a triangle mesh: one node, one primitive with `POSITION` (float32, with the bounds
/// glTF requires), `COLOR_0` (normalised RGBA bytes, when the mesh has colours) and `uint32` indices. glTF is
/// right-handed with +Y up, as Diorama's y-up (RUB) world is: positions are written as they are, so a scene should be
/// in RUB first (`GaussianCloud.converted(to: .rub)`). Units are the scene's own (glTF reads them as metres).
public enum GLBWriter {
    public static func encode(_ mesh: TriangleMesh, generator: String = "Diorama") throws(SplatFileError) -> [UInt8] {
        let vertices = mesh.vertexCount
        guard mesh.positions.count == 3 * vertices, mesh.indices.count % 3 == 0,
            mesh.colours.isEmpty || mesh.colours.count == 4 * vertices,
            mesh.indices.allSatisfy({ Int($0) < vertices })
        else {
            throw SplatFileError(.unsupported, file: "", "the mesh's columns do not agree (\(mesh.positions.count) position values, \(mesh.colours.count) colour bytes, \(mesh.indices.count) indices)")
        }
        var binary: [UInt8] = []
        func append<T: BitwiseCopyable>(_ values: [T]) -> (offset: Int, length: Int) {
            while binary.count % 4 != 0 { binary.append(0) }
            let offset = binary.count
            values.withUnsafeBytes { binary += $0 }
            return (offset, binary.count - offset)
        }
        let positions = append(mesh.positions)
        let colours = mesh.colours.isEmpty ? nil : append(mesh.colours)
        let indices = append(mesh.indices)
        while binary.count % 4 != 0 { binary.append(0) }
        var lower = [Float](repeating: 0, count: 3), upper = [Float](repeating: 0, count: 3)
        if vertices > 0 {
            for axis in 0..<3 {
                let values = stride(from: axis, to: mesh.positions.count, by: 3).map { mesh.positions[$0] }
                lower[axis] = values.min()!
                upper[axis] = values.max()!
            }
        }
        func number(_ v: Float) -> String { v.isFinite ? "\(v)" : "0" }
        var views = [#"{"buffer":0,"byteOffset":\#(positions.offset),"byteLength":\#(positions.length),"target":34962}"#]
        var accessors = [
            #"{"bufferView":0,"componentType":5126,"count":\#(vertices),"type":"VEC3","min":[\#(lower.map(number).joined(separator: ","))],"max":[\#(upper.map(number).joined(separator: ","))]}"#
        ]
        var attributes = #""POSITION":0"#
        if let colours {
            views.append(#"{"buffer":0,"byteOffset":\#(colours.offset),"byteLength":\#(colours.length),"target":34962}"#)
            accessors.append(#"{"bufferView":\#(views.count - 1),"componentType":5121,"normalized":true,"count":\#(vertices),"type":"VEC4"}"#)
            attributes += #","COLOR_0":\#(accessors.count - 1)"#
        }
        views.append(#"{"buffer":0,"byteOffset":\#(indices.offset),"byteLength":\#(indices.length),"target":34963}"#)
        accessors.append(#"{"bufferView":\#(views.count - 1),"componentType":5125,"count":\#(mesh.indices.count),"type":"SCALAR"}"#)
        let escapedGenerator = generator.filter { $0 != "\"" && $0 != "\\" && !$0.isNewline }
        var json = Array(
            (#"{"asset":{"version":"2.0","generator":"\#(escapedGenerator)"},"scene":0,"scenes":[{"nodes":[0]}],"nodes":[{"mesh":0}],"#
                + #""meshes":[{"primitives":[{"attributes":{\#(attributes)},"indices":\#(accessors.count - 1),"mode":4}]}],"#
                + #""buffers":[{"byteLength":\#(binary.count)}],"bufferViews":[\#(views.joined(separator: ","))],"#
                + #""accessors":[\#(accessors.joined(separator: ","))]}"#).utf8)
        while json.count % 4 != 0 { json.append(0x20) }
        var out: [UInt8] = []
        func word(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        word(0x4654_6C67)  // "glTF"
        word(2)
        word(UInt32(12 + 8 + json.count + 8 + binary.count))
        word(UInt32(json.count))
        word(0x4E4F_534A)  // "JSON"
        out += json
        word(UInt32(binary.count))
        word(0x004E_4942)  // "BIN\0"
        out += binary
        return out
    }
}
