import Foundation
import Testing

@testable import Cameras

struct CameraPathTests {
    let intrinsics = NormalizedIntrinsics(verticalFieldOfView: 60, width: 704, height: 480)

    @Test func orbitCamerasCircleTheTargetAndLookAtIt() {
        let target = SIMD3<Double>(1, 2, -3)
        let path = CameraPath.orbit(
            around: target, radius: 2, up: SIMD3(0, 1, 0), start: SIMD3(0, 0, 1), elevation: 20, count: 12,
            intrinsics: intrinsics)
        #expect(path.count == 12)
        for camera in path.cameras {
            #expect(abs(length(camera.position - target) - 2) < 1e-12)
            // Looks at the target...
            #expect(length(camera.forward - normalized(target - camera.position)) < 1e-12)
            // ...without roll: the camera's x axis stays horizontal.
            #expect(abs(camera.orientation.rotated(SIMD3(1, 0, 0)).y) < 1e-12)
            // ...at the stated elevation.
            #expect(abs((camera.position.y - target.y) / 2 - sin(20 * Double.pi / 180)) < 1e-12)
        }
        // A full turn leaves out the end point, so consecutive cameras are 30° apart and the last is not the first.
        #expect(length(path.cameras[0].position - path.cameras[11].position) > 0.5)
        #expect(length(path.cameras[0].position - SIMD3(1, 2 + 2 * sin(20 * Double.pi / 180), -3 + 2 * cos(20 * Double.pi / 180))) < 1e-12)
    }

    @Test func dollyMovesAlongTheViewingDirection() throws {
        let base = Camera.lookingAt(SIMD3(0, 0, -5), from: SIMD3(0, 1, 0), up: SIMD3(0, 1, 0), intrinsics: intrinsics)
        let path = CameraPath.dolly(from: base, distance: 2, count: 5)
        #expect(length(path.cameras[4].position - (base.position + 2 * base.forward)) < 1e-12)
        #expect(path.cameras.allSatisfy { $0.orientation == base.orientation })
    }

    @Test func spiralKeepsItsFocus() {
        let base = Camera(orientation: .identity, position: .zero, intrinsics: intrinsics)
        let path = CameraPath.spiral(from: base, radius: 0.1, depth: 0.05, focus: 4, count: 30)
        for camera in path.cameras {
            #expect(length(camera.forward - normalized(SIMD3(0, 0, -4) - camera.position)) < 1e-12)
        }
        let spread = path.cameras.map { hypot($0.position.x, $0.position.y) }
        #expect(abs(spread.max()! - 0.1) < 1e-9)
    }

    @Test func resamplingKeepsEndpointsAndRepeatsASingleCamera() throws {
        let a = try Camera(vector: [1, 0, 0, 0, 0, 0, 0, 0.6, 0.9, 0.5, 0.5])
        let b = try Camera(vector: [0.7071, 0, 0.7071, 0, 1, 2, 3, 0.8, 1.2, 0.4, 0.6])
        let path = CameraPath([a, b]).resampled(count: 5)
        #expect(path.cameras[0].vector == a.vector)
        #expect(maxDifference(path.cameras[4].vector, b.orientation.normalized.wxyz + Array(b.vector[4...])) < 1e-12)
        #expect(CameraPath([a]).resampled(count: 3).cameras == [a, a, a])
        #expect(CameraPath([]).resampled(count: 3).count == 0)
    }

    @Test func documentsRoundTripThroughJSON() throws {
        let path = CameraPath.keyframes([.forward, .orbitLeft, .right], intrinsics: intrinsics).resampled(count: 7)
        let document = CameraPathDocument(path.cameras, width: 704, height: 480)
        let read = try CameraPathDocument(json: document.jsonBytes())
        #expect(read.resolution == [7, 480, 704])
        let cameras = try read.resolvedCameras(defaultWidth: 1, defaultHeight: 1)
        for (mine, back) in zip(path.cameras, cameras) { #expect(maxDifference(mine.vector, back.vector) < 1e-12) }
        // A bare list is accepted too, with the size given by the caller.
        let list = "[{\"quaternion\": [1, 0, 0, 0], \"position\": [0, 0, 1], \"fx\": 352, \"fy\": 352, \"cx\": 352, \"cy\": 240}]"
        let bare = try CameraPathDocument(json: Array(list.utf8))
        #expect(try bare.resolvedCameras(defaultWidth: 704, defaultHeight: 480)[0].vector == [1, 0, 0, 0, 0, 0, 1, 0.5, 352.0 / 480, 0.5, 0.5])
    }
}

struct CameraInputTests {
    @Test(arguments: [
        ([1, 0, 0, 0, 0, 0, 0, 0, 0.9, 0.5, 0.5], CameraError.Kind.degenerate, "fx"),
        ([1, 0, 0, 0, 0, 0, 0, 0.6, -1, 0.5, 0.5], .degenerate, "fy"),
        ([1, 0, 0, 0, 0, 0, 0, .nan, 0.9, 0.5, 0.5], .nonFinite, "fx"),
        ([0, 0, 0, 0, 0, 0, 0, 0.6, 0.9, 0.5, 0.5], .degenerate, "quaternion"),
        ([1, .nan, 0, 0, 0, 0, 0, 0.6, 0.9, 0.5, 0.5], .nonFinite, "quaternion.qx"),
        ([1, 0, 0, 0, 0, .infinity, 0, 0.6, 0.9, 0.5, 0.5], .nonFinite, "position.y"),
        ([1, 0, 0, 0, 0, 0, 0, 0.6, 0.9, 0.5], .invalidValue, "vector"),
    ] as [([Double], CameraError.Kind, String)])
    func degenerateCamerasAreRefused(vector: [Double], kind: CameraError.Kind, field: String) {
        #expect {
            _ = try Camera(vector: vector, index: 3)
        } throws: { error in
            guard let e = error as? CameraError else { return false }
            return e.kind == kind && e.field == field && e.camera == 3 && e.description.hasPrefix("camera 3: \(field)")
        }
    }

    @Test(arguments: [
        ("", "not valid JSON"),
        ("{\"cameras\": []}", "cameras"),
        ("{\"cameras\": [{\"quaternion\": [1, 0, 0], \"position\": [0, 0, 0], \"fx\": 1, \"fy\": 1, \"cx\": 0, \"cy\": 0}]}", "quaternion"),
        ("{\"cameras\": [{\"quaternion\": [1, 0, 0, 0], \"position\": [0, 0, 0], \"fy\": 1, \"cx\": 0, \"cy\": 0}]}", "cameras[0].fx"),
        ("{\"cameras\": [{\"quaternion\": [1, 0, 0, 0], \"position\": [0, 0, 0], \"fx\": 0, \"fy\": 1, \"cx\": 0, \"cy\": 0}]}", "fx"),
        ("{\"cameras\": [{\"quaternion\": [1, 0, 0, 0], \"position\": [0, 0, 0], \"fx\": 1, \"fy\": 1, \"cx\": 0, \"cy\": 0}], \"resolution\": [24, 480]}", "resolution"),
        ("{\"cameras\": \"all of them\"}", "cameras"),
    ])
    func malformedCameraFilesAreRefused(json: String, mentions: String) {
        #expect {
            let document = try CameraPathDocument(json: Array(json.utf8))
            _ = try document.resolvedCameras(defaultWidth: 704, defaultHeight: 480)
        } throws: { error in
            guard let e = error as? CameraError else { return false }
            return e.description.contains(mentions)
        }
    }
}
