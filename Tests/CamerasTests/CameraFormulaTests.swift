import Foundation
import Testing

@testable import Cameras

/// Values computed from the spec's formulas by an independent script (`tools/cameras/make_camera_fixtures.py`, numpy
/// in float64), so these compare double precision against double precision.
struct CameraCases: Decodable {
    struct QuaternionToMatrix: Decodable {
        var q: [Double]
        var matrix: [Double]
    }
    struct MatrixToQuaternion: Decodable {
        var matrix: [Double]
        var q: [Double]
    }
    struct Normalize: Decodable {
        var cameras: [[Double]]
        var normalized: [[Double]]
        var ref_w2c: [Double]
        var t_norm: Double
    }
    struct Rays: Decodable {
        var camera: [Double]
        var h: Int
        var w: Int
        var rays_o: [Double]
        var rays_d: [Double]
        var raymap: [Double]
    }
    struct Resample: Decodable {
        var cameras: [[Double]]
        var m: Int
        var resampled: [[Double]]
    }
    struct OpenCV: Decodable {
        var camera: [Double]
        var width: Int
        var height: Int
        var viewmat: [Double]
        var K: [Double]
    }
    struct APIJSON: Decodable {
        var json: CameraRecord
        var width: Int
        var height: Int
        var vector: [Double]
    }
    struct UIIntrinsics: Decodable {
        var fov_degrees: Double
        var width: Int
        var height: Int
        var fx: Double
        var fy: Double
        var cx: Double
        var cy: Double
    }
    struct Pose: Decodable {
        var position: [Double]
        var quaternion: [Double]
    }
    struct Template: Decodable {
        var steps: [String]
        var keyframes: [Pose]
    }
    struct UIInterpolation: Decodable {
        var keyframes: [Pose]
        var m: Int
        var cameras: [Pose]
    }
    struct UnitVectors: Decodable {
        var from: [Double]
        var to: [Double]
        var quaternion: [Double]
    }

    var quaternion_to_matrix: [QuaternionToMatrix]
    var matrix_to_quaternion: [MatrixToQuaternion]
    var normalize_cameras: [Normalize]
    var rays: [Rays]
    var resample: [Resample]
    var opencv: [OpenCV]
    var api_json: [APIJSON]
    var ui_intrinsics: [UIIntrinsics]
    var templates: [Template]
    var ui_interpolation: [UIInterpolation]
    var three_set_from_unit_vectors: [UnitVectors]

    static let shared: CameraCases = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/camera_cases.json")
        // A missing or malformed fixture is a broken checkout: fail loudly.
        return try! JSONDecoder().decode(CameraCases.self, from: Data(contentsOf: url))
    }()
}

