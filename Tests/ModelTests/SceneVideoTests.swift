import Cameras
import Foundation
import FlashWorld
import SplatCore
import SplatRender
import Testing

/// The service's preview video: a swing around the scene's content from the side it was generated from.
struct SceneVideoTests {
    @Test func theOrbitSwingsAroundTheContentFromCameraZero() {
        // Content two units ahead of camera 0 (OpenGL axes: ahead is −z), in a cube of side 0.5.
        var cloud = GaussianCloud(count: 512, shDegree: 0)
        for i in 0..<512 {
            cloud.positions[3 * i] = Float(i % 8) / 16 - 0.25
            cloud.positions[3 * i + 1] = Float((i / 8) % 8) / 16 - 0.25
            cloud.positions[3 * i + 2] = -2 + Float(i / 64) / 16 - 0.25
        }
        let first = Camera(orientation: Quaternion(w: 1, x: 0, y: 0, z: 0), position: .zero, intrinsics: .init(verticalFieldOfView: 60, width: 256, height: 192))
        let path = SceneVideo.orbit(around: cloud, from: first)
        #expect(path.cameras.count == 96)  // 4 s at 24 fps
        let center = SceneFraming(cloud).center
        let distance = ((first.position - center) * (first.position - center)).sum().squareRoot()
        #expect(((path.cameras[0].position - first.position) * (path.cameras[0].position - first.position)).sum() < 1e-12)
        var widest = 0.0
        for camera in path.cameras {
            let offset = camera.position - center
            let length = (offset * offset).sum().squareRoot()
            #expect(abs(length - distance) < 1e-9, "every frame at camera 0's distance")
            let toward = (center - camera.position) / length
            #expect((camera.forward * toward).sum() > 0.999_999, "every frame looks at the content")
            #expect(abs(camera.position.y) < 1e-9, "the swing stays level with camera 0")
            let start = (first.position - center) / distance
            widest = max(widest, acos(min(1, (offset / length * start).sum())) * 180 / .pi)
        }
        #expect(abs(widest - 25) < 0.5, "±25° around the content: \(widest)")
    }

    @Test func thePreviewIsAtLeast480pInTheGenerationsAspect() {
        #expect(SceneVideo.videoSize(width: 256, height: 192) == (640, 480))
        #expect(SceneVideo.videoSize(width: 704, height: 480) == (704, 480))
        #expect(SceneVideo.videoSize(width: 96, height: 64) == (720, 480))
        #expect(SceneVideo.videoSize(width: 3840, height: 2160) == (1920, 1080))
    }
}
