import ArgumentParser
import Cameras
import FlashWorld
import Foundation
import SplatCore
import SplatIO
import Testing
import EngineCUDA

@testable import DioramaCLI

#if canImport(Glibc)
    import Glibc
#endif

struct GenerateCommandTests {
    let folder: String = {
        var template = Array("/tmp/diorama-generate-XXXXXX".utf8CString)
        return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }()

    func run(_ arguments: [String]) throws {
        var command = try DioramaCommand.parseAsRoot(arguments)
        try command.run()
    }

    @Test func tinyModelWritesAScene() throws {
        let output = "\(folder)/scene.ply"
        try run(["generate", "--model", "tiny", "--prompt", "a small room", "--frames", "2", "--size", "64x64", "--seed", "1", "-o", output, "-q"])
        let (cloud, _) = try SplatFile.read(InputSource(path: output))
        #expect(cloud.count == 2 * 2 * 32 * 32)
        #expect(cloud.frame == .rub && cloud.shDegree == 2)
        // The file records the cameras it was made along, in its frame: camera #0 at the origin, looking down -z.
        let record = try #require(SceneRecord(metadata: try SplatFile.read(InputSource(path: output)).1.metadata))
        #expect(record.pathCameras.count == 2 && record.pathCameras[0].position == .zero && record.chunks.isEmpty)
    }

    /// A path that never moves (a look-around from one point) has no scale to export at (`T_norm = 0`, which would put
    /// every Gaussian on the camera): its scene keeps the model's units.
    @Test func aStillPathStillMakesAScene() throws {
        let still = Camera(orientation: .identity, position: .zero, intrinsics: NormalizedIntrinsics(verticalFieldOfView: 60, width: 64, height: 64))
        let turned = Camera(orientation: Quaternion(w: 0.966, x: 0, y: 0.259, z: 0), position: .zero, intrinsics: still.intrinsics)
        try writeOutput(CameraPathDocument([still, turned], width: 64, height: 64).jsonBytes(), to: "\(folder)/still.json")
        let output = "\(folder)/still.ply"
        try run(["generate", "--model", "tiny", "--prompt", "a hall", "--frames", "2", "--size", "64x64", "--camera-path", "\(folder)/still.json", "-o", output, "-q"])
        let (cloud, _) = try SplatFile.read(InputSource(path: output))
        let spread = cloud.positions.map(abs).max() ?? 0
        #expect(spread > 0.01, "positions span \(spread)")
        #expect(cloud.logScales.allSatisfy { $0 > -15 })
    }

