import Cameras
import MediaIO
import SplatCore
import SplatRender

#if canImport(Glibc)
    import Glibc
#endif

/// A generated scene on video: along the path it was generated from (`diorama generate --video`), or swinging around
/// its content (the service's `orbit.mp4`).
public enum SceneVideo {
    /// The normalised cameras at export scale (the cloud's frame), `framesPerCamera` frames from one to the next.
    public static func path(_ normalization: NormalizedCameras, framesPerCamera: Int = 4) -> CameraPath {
        let cameras = normalization.camerasAtExportScale
        return CameraPath(cameras).resampled(count: max(1, (cameras.count - 1) * framesPerCamera + 1))
    }

    /// A swing around the scene's content for its preview video: the camera keeps `first`'s distance from the
    /// content's centre (the side the scene was generated from, where it is complete) and its up direction, and turns
    /// around that centre `degrees` wide and back, smoothly (a sine), `seconds` long at 24 frames a second, looping.
    public static func orbit(around cloud: GaussianCloud, from first: Camera, degrees: Double = 50, seconds: Double = 4) -> CameraPath {
        let framing = SceneFraming(cloud)
        var offset = first.position - framing.center
        if (offset * offset).sum() < 1e-12 { offset = -first.forward }
        let distance = max((offset * offset).sum().squareRoot(), 0.25 * framing.radius)
        let start = offset / (offset * offset).sum().squareRoot()
        let up = first.orientation.rotated(SIMD3(0, 1, 0))
        let count = max(2, Int((seconds * 24).rounded()))
        return CameraPath(
            (0..<count).map { i in
                let phase: Double = 2 * .pi * Double(i) / Double(count)
                let angle: Double = 0.5 * degrees * .pi / 180 * sin(phase)
                let direction = Quaternion(axis: up, angle: angle).rotated(start)
                return Camera.lookingAt(framing.center, from: framing.center + distance * direction, up: up, intrinsics: first.intrinsics)
            })
    }

    /// The preview video's size: the generation's aspect, the shorter side at least 480 and at most 1080 pixels,
    /// even sides (as H.264 needs).
    public static func videoSize(width: Int, height: Int) -> (width: Int, height: Int) {
        let short = Double(min(width, height))
        let scale = min(max(1, 480 / short), 1080 / short)
        func even(_ v: Double) -> Int { max(2, Int((v / 2).rounded()) * 2) }
        return (even(Double(width) * scale), even(Double(height) * scale))
    }

    /// Where frames come from when not from the CPU renderer: given the scene, the cameras and the size, a function
    /// from a frame's index to its 8-bit RGB on white (a GPU rasterizer), or nil to keep the CPU renderer.
    public typealias FrameSource = @Sendable (_ cloud: GaussianCloud, _ cameras: [Camera], _ width: Int, _ height: Int) throws -> ((Int) throws -> [UInt8])?

    /// Renders `cloud` on white along `path` into an MP4 at `path` (through ffmpeg), 24 frames a second.
    public static func write(
        _ cloud: GaussianCloud, along cameras: CameraPath, width: Int, height: Int, to file: String, frames: FrameSource? = nil,
        progress: (_ done: Int, _ total: Int) -> Void = { _, _ in }
    ) throws {
        let encoder = try VideoEncoder(path: file, width: width, height: height, fps: 24)
        let renderer = SplatRenderer(options: RenderOptions(background: SIMD3(1, 1, 1)))
        let device = try frames?(cloud, cameras.cameras, width, height)
        for (i, camera) in cameras.cameras.enumerated() {
            if let device {
                try encoder.append(rgb: try device(i))
            } else {
                let image = try renderer.render(cloud, camera: RenderCamera(camera, width: width, height: height, farPlane: 1000))
                try encoder.append(rgb: image.rgb8())
            }
            progress(i + 1, cameras.count)
        }
        try encoder.finish()
    }
}
