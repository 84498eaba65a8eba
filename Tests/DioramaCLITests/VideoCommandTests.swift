import ArgumentParser
import Foundation
import Testing

@testable import DioramaCLI

#if canImport(Glibc)
    import Glibc
#endif

/// `diorama video` with the built-in tiny-video model on the CPU, and the options it refuses before any work.
struct VideoCommandTests {
    @Test func tinyVideoWritesItsFramesAsPNGs() throws {
        var template = Array("/tmp/diorama-video-XXXXXX".utf8CString)
        let folder = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
        var command = try DioramaCommand.parseAsRoot(
            ["video", "--prompt", "waves", "--device", "cpu", "--steps", "2", "-o", "\(folder)/frames/", "-q"])
        try command.run()
        let names = try FileManager.default.contentsOfDirectory(atPath: "\(folder)/frames").sorted()
        #expect(names.count == 9 && names.first == "frame_0000.png" && names.last == "frame_0008.png")
    }

    @Test func badOptionsAreRefusedBeforeAnyWork() {
        for arguments in [
            ["video", "-o", "x.mp4"],  // neither a prompt nor an image
            ["video", "--prompt", "x", "-o", "x.gif"], ["video", "--prompt", "x", "--frames", "0", "-o", "d/"],
            ["video", "--prompt", "x", "--size", "100x50", "-o", "d/"], ["video", "--prompt", "x", "--steps", "0", "-o", "d/"],
            ["video", "--prompt", "x", "--guidance", "40", "-o", "d/"], ["video", "--prompt", "x", "--teacache", "-1", "-o", "d/"],
            ["video", "--prompt", "x", "--cfg-skip", "2", "-o", "d/"], ["video", "--prompt", "x", "--memory", "disk", "-o", "d/"],
            ["video", "--prompt", "x", "--sampler", "ddim", "-o", "d/"], ["video", "--prompt", "x", "--lora", "a.safetensors:99", "-o", "d/"],
            ["bench", "video", "--frames", "8"],
        ] {
            #expect(throws: (any Error).self, "\(arguments)") { _ = try DioramaCommand.parseAsRoot(arguments) }
        }
    }
}