    /// `diorama extend` grows a scene from inside it: the world keeps its Gaussians, gains the chunk's new ones, each
    /// chunk is kept for undo, and the placements accumulate from scene to scene.
    @Test func extendGrowsASceneAndRecordsItsChunks() throws {
        let hall = "\(folder)/hall.ply", grown = "\(folder)/hall2.ply", again = "\(folder)/hall3.ply"
        let common = ["--model", "tiny", "--prompt", "a hall", "--frames", "2", "--size", "64x64", "--chunks", "\(folder)/chunks", "-q"]
        try run(["generate", "--model", "tiny", "--prompt", "a hall", "--frames", "2", "--size", "64x64", "-o", hall, "-q"])
        try run(["extend", hall, "-o", grown] + common)
        try run(["extend", grown, "--camera-path", "backward", "-o", again] + common)
        let (first, _) = try SplatFile.read(InputSource(path: hall))
        let (second, _) = try SplatFile.read(InputSource(path: grown))
        let (third, _) = try SplatFile.read(InputSource(path: again))
        #expect(second.count > first.count && third.count > second.count)
        #expect(try SplatFile.read(InputSource(path: "\(folder)/chunks/chunk_0001.ply")).0.count > 0)
        let records = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: again + ".chunks.json"))) as? [[String: Any]]
        #expect(records?.count == 2 && records?.last?["chunk"] as? String == "\(folder)/chunks/chunk_0001.ply")
        #expect((records?.first?["scale"] as? Double).map { $0 > 0 } == true)
        // The scene file itself carries the same record, so a copy without its sidecar still knows its chunks.
        let inFile = SceneRecord(metadata: try SplatFile.read(InputSource(path: again)).1.metadata)
        #expect(inFile?.chunks.count == 2 && inFile?.chunks.last?.chunk == "\(folder)/chunks/chunk_0001.ply")
        #expect(inFile?.pathCameras.count == 2, "the first scene's generation path is kept as the world grows")
        // Paths that frame a scene from outside are refused before any work.
        #expect(throws: (any Error).self) { try run(["extend", hall, "--camera-path", "orbit", "-o", "\(folder)/x.ply", "-q"]) }
        #expect(throws: (any Error).self) { _ = try DioramaCommand.parseAsRoot(["extend", hall, "--steps", "3", "-o", "x.ply"]) }
        #expect(throws: (any Error).self) { _ = try DioramaCommand.parseAsRoot(["extend", hall, "-o", "grown.obj"]) }
        // A path whose first camera does not see the scene is refused, and nothing is written.
        let away = Camera(orientation: .identity, position: SIMD3(0, 0, 90), intrinsics: NormalizedIntrinsics(fx: 0.5, fy: 0.5, cx: 0.5, cy: 0.5))
        try writeOutput(CameraPathDocument([away], width: 64, height: 64).jsonBytes(), to: "\(folder)/away.json")
        #expect(throws: (any Error).self) { try run(["extend", hall, "--camera-path", "\(folder)/away.json", "-o", "\(folder)/away.ply"] + common.dropLast(3) + ["-q"]) }
        #expect(!FileManager.default.fileExists(atPath: "\(folder)/away.ply"))
    }

    /// `--device` and `--precision`: bad names are refused before any work; the CPU runs every precision (the oracle's
    /// ops on bf16 and FP8 weights); `cuda` without a GPU says so with exit 69.
    @Test func deviceAndPrecisionAreChosenAndChecked() throws {
        #expect(throws: (any Error).self) { try DioramaCommand.parseAsRoot(["generate", "--prompt", "x", "--device", "tpu", "-o", "\(folder)/a.spz"]) }
        #expect(throws: (any Error).self) { try DioramaCommand.parseAsRoot(["generate", "--prompt", "x", "--precision", "int4", "-o", "\(folder)/a.spz"]) }
        let output = "\(folder)/fp8.spz"
        try run(["generate", "--prompt", "a hall", "--frames", "2", "--size", "64x64", "--device", "cpu", "--precision", "fp8", "-o", output, "-q"])
        #expect(try SplatFile.read(InputSource(path: output)).0.count == 2 * 2 * 32 * 32)
        if (try? EngineCUDA.CUDABackend.open()) == nil {
            #expect { try run(["generate", "--prompt", "x", "--frames", "2", "--size", "64x64", "--device", "cuda", "-o", "\(folder)/c.spz", "-q"]) } throws: {
                ($0 as? ExitCode)?.rawValue == 69
            }
            #expect(!FileManager.default.fileExists(atPath: "\(folder)/c.spz"))
        }
    }

    /// Defaults belong to the model: the tiny model runs 4 frames at 256x192 unless told otherwise.
    @Test func theTinyModelDefaultsToASmallRun() throws {
        let output = "\(folder)/default.spz"
        // One frame keeps the test short; the size is the tiny model's default.
        try run(["generate", "--prompt", "a shed", "--frames", "1", "-o", output, "-q"])
        #expect(try SplatFile.read(InputSource(path: output)).0.count == 1 * 2 * 96 * 128)
        let tiny = try #require(try DioramaCommand.parseAsRoot(["generate", "--prompt", "x", "-o", output]) as? GenerateCommand)
        #expect(tiny.defaultFrames == 4 && tiny.defaultSize == ImageSize(width: 256, height: 192))
        let folderModel = try #require(try DioramaCommand.parseAsRoot(["generate", "--model", "/some/folder", "--prompt", "x", "-o", output]) as? GenerateCommand)
        #expect(folderModel.defaultFrames == 24 && folderModel.defaultSize == .flashWorld)
    }

    @Test func anImageConditionsTheTinyModel() throws {
        let image = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("MediaIOTests/Fixtures/pattern.jpg").path
        try run(["generate", "--image", image, "--image-index", "1", "--frames", "2", "--size", "64x32", "-o", "\(folder)/img.spz", "-q"])
        let (withImage, _) = try SplatFile.read(InputSource(path: "\(folder)/img.spz"))
        #expect(withImage.count == 2 * 2 * 16 * 32)
        // Not an image: a typed error before any work.
        #expect { try run(["generate", "--image", "\(folder)/img.spz", "--size", "64x32", "-o", "\(folder)/bad.spz", "-q"]) } throws: {
            ($0 as? ExitCode)?.rawValue == 65
        }
    }

    @Test func aFlashWorldRequestDrivesIt() throws {
        let request = "\(folder)/request.json"
        let json = """
            {"image_prompt": "", "text_prompt": "a harbour", "image_index": 0, "resolution": [2, 64, 96],
             "cameras": [{"quaternion": [1, 0, 0, 0], "position": [0, 0, 0], "fx": 55, "fy": 55, "cx": 48, "cy": 32},
                         {"quaternion": [1, 0, 0, 0], "position": [0, 0, -0.5], "fx": 55, "fy": 55, "cx": 48, "cy": 32}]}
            """
        try writeOutput(Array(json.utf8), to: request)
        // Two frames, from the request's resolution as the reference takes them.
        try run(["generate", "--request", request, "-o", "\(folder)/scene.spz", "-q"])
        let (cloud, _) = try SplatFile.read(InputSource(path: "\(folder)/scene.spz"))
        #expect(cloud.count == 2 * 2 * 32 * 48)
        // The request's seed is honoured, as the API honours it: the same scene as --seed gives; --seed wins.
        let seeded = "\(folder)/seeded.json"
        try writeOutput(Array(json.replacingOccurrences(of: "\"image_index\": 0", with: "\"image_index\": 0, \"seed\": 7").utf8), to: seeded)
        try run(["generate", "--request", seeded, "-o", "\(folder)/a.ply", "-q"])
        try run(["generate", "--request", request, "--seed", "7", "-o", "\(folder)/b.ply", "-q"])
        try run(["generate", "--request", seeded, "--seed", "8", "-o", "\(folder)/c.ply", "-q"])
        let (a, _) = try SplatFile.read(InputSource(path: "\(folder)/a.ply"))
        let (b, _) = try SplatFile.read(InputSource(path: "\(folder)/b.ply"))
        let (c, _) = try SplatFile.read(InputSource(path: "\(folder)/c.ply"))
        #expect(a == b && a != c)
    }

    @Test func badRequestsAreRefusedBeforeWork() {
        for arguments in [
            ["generate", "--prompt", "x", "-o", "s.txt"], ["generate", "--prompt", "x", "--size", "700x480", "-o", "s.spz"],
            ["generate", "-o", "s.spz"], ["generate", "--prompt", "x", "--frames", "0", "-o", "s.spz"],
            ["generate", "--prompt", "x", "--image-index", "30", "-o", "s.spz"],
        ] {
            #expect(throws: (any Error).self, "\(arguments)") { _ = try DioramaCommand.parseAsRoot(arguments) }
        }
        #expect { try run(["generate", "--model", "/nonexistent", "--prompt", "x", "-o", "\(folder)/a.spz", "-q"]) } throws: {
            ($0 as? ExitCode)?.rawValue == 65
        }
        #expect { try run(["generate", "--prompt", "   ", "-o", "\(folder)/b.spz", "-q"]) } throws: { ($0 as? ExitCode)?.rawValue == 65 }
        #expect(access("\(folder)/b.spz", F_OK) != 0)
    }
}
