import Cameras
import EngineCUDA
import EngineCore
import FlashWorld
import SplatRender

/// FlashWorld's feedback renders on the GPU: every view of the path in one batched rasterization, straight into the
/// `[n, 3, H, W]` renders in [−1, 1] the VAE encoder takes, without leaving the device.
struct CUDAViewRenderer: ViewRenderer {
    let gpu: CUDABackend

    static func views(_ cameras: [Camera], width: Int, height: Int, farPlane: Float = 1000) -> [CUDABackend.RasterView] {
        cameras.map { camera in
            let view = RenderCamera(camera, width: width, height: height, farPlane: farPlane)
            let (r0, r1, r2) = view.rotation
            return CUDABackend.RasterView(
                rotation: [r0.x, r0.y, r0.z, r1.x, r1.y, r1.z, r2.x, r2.y, r2.z], translation: [view.translation.x, view.translation.y, view.translation.z],
                fx: view.fx, fy: view.fy, cx: view.cx, cy: view.cy, near: view.nearPlane, far: view.farPlane,
                center: [view.center.x, view.center.y, view.center.z])
        }
    }

    func render(_ gaussians: Tensor, cameras: [Camera], width: Int, height: Int, on backend: any Backend) throws -> Tensor {
        guard backend.device == gpu.device else { return try CPUViewRenderer().render(gaussians, cameras: cameras, width: width, height: height, on: backend) }
        return try gpu.rasterize(
            gaussians, views: Self.views(cameras, width: width, height: height), width: width, height: height, flashWorldRange: true).rgb
    }
}

extension DeviceChoice {
    /// MP4 frames (`generate --video`, the service's orbit) on the GPU when this choice runs on one; nil keeps the CPU
    /// renderer.
    var videoFrames: SceneVideo.FrameSource {
        let device = requestedDevice
        return { cloud, cameras, width, height in
            guard device != "cpu", let gpu = try? CUDABackend.open() else { return nil }
            let frames = try GPUFrames(
                gpu: gpu, cloud: cloud, size: ImageSize(width: width, height: height), far: 1000, shDegree: nil, background: SIMD3(1, 1, 1))
            return { index in try frames.frame(index, of: cameras) }
        }
    }
}
