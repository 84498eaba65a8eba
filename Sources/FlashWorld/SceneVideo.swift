import Cameras
import MediaIO
import SplatCore
import SplatRender

/// A generated scene filmed along the path it was generated from, as `diorama generate --video` and the service's
/// `orbit.mp4` show it.
public enum SceneVideo {
    /// The normalised cameras at export scale (the cloud's frame), `framesPerCamera` frames from one to the next.
    public static func path(_ normalization: NormalizedCameras, framesPerCamera: Int = 4) -> CameraPath {
        let scale = normalization.translationScale
        let cameras = normalization.cameras.map { c in
            var c = c
            c.position *= scale
            return c
        }
        return CameraPath(cameras).resampled(count: max(1, (cameras.count - 1) * framesPerCamera + 1))
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
