import SplatCore

/// Where each vertex property of a PLY lands in a `GaussianCloud`, resolved once per file from the property names.
struct SplatPropertyMapping {
    enum Column: Int { case position, logScale, rotation, opacity, sh }

    struct Entry {
        var name: String
        var property: Int
        /// Byte offset inside a binary row.
        var offset: Int
        var type: PLYHeader.ScalarType
        var column: Column
        var index: Int
        /// For `red/green/blue`: the full-scale value (1 for floats); the value is turned into an SH DC coefficient.
        var colorFullScale: Float?
    }

    var entries: [Entry]
    var shDegree: Int
    var frame: CoordinateFrame
    /// True when every float of every column comes from the file (no defaults to fill in first).
    var coversEveryColumn: Bool
    var missing: Set<Column>

    /// Comment that records a frame other than the PLY convention, RDF.
    static let frameComment = "coordinate_frame"

    init(_ vertex: PLYHeader.Element, file: String, comments: [String]) throws(SplatFileError) {
        var byName: [String: Int] = [:]
        var offsets: [Int] = []
        var offset = 0
        for (i, p) in vertex.properties.enumerated() {
            if byName[p.name] == nil { byName[p.name] = i }
            offsets.append(offset)
            offset += p.type.byteWidth
        }
        var entries: [Entry] = []
        func map(_ name: String, _ column: Column, _ index: Int, color: Bool = false) -> Bool {
            guard let p = byName[name], vertex.properties[p].listCountType == nil else { return false }
            let type = vertex.properties[p].type
            entries.append(
                Entry(
                    name: name, property: p, offset: offsets[p], type: type, column: column, index: index,
                    colorFullScale: color ? Float(type.integerMaximum ?? 1) : nil))
            return true
        }
        var missing: Set<Column> = []
        for (c, axis) in ["x", "y", "z"].enumerated() where !map(axis, .position, c) {
            throw SplatFileError(
                .invalidHeader, file: file, field: "property \(axis)", "the vertex element has no '\(axis)' property")
        }
        if !(0..<3).allSatisfy({ map("scale_\($0)", .logScale, $0) }) { missing.insert(.logScale) }
        if !(0..<4).allSatisfy({ map("rot_\($0)", .rotation, $0) }) { missing.insert(.rotation) }
        if !map("opacity", .opacity, 0) { missing.insert(.opacity) }
        // Drop entries of partly present groups: defaults fill the whole group.
        entries.removeAll { missing.contains($0.column) }

        func run(_ prefix: String) -> Int {
            var n = 0
            while byName["\(prefix)\(n)"] != nil { n += 1 }
            return n
        }
        let dcCount = run("f_dc_"), restCount = run("f_rest_")
        var degree = 0
        var shCovered = false
        if dcCount >= 3 && restCount > 0 {
            // INRIA: f_rest is channel-major, `f_rest_{c * dim + j}`.
            let dim = restCount / 3
            degree = SphericalHarmonics.degree(forCoefficientCount: dim + 1)
            for c in 0..<3 { _ = map("f_dc_\(c)", .sh, c) }
            for c in 0..<3 {
                for j in 0..<(SphericalHarmonics.coefficientCount(degree: degree) - 1) {
                    _ = map("f_rest_\(c * dim + j)", .sh, (1 + j) * 3 + c)
                }
            }
            shCovered = true
        } else if dcCount >= 3 {
            // FlashWorld names every coefficient f_dc_*, coefficient-major with RGB inner: the cloud's own order.
            degree = SphericalHarmonics.degree(forCoefficientCount: dcCount / 3)
            for k in 0..<(3 * SphericalHarmonics.coefficientCount(degree: degree)) { _ = map("f_dc_\(k)", .sh, k) }
            shCovered = true
        } else if dcCount > 0 {
            throw SplatFileError(
                .invalidHeader, file: file, field: "property f_dc_\(dcCount)",
                "only \(dcCount) of the three f_dc_* colour properties are present")
        } else if ["red", "green", "blue"].enumerated().allSatisfy({ map($0.element, .sh, $0.offset, color: true) }) {
            shCovered = true
        } else {
            entries.removeAll { $0.column == .sh }
        }
        if !shCovered { missing.insert(.sh) }

        // FlashWorld's export (every coefficient named f_dc_*) is in camera 0's OpenGL frame (`flashworld-model.md`
        // §10.3); other PLY files follow the INRIA/COLMAP convention. A frame comment overrides either.
        var frame = dcCount > 3 && restCount == 0 ? CoordinateFrame.rub : .rdf
        for comment in comments {
            let words = comment.split(separator: " ")
            if words.count == 2 && words[0] == Self.frameComment {
                guard let f = CoordinateFrame(name: String(words[1])) else {
                    throw SplatFileError(
                        .invalidHeader, file: file, field: "comment \(comment)", "unknown coordinate frame '\(words[1])'")
                }
                frame = f
            }
        }
        self.entries = entries
        self.shDegree = degree
        self.frame = frame
        self.missing = missing
        self.coversEveryColumn = missing.isEmpty
    }

