/// An axis convention, named by the directions of +x, +y and +z: R/L (right/left), U/D (up/down), F/B (forward/back).
///
/// `RDF` is the PLY / 3DGS / OpenCV / gsplat frame, `RUB` the OpenGL / WebGL frame that SPZ's reference library
/// stores and that FlashWorld exports (camera 0 of an OpenGL camera), `LUF` glTF's, `RUF` Unity's. All 48 signed axis
/// permutations are valid frames; conversion between any two is exact (signs and permutations only).
public struct CoordinateFrame: Sendable, Hashable, CustomStringConvertible {
    /// For each local axis x, y, z: the world axis (0 right, 1 up, 2 forward) and its sign.
    public let axes: (SIMD3<Int>)
    public let signs: SIMD3<Int>

    public static let rdf = CoordinateFrame(validName: "RDF")
    public static let rub = CoordinateFrame(validName: "RUB")
    public static let luf = CoordinateFrame(validName: "LUF")
    public static let ruf = CoordinateFrame(validName: "RUF")

    /// Parses a three-letter name such as `rdf` or `RUB`; nil when the letters do not name three distinct axes.
    public init?(name: String) {
        let letters = Array(name.uppercased())
        guard letters.count == 3 else { return nil }
        var axes = SIMD3<Int>(repeating: -1)
        var signs = SIMD3<Int>(repeating: 0)
        for (i, letter) in letters.enumerated() {
            switch letter {
            case "R": (axes[i], signs[i]) = (0, 1)
            case "L": (axes[i], signs[i]) = (0, -1)
            case "U": (axes[i], signs[i]) = (1, 1)
            case "D": (axes[i], signs[i]) = (1, -1)
            case "F": (axes[i], signs[i]) = (2, 1)
            case "B": (axes[i], signs[i]) = (2, -1)
            default: return nil
            }
        }
        guard Set([axes.x, axes.y, axes.z]).count == 3 else { return nil }
        self.axes = axes
        self.signs = signs
    }

    private init(validName: String) { self = CoordinateFrame(name: validName)! }

    public var name: String {
        let letters: [[Character]] = [["L", "R"], ["D", "U"], ["B", "F"]]
        return String((0..<3).map { letters[axes[$0]][signs[$0] > 0 ? 1 : 0] })
    }

    public var description: String { name }

    public static func == (a: Self, b: Self) -> Bool { a.axes == b.axes && a.signs == b.signs }
    public func hash(into h: inout Hasher) {
        h.combine(axes)
        h.combine(signs)
    }

    /// The 3x3 matrix (row-major) taking coordinates in this frame to world (right, up, forward) coordinates.
    var toWorld: [[Int]] {
        var m = [[Int]](repeating: [0, 0, 0], count: 3)
        for j in 0..<3 { m[axes[j]][j] = signs[j] }
        return m
    }

    /// The signed permutation matrix (row-major, entries -1, 0, 1) that maps coordinates in `self` to coordinates in
    /// `target`.
    public func matrix(to target: CoordinateFrame) -> [[Int]] {
        let a = toWorld, b = target.toWorld
        var m = [[Int]](repeating: [0, 0, 0], count: 3)
        for i in 0..<3 {
            for j in 0..<3 {
                // (Bᵀ A)ᵢⱼ
                m[i][j] = (0..<3).reduce(0) { $0 + b[$1][i] * a[$1][j] }
            }
        }
        return m
    }

    public static let allFrames: [CoordinateFrame] = {
        var frames: [CoordinateFrame] = []
        for x in "RLUDFB" { for y in "RLUDFB" { for z in "RLUDFB" {
            if let f = CoordinateFrame(name: String([x, y, z])) { frames.append(f) }
        } } }
        return frames
    }()
}
