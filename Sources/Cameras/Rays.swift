/// The rays through the pixel centres of an `width` × `height` grid, channels last: `origins` and `directions`
/// each hold `height · width · 3` floats, row by row (`create_rays`, `flashworld-model.md` §11.3).
public struct RayGrid: Sendable {
    public let width: Int
    public let height: Int
    public var origins: [Float]
    public var directions: [Float]

    /// Casts the rays of `camera` on a grid of `width` × `height`: pixel centres at +0.5, unit directions in world
    /// coordinates, the camera centre as every origin.
    public init(camera: Camera, width: Int, height: Int) {
        precondition(width > 0 && height > 0, "a ray grid needs a positive size")
        self.width = width
        self.height = height
        let k = camera.intrinsics.inPixels(width: width, height: height)
        let rotation = camera.orientation.rotationMatrix
        let o = camera.position
        let count = width * height * 3
        var origins = [Float](repeating: 0, count: count)
        var directions = [Float](repeating: 0, count: count)
        for row in 0..<height {
            let y = -(Double(row) + 0.5 - k.cy) / k.fy
            for col in 0..<width {
                let x = (Double(col) + 0.5 - k.cx) / k.fx
                let d = normalized(rotation * SIMD3(x, y, -1))
                let base = (row * width + col) * 3
                for c in 0..<3 {
                    directions[base + c] = Float(d[c])
                    origins[base + c] = Float(o[c])
                }
            }
        }
        self.origins = origins
        self.directions = directions
    }

    /// FlashWorld's 6-channel raymap, channels last (`height · width · 6`): the unit direction `d`, then
    /// `o − (o·d) d`, the foot of the perpendicular from the world origin to the ray (not the Plücker moment).
    public var raymap: [Float] {
        var map = [Float](repeating: 0, count: width * height * 6)
        for p in 0..<(width * height) {
            let d = SIMD3(Double(directions[3 * p]), Double(directions[3 * p + 1]), Double(directions[3 * p + 2]))
            let o = SIMD3(Double(origins[3 * p]), Double(origins[3 * p + 1]), Double(origins[3 * p + 2]))
            let foot = o - dot(o, d) * d
            for c in 0..<3 {
                map[6 * p + c] = Float(d[c])
                map[6 * p + 3 + c] = Float(foot[c])
            }
        }
        return map
    }
}
