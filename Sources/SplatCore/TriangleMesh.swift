/// An indexed triangle mesh, struct of arrays: three floats per vertex position, four bytes (RGBA) per vertex colour
/// (empty for an uncoloured mesh), three indices per triangle, counter-clockwise seen from outside.
public struct TriangleMesh: Sendable, Equatable {
    public var positions: [Float] = []
    public var colours: [UInt8] = []
    public var indices: [UInt32] = []

    public init(positions: [Float] = [], colours: [UInt8] = [], indices: [UInt32] = []) {
        self.positions = positions
        self.colours = colours
        self.indices = indices
    }

    public var vertexCount: Int { positions.count / 3 }
    public var triangleCount: Int { indices.count / 3 }

    /// Edges used by other than exactly two triangles: 0 for a closed (watertight) surface.
    public var openEdgeCount: Int {
        var uses: [UInt64: Int] = [:]
        for t in 0..<triangleCount {
            for k in 0..<3 {
                let a = indices[3 * t + k], b = indices[3 * t + (k + 1) % 3]
                uses[UInt64(min(a, b)) << 32 | UInt64(max(a, b)), default: 0] += 1
            }
        }
        return uses.values.filter { $0 != 2 }.count
    }
}
