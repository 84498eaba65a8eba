import ArgumentParser
import Cameras
import EngineCUDA
import Foundation
import MediaIO
import SplatCore
import SplatIO
import Testing

@testable import DioramaCLI

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct RenderCommandTests {
    let folder: String = {
        var template = Array("/tmp/diorama-render-XXXXXX".utf8CString)
        return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    }()

    func run(_ arguments: [String]) throws {
        var command = try DioramaCommand.parseAsRoot(arguments)
        try command.run()
    }

    func bytes(_ path: String) throws -> [UInt8] { try InputSource(path: path).allBytes() }

    func files(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Width and height from a PNG's IHDR.
    func pngSize(_ png: [UInt8]) -> (Int, Int) {
        func u32(_ at: Int) -> Int { png[at..<at + 4].reduce(0) { $0 << 8 | Int($1) } }
        return (u32(16), u32(20))
    }

    func writeScene(_ name: String, count: Int = 3000) throws -> String {
        let path = "\(folder)/\(name)"
        var cloud = GaussianCloud.synthetic(count: count, shDegree: 1, extent: 1)
        for i in 0..<count { cloud.logitOpacities[i] = 2 }
        try SplatFile.write(cloud, toPath: path)
        return path
    }

    /// `GaussianCloud.syntheticWall()` written as `name`.
    func writeWall(_ name: String) throws -> String {
        let path = "\(folder)/\(name)"
        try SplatFile.write(GaussianCloud.syntheticWall(), toPath: path)
        return path
    }

    func exitCode(_ error: any Error) -> Int32? { (error as? ExitCode)?.rawValue }

    @Test func cameraPathWritesTheRequestShape() throws {
        let path = "\(folder)/path.json"
        try run(["camera-path", "forward", "orbit-left", "--frames", "5", "--size", "480x704", "-o", path])
        let document = try CameraPathDocument(json: bytes(path))
        #expect(document.resolution == [5, 704, 480])
        #expect(document.cameras.count == 5)
        #expect(document.cameras[0].quaternion == [1, 0, 0, 0] && document.cameras[0].cx == 240)
        try run(["camera-path", "forward", "orbit-left", "--keyframes-only", "-o", path])
        #expect(try CameraPathDocument(json: bytes(path)).cameras.count == 3)
        try run(["camera-path", "--from", path, "--frames", "7", "-o", "\(folder)/dense.json"])
        #expect(try CameraPathDocument(json: bytes("\(folder)/dense.json")).cameras.count == 7)
    }

    @Test func renderWritesPNGFramesAlongACameraFile() throws {
        let scene = try writeScene("scene.ply")
        let path = "\(folder)/cams.json"
        try run(["camera-path", "orbit", "--frames", "3", "--radius", "4", "--size", "64x48", "-o", path])
        try run(["render", scene, "--camera-path", path, "-o", "\(folder)/frames/", "-q"])
        #expect(files("\(folder)/frames") == ["frame_0000.png", "frame_0001.png", "frame_0002.png"])
        let png = try bytes("\(folder)/frames/frame_0001.png")
        #expect(pngSize(png) == (64, 48))
        try run(["render", scene, "--frames", "1", "--size", "40x30", "--background", "black", "-o", "\(folder)/still.png", "-q"])
        #expect(pngSize(try bytes("\(folder)/still.png")) == (40, 30))
        // A one-camera file needs no --frames for a single PNG, and keeps its resolution.
        try run(["camera-path", "forward", "--keyframes-only", "--size", "50x20", "-o", "\(folder)/one.json"])
        let one = try CameraPathDocument(json: bytes("\(folder)/one.json"))
        try writeOutput(CameraPathDocument(cameras: [one.cameras[1]], resolution: [1, 20, 50]).jsonBytes(), to: "\(folder)/one.json")
        try run(["render", scene, "--camera-path", "\(folder)/one.json", "-o", "\(folder)/one.png", "-q"])
        #expect(pngSize(try bytes("\(folder)/one.png")) == (50, 20))
        // A .png is one frame by default: no --frames needed, with the default path or a many-camera file.
        try run(["render", scene, "--size", "32x24", "-o", "\(folder)/default.png", "-q"])
        #expect(pngSize(try bytes("\(folder)/default.png")) == (32, 24))
        try run(["render", scene, "--camera-path", path, "-o", "\(folder)/first.png", "-q"])
        #expect(pngSize(try bytes("\(folder)/first.png")) == (64, 48))
    }

    /// `--depth` writes each view's depth beside it: a plane of splats three units ahead of camera 0 reads 3 where it
    /// covers the view and 0 around it.
    @Test func renderWritesDepthMapsBesideFrames() throws {
        let scene = try writeWall("plane.ply")
        try run(["camera-path", "forward", "--keyframes-only", "--size", "64x48", "-o", "\(folder)/zero.json"])
        let document = try CameraPathDocument(json: bytes("\(folder)/zero.json"))
        try writeOutput(CameraPathDocument(cameras: [document.cameras[0]], resolution: [1, 48, 64]).jsonBytes(), to: "\(folder)/zero.json")
        try run(["render", scene, "--camera-path", "\(folder)/zero.json", "--depth", "-o", "\(folder)/plane.png", "-q"])
        let map = try #require(PFMEncoder.decode(try bytes("\(folder)/plane.depth.pfm")))
        #expect(map.width == 64 && map.height == 48)
        #expect(abs(map.values[24 * 64 + 32] - 3) < 0.03, "the centre: \(map.values[24 * 64 + 32])")
        #expect(map.values[0] == 0 && map.values[47 * 64 + 63] == 0, "nothing in the corners")
        // Frames in a folder get theirs beside them.
        try run(["render", scene, "--camera-path", "\(folder)/zero.json", "--depth", "-o", "\(folder)/depthframes/", "-q"])
        #expect(files("\(folder)/depthframes") == ["frame_0000.depth.pfm", "frame_0000.png"])
    }

    @Test(.enabled(if: VideoEncoder.locateFFmpeg() != nil, "needs the ffmpeg program"))
    func renderWritesAnMP4() throws {
        let scene = try writeScene("scene.spz")
        try run(["render", scene, "--camera-path", "forward,orbit-right", "--frames", "6", "--size", "64x48", "-o", "\(folder)/clip.mp4", "-q"])
        let video = try bytes("\(folder)/clip.mp4")
        #expect(String(decoding: video[4..<8], as: UTF8.self) == "ftyp")
        #expect(files(folder).allSatisfy { !$0.hasPrefix(".") }, "no temporary files left")
    }

    @Test func badScenesAndCamerasFailWithoutOutput() throws {
        let empty = "\(folder)/empty.ply"
        try SplatFile.write(GaussianCloud(count: 0, shDegree: 0), toPath: empty)
        #expect { try run(["render", empty, "-o", "\(folder)/a/", "-q"]) } throws: { exitCode($0) == 65 }
        #expect(files("\(folder)/a").isEmpty)

        let scene = try writeScene("scene.ply", count: 100)
        let badCamera = "\(folder)/bad.json"
        let json = "{\"cameras\": [{\"quaternion\": [0, 0, 0, 0], \"position\": [0, 0, 0], \"fx\": 100, \"fy\": 100, \"cx\": 32, \"cy\": 24}]}"
        try writeOutput(Array(json.utf8), to: badCamera)
        #expect { try run(["render", scene, "--camera-path", badCamera, "-o", "\(folder)/b/", "-q"]) } throws: { exitCode($0) == 65 }
        #expect(files("\(folder)/b").isEmpty)
        #expect { try run(["render", scene, "--camera-path", "\(folder)/missing.json", "-o", "\(folder)/c/", "-q"]) } throws: {
            exitCode($0) == 65
        }
        #expect { try run(["render", scene, "--size", "100000x10", "-o", "\(folder)/d/", "-q"]) } throws: { exitCode($0) == 65 }
        // A mistyped path name.
        #expect { try run(["render", scene, "--camera-path", "orbit-lft", "-o", "\(folder)/e.png", "-q"]) } throws: { exitCode($0) == 65 }
        #expect(files(folder).allSatisfy { !$0.hasSuffix(".png") })
    }

    /// `--panorama` writes an equirectangular image (and with `--depth` its ray distances) from camera #0; a size that
    /// is not twice as wide as high is refused.
    @Test func renderWritesPanoramas() throws {
        let scene = try writeScene("pano.ply")
        try run(["render", scene, "--panorama", "--depth", "--size", "64x32", "-o", "\(folder)/pano.png", "-q"])
        #expect(pngSize(try bytes("\(folder)/pano.png")) == (64, 32))
        let map = try #require(PFMEncoder.decode(try bytes("\(folder)/pano.depth.pfm")))
        #expect(map.width == 64 && map.height == 32 && map.values.contains { $0 > 0 })
        #expect(throws: (any Error).self) { _ = try DioramaCommand.parseAsRoot(["render", scene, "--panorama", "--size", "64x48", "-o", "x.png"]) }
    }

    /// `diorama mesh` writes binary glTF, the visual mesh or the collider; other names and sizes are refused.
    @Test func meshWritesGLB() throws {
        let scene = try writeWall("wall.ply")
        for (name, extra) in [("mesh.glb", [String]()), ("collider.glb", ["--collider", "--triangles", "500"])] {
            try run(["mesh", scene, "--from", "inside", "--resolution", "32", "--view-size", "96", "-o", "\(folder)/\(name)", "-q"] + extra)
            let glb = try bytes("\(folder)/\(name)")
            #expect(Array(glb.prefix(4)) == Array("glTF".utf8), "\(name)")
            #expect(String(decoding: glb, as: UTF8.self).contains("COLOR_0") == (name == "mesh.glb"))
        }
        // A sparse cloud leaves nothing to fuse: a data error, and no file.
        let sparse = try writeScene("sparse.ply", count: 200)
        #expect(throws: (any Error).self) { try run(["mesh", sparse, "--resolution", "16", "--view-size", "64", "-o", "\(folder)/none.glb", "-q"]) }
        #expect(!files(folder).contains("none.glb"))
        for arguments in [["mesh", scene, "-o", "x.obj"], ["mesh", scene, "-o", "x.glb", "--resolution", "4"], ["mesh", scene, "-o", "x.glb", "--triangles", "3"], ["mesh", scene, "-o", "x.glb", "--from", "above"]] {
            #expect(throws: (any Error).self, "\(arguments)") { _ = try DioramaCommand.parseAsRoot(arguments) }
        }
    }

    @Test func badOptionsAreRejectedBeforeReading() {
        for arguments in [
            ["render", "s.ply", "-o", "x.png", "--frames", "2"], ["render", "s.ply", "-o", "x.mp4", "--frames", "0"],
            ["render", "s.ply", "-o", "x.mp4", "--size", "0x10"], ["render", "s.ply", "-o", "x.mp4", "--fps", "0"],
            ["render", "s.ply", "-o", "x.mp4", "--background", "mauve"], ["render", "s.ply", "-o", "out.gif"],
            ["render", "s.ply", "-o", "x.mp4", "--fov", "200"], ["render", "s.ply", "-o", "x.mp4", "--sh-degree", "5"],
            ["camera-path"], ["camera-path", "sideways"], ["camera-path", "orbit", "forward"],
            ["camera-path", "forward", "--from", "a.json"], ["camera-path", "forward", "--frames", "0"],
        ] {
            #expect(throws: (any Error).self, "\(arguments)") { _ = try DioramaCommand.parseAsRoot(arguments) }
        }
    }

    /// A device that does not exist is refused before any rendering; `engine info` says when no GPU can be used.
    @Test func devicesAreCheckedBeforeWork() throws {
        let scene = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("SplatRenderTests/Fixtures/gsplat/scene.ply").path
        #expect(throws: (any Error).self) { try run(["render", scene, "-o", "\(folder)/never.png", "--frames", "1", "--device", "tpu", "-q"]) }
        #expect(!FileManager.default.fileExists(atPath: "\(folder)/never.png"))
        if (try? EngineCUDA.CUDABackend.open()) == nil {
            #expect { try self.run(["engine", "info"]) } throws: { ($0 as? ExitCode)?.rawValue == 69 }
        }
    }
}