func maxDifference(_ a: [Double], _ b: [Double]) -> Double {
    precondition(a.count == b.count, "compared lists differ in length: \(a.count) vs \(b.count)")
    return zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

func vector3(_ v: [Double]) -> SIMD3<Double> { SIMD3(v[0], v[1], v[2]) }

struct CameraFormulaTests {
    let cases = CameraCases.shared

    @Test func quaternionToMatrixMatchesTheFormula() {
        #expect(cases.quaternion_to_matrix.count >= 8)
        for c in cases.quaternion_to_matrix {
            #expect(maxDifference(Quaternion(c.q).rotationMatrix.rowMajor, c.matrix) < 1e-12, "q = \(c.q)")
        }
    }

    @Test func matrixToQuaternionPicksTheBestConditionedBranch() {
        for c in cases.matrix_to_quaternion {
            let q = Quaternion(rotationMatrix: Matrix3(rowMajor: c.matrix))
            #expect(maxDifference(q.wxyz, c.q) < 1e-12, "matrix = \(c.matrix)")
            #expect(q.w >= 0)
        }
    }

    @Test func normalizedCamerasRebaseOnCameraZero() throws {
        for c in cases.normalize_cameras {
            let cameras = try c.cameras.enumerated().map { try Camera(vector: $1, index: $0) }
            let result = normalizedCameras(cameras)
            #expect(abs(result.translationScale - c.t_norm) < 1e-12)
            #expect(maxDifference(result.referenceWorldToCamera.matrix4, c.ref_w2c) < 1e-12)
            for (mine, expected) in zip(result.cameras, c.normalized) {
                #expect(maxDifference(mine.vector, expected) < 1e-12, "camera \(expected)")
            }
            #expect(maxDifference(result.cameras[0].vector, [1, 0, 0, 0, 0, 0, 0] + c.cameras[0].suffix(4)) < 1e-12)
        }
    }

    @Test func raysAndRaymapsMatchTheFormula() throws {
        for c in cases.rays {
            let grid = RayGrid(camera: try Camera(vector: c.camera), width: c.w, height: c.h)
            // The grid stores float, the reference double.
            #expect(maxDifference(grid.origins.map(Double.init), c.rays_o) < 1e-6)
            #expect(maxDifference(grid.directions.map(Double.init), c.rays_d) < 1e-6)
            #expect(maxDifference(grid.raymap.map(Double.init), c.raymap) < 1e-5 * max(1, c.rays_o.map(abs).max()!))
        }
    }

    @Test func resamplingSlerpsAndLerpsLikeTheReference() throws {
        for c in cases.resample {
            let path = CameraPath(try c.cameras.map { try Camera(vector: $0) })
            let resampled = path.resampled(count: c.m)
            #expect(resampled.count == c.m)
            for (i, (mine, expected)) in zip(resampled.cameras, c.resampled).enumerated() {
                #expect(maxDifference(mine.vector, expected) < 1e-9, "sample \(i) of \(c.m)")
            }
        }
    }

    @Test func openCVViewMatricesAndIntrinsics() throws {
        for c in cases.opencv {
            let camera = try Camera(vector: c.camera)
            #expect(maxDifference(camera.openCVWorldToCamera.matrix4, c.viewmat) < 1e-12)
            #expect(maxDifference(camera.intrinsics.inPixels(width: c.width, height: c.height).matrix, c.K) < 1e-9)
        }
    }

    @Test func apiCameraJSONBecomesTheCameraVector() throws {
        for c in cases.api_json {
            let camera = try c.json.camera(width: c.width, height: c.height)
            #expect(maxDifference(camera.vector, c.vector) < 1e-15)
            // And back: pixels at the same size.
            let record = CameraRecord(camera, width: c.width, height: c.height)
            #expect(maxDifference([record.fx, record.fy, record.cx, record.cy], [c.json.fx, c.json.fy, c.json.cx, c.json.cy]) < 1e-9)
        }
        for c in cases.ui_intrinsics {
            let k = NormalizedIntrinsics(verticalFieldOfView: c.fov_degrees, width: c.width, height: c.height)
                .inPixels(width: c.width, height: c.height)
            #expect(maxDifference([k.fx, k.fy, k.cx, k.cy], [c.fx, c.fy, c.cx, c.cy]) < 1e-9)
        }
    }

    @Test func templateStepsBuildTheUIKeyframes() {
        let intrinsics = NormalizedIntrinsics(verticalFieldOfView: 60, width: 704, height: 480)
        for c in cases.templates {
            let steps = c.steps.map { PathStep(rawValue: $0)! }
            let path = CameraPath.keyframes(steps, intrinsics: intrinsics)
            #expect(path.count == c.keyframes.count)
            for (mine, expected) in zip(path.cameras, c.keyframes) {
                #expect(maxDifference([mine.position.x, mine.position.y, mine.position.z], expected.position) < 1e-12, "\(c.steps)")
                #expect(maxDifference(mine.orientation.wxyz, expected.quaternion) < 1e-12, "\(c.steps)")
            }
        }
    }

    @Test func setFromUnitVectorsMatchesThreeJS() {
        for c in cases.three_set_from_unit_vectors {
            let q = Quaternion(rotating: vector3(c.from), onto: vector3(c.to))
            #expect(maxDifference(q.wxyz, c.quaternion) < 1e-12, "\(c.from) -> \(c.to)")
        }
    }

    /// The web UI interpolates with three.js slerp, the server with the reference's; the two agree as rotations.
    @Test func referenceResamplingAgreesWithTheWebUI() {
        for c in cases.ui_interpolation {
            let intrinsics = NormalizedIntrinsics(fx: 1, fy: 1, cx: 0.5, cy: 0.5)
            let keyframes = CameraPath(
                c.keyframes.map { Camera(orientation: Quaternion($0.quaternion), position: vector3($0.position), intrinsics: intrinsics) })
            let resampled = keyframes.resampled(count: c.m)
            for (mine, expected) in zip(resampled.cameras, c.cameras) {
                let q = Quaternion(expected.quaternion)
                #expect(abs(abs(Quaternion.dot(mine.orientation, q.normalized)) - 1) < 1e-9)
                #expect(maxDifference([mine.position.x, mine.position.y, mine.position.z], expected.position) < 1e-9)
            }
        }
    }
}