    /// A cloud of `count` Gaussians whose unmapped columns hold the defaults.
    func emptyCloud(count: Int) -> GaussianCloud {
        if coversEveryColumn {
            return GaussianCloud(unsafeUninitializedCount: count, shDegree: shDegree, frame: frame, antialiased: false)
        }
        var cloud = GaussianCloud(count: count, shDegree: shDegree, frame: frame)
        if missing.contains(.logScale) {
            cloud.logScales = [Float](repeating: PLYReader.defaultLogScale, count: count * 3)
        }
        if missing.contains(.opacity) {
            cloud.logitOpacities = [Float](repeating: PLYReader.defaultOpacityLogit, count: count)
        }
        return cloud
    }

    @inline(__always)
    private func pointer(_ c: Column, _ columns: CloudColumns) -> (UnsafeMutablePointer<Float>, Int) {
        switch c {
        case .position: (columns.positions, 3)
        case .logScale: (columns.logScales, 3)
        case .rotation: (columns.rotations, 4)
        case .opacity: (columns.logitOpacities, 1)
        case .sh: (columns.sh, columns.shStride)
        }
    }

    /// Decodes fixed-size binary rows `rows` from `buffer` (which starts at the first of them).
    func decode(
        _ buffer: UnsafeRawBufferPointer, rows: Range<Int>, rowSize: Int, bigEndian: Bool, into columns: CloudColumns,
        file: String, dataStart: Int64
    ) throws(SplatFileError) {
        let targets = entries.map { pointer($0.column, columns) }
        let allFloat = entries.allSatisfy { $0.type == .float32 && $0.colorFullScale == nil }
        for (e, entry) in entries.enumerated() {
            let (base, stride) = targets[e]
            let destination = base + entry.index
            var source = buffer.baseAddress! + entry.offset
            var bad: (Int, Float)? = nil
            // One column at a time: a tight loop per property keeps the branch pattern trivial.
            if allFloat && !bigEndian {
                for r in rows {
                    let v = Float(bitPattern: source.loadUnaligned(as: UInt32.self))
                    destination[r * stride] = v
                    if !v.isFinite && bad == nil { bad = (r, v) }
                    source += rowSize
                }
            } else {
                for r in rows {
                    var v = Float(loadScalar(source, entry.type, bigEndian: bigEndian))
                    if let scale = entry.colorFullScale { v = (v / scale - 0.5) / SphericalHarmonics.c0 }
                    destination[r * stride] = v
                    if !v.isFinite && bad == nil { bad = (r, v) }
                    source += rowSize
                }
            }
            if bad != nil {
                for r in rows where !destination[r * stride].isFinite {
                    destination[r * stride] = try repaired(
                        destination[r * stride], entry, row: r, file: file,
                        offset: dataStart + Int64(r) * Int64(rowSize) + Int64(entry.offset))
                }
            }
        }
    }

    /// Stores one row of values (by property index) read by the slow path.
    func store(
        _ values: [Double], row: Int, into columns: CloudColumns, file: String, rowOffset: Int64
    ) throws(SplatFileError) {
        for entry in entries {
            let (base, stride) = pointer(entry.column, columns)
            var v = Float(values[entry.property])
            if let scale = entry.colorFullScale { v = (v / scale - 0.5) / SphericalHarmonics.c0 }
            if !v.isFinite { v = try repaired(v, entry, row: row, file: file, offset: rowOffset) }
            base[row * stride + entry.index] = v
        }
    }

    /// Infinite opacity logits and `log(0)` scales are clamped; every other non-finite value is an error.
    private func repaired(
        _ v: Float, _ entry: Entry, row: Int, file: String, offset: Int64
    ) throws(SplatFileError) -> Float {
        let limit = PLYReader.saturationLimit
        if v.isInfinite && (entry.column == .opacity || (entry.column == .logScale && v < 0)) {
            return v < 0 ? -limit : limit
        }
        throw SplatFileError(
            .nonFiniteValue, file: file, offset: offset, field: "vertex \(row), property '\(entry.name)'", "value is \(v)")
    }
}
