import Cameras
import Parallelism
import SplatCore

#if canImport(Glibc)
    import Glibc
#endif

/// An equirectangular 360-degree view: colour and the distance along each pixel's ray, row-major from the top-left.
public struct Panorama: Sendable {
    public let width: Int
    public let height: Int
    /// RGB, three floats per pixel, background composited.
    public var rgb: [Float]
    /// Distance from the viewpoint along each pixel's ray to the expected surface (the face's expected depth over
    /// the ray's cosine to the face's axis); 0 where nothing was drawn.
    public var range: [Float]

    public func rgb8() -> [UInt8] { rgb.map { $0.isNaN ? 0 : UInt8((min(max($0, 0), 1) * 255).rounded()) } }
}

/// 360-degree panoramas from any point: the six faces of a cube rendered by the splat renderer (90-degree pinhole
/// views, each a pixel wider on every side so that sampling never reads past a face), then resampled bilinearly into
/// an equirectangular image. Longitude 0 (the image's centre column) is where the camera looks, latitude +90 degrees
/// (the top row) its up; longitude grows to the camera's right.
public struct PanoramaRenderer: Sendable {
    public let renderer: SplatRenderer

    public init(renderer: SplatRenderer = SplatRenderer()) { self.renderer = renderer }

    /// The faces, as camera-to-panorama rotations (columns: the face camera's x, y, z in the panorama camera's
    /// OpenGL axes; each face looks down its −z): front, right, back, left, up, down.
    static let faces: [Matrix3] = [
        Matrix3(columns: SIMD3(1, 0, 0), SIMD3(0, 1, 0), SIMD3(0, 0, 1)),
        Matrix3(columns: SIMD3(0, 0, 1), SIMD3(0, 1, 0), SIMD3(-1, 0, 0)),
        Matrix3(columns: SIMD3(-1, 0, 0), SIMD3(0, 1, 0), SIMD3(0, 0, -1)),
        Matrix3(columns: SIMD3(0, 0, -1), SIMD3(0, 1, 0), SIMD3(1, 0, 0)),
        Matrix3(columns: SIMD3(1, 0, 0), SIMD3(0, 0, 1), SIMD3(0, -1, 0)),
        Matrix3(columns: SIMD3(1, 0, 0), SIMD3(0, 0, -1), SIMD3(0, 1, 0)),
    ]

    /// The cube face's side for a panorama `width` pixels around: a quarter of it, as the equator needs.
    public static func faceSize(forWidth width: Int) -> Int { max(8, (width + 3) / 4) }

    /// The direction of pixel (`column`, `row`)'s centre in the camera's OpenGL axes (x right, y up, looking down −z).
    public static func direction(column: Int, row: Int, width: Int, height: Int) -> SIMD3<Double> {
        let longitude = (Double(column) + 0.5) / Double(width) * 2 * .pi - .pi
        let latitude = .pi / 2 - (Double(row) + 0.5) / Double(height) * .pi
        return SIMD3(cos(latitude) * sin(longitude), sin(latitude), -cos(latitude) * cos(longitude))
    }

    public func render(
        _ cloud: GaussianCloud, from camera: Camera, width: Int, height: Int, farPlane: Float = RenderCamera.defaultFarPlane
    ) throws(RenderError) -> Panorama {
        guard width >= 8, height >= 4, width <= 16384, height <= 8192 else {
            throw RenderError(.invalidSize, "a panorama must be 8x4 to 16384x8192 pixels, not \(width)x\(height)")
        }
        let side = Self.faceSize(forWidth: width), rendered = side + 2
        let focal = 0.5 * Double(side)
        let intrinsics = PixelIntrinsics(fx: focal, fy: focal, cx: 0.5 * Double(rendered), cy: 0.5 * Double(rendered))
            .normalized(width: rendered, height: rendered)
        let base = camera.orientation.rotationMatrix
        var images: [RenderedImage] = []
        for face in Self.faces {
            let view = Camera(orientation: Quaternion(rotationMatrix: base * face), position: camera.position, intrinsics: intrinsics)
            images.append(try renderer.render(cloud, camera: RenderCamera(view, width: rendered, height: rendered, farPlane: farPlane)))
        }
        let depths = images.map(\.expectedDepth)
        var rgb = [Float](repeating: 0, count: 3 * width * height)
        var range = [Float](repeating: 0, count: width * height)
        rgb.withUnsafeMutableBufferPointer { rgbOut in
            range.withUnsafeMutableBufferPointer { rangeOut in
                let outputs = UncheckedSendable((rgbOut, rangeOut))
                parallelFor(height) { row in
                    let (rgbOut, rangeOut) = outputs.value
                    for column in 0..<width {
                        let d = Self.direction(column: column, row: row, width: width, height: height)
                        // The face the ray meets: the one it points most along (its forward is −z).
                        var best = 0, forward = -Double.infinity
                        for (f, face) in Self.faces.enumerated() {
                            let along = -(face.column(2) * d).sum()
                            if along > forward { (best, forward) = (f, along) }
                        }
                        let face = Self.faces[best]
                        // OpenGL face axes to pixels (y up → rows down), pixel centres at +0.5.
                        let x = 0.5 * Double(rendered) + focal * (face.column(0) * d).sum() / forward - 0.5
                        let y = 0.5 * Double(rendered) - focal * (face.column(1) * d).sum() / forward - 0.5
                        let x0 = min(max(Int(x.rounded(.down)), 0), rendered - 2), y0 = min(max(Int(y.rounded(.down)), 0), rendered - 2)
                        let fx = Float(min(max(x - Double(x0), 0), 1)), fy = Float(min(max(y - Double(y0), 0), 1))
                        let corner = y0 * rendered + x0
                        let taps = (corner, corner + 1, corner + rendered, corner + rendered + 1)
                        let weights = ((1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy)
                        let colours = images[best].rgb
                        let pixel = row * width + column
                        for c in 0..<3 {
                            rgbOut[3 * pixel + c] =
                                weights.0 * colours[3 * taps.0 + c] + weights.1 * colours[3 * taps.1 + c] + weights.2 * colours[3 * taps.2 + c]
                                + weights.3 * colours[3 * taps.3 + c]
                        }
                        // The nearest pixel's depth (blending across a silhouette would invent surfaces), as a distance
                        // along the ray.
                        let nearest = (y0 + (fy < 0.5 ? 0 : 1)) * rendered + x0 + (fx < 0.5 ? 0 : 1)
                        rangeOut[pixel] = depths[best][nearest] / Float(forward)
                    }
                }
            }
        }
        return Panorama(width: width, height: height, rgb: rgb, range: range)
    }
}
