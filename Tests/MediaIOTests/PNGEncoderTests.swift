import CZlib
import Foundation
import Testing

@testable import MediaIO

/// A minimal PNG reader for the tests: checks signature, chunk CRCs and IHDR, inflates IDAT and undoes the filters.
func decodePNG(_ file: [UInt8]) throws -> (width: Int, height: Int, channels: Int, pixels: [UInt8]) {
    struct Bad: Error { var why: String }
    guard file.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) else { throw Bad(why: "signature") }
    func u32(_ at: Int) -> Int { file[at..<at + 4].reduce(0) { $0 << 8 | Int($1) } }
    var at = 8
    var width = 0, height = 0, channels = 0
    var idat: [UInt8] = []
    var sawEnd = false
    while at < file.count {
        let length = u32(at)
        let type = String(decoding: file[at + 4..<at + 8], as: UTF8.self)
        let body = Array(file[at + 8..<at + 8 + length])
        let crc = file[at + 4..<at + 8 + length].withContiguousStorageIfAvailable { crc32(0, $0.baseAddress, uInt($0.count)) }
            ?? Array(file[at + 4..<at + 8 + length]).withUnsafeBufferPointer { crc32(0, $0.baseAddress, uInt($0.count)) }
        guard Int(crc) == u32(at + 8 + length) else { throw Bad(why: "CRC of \(type)") }
        switch type {
        case "IHDR":
            width = body[0..<4].reduce(0) { $0 << 8 | Int($1) }
            height = body[4..<8].reduce(0) { $0 << 8 | Int($1) }
            guard body[8] == 8 else { throw Bad(why: "bit depth") }
            channels = [0: 1, 4: 2, 2: 3, 6: 4][Int(body[9])]!
        case "IDAT": idat += body
        case "IEND": sawEnd = true
        default: break
        }
        at += 12 + length
    }
    guard sawEnd else { throw Bad(why: "no IEND") }
    let stride = width * channels
    var raw = [UInt8](repeating: 0, count: height * (stride + 1))
    var rawLength = uLongf(raw.count)
    guard uncompress(&raw, &rawLength, idat, uLong(idat.count)) == Z_OK, Int(rawLength) == raw.count else {
        throw Bad(why: "inflate")
    }
    var pixels = [UInt8](repeating: 0, count: height * stride)
    for y in 0..<height {
        let filter = raw[y * (stride + 1)]
        for i in 0..<stride {
            let x = Int(raw[y * (stride + 1) + 1 + i])
            let a = i >= channels ? Int(pixels[y * stride + i - channels]) : 0
            let b = y > 0 ? Int(pixels[(y - 1) * stride + i]) : 0
            let c = (i >= channels && y > 0) ? Int(pixels[(y - 1) * stride + i - channels]) : 0
            let predicted: Int
            switch filter {
            case 0: predicted = 0
            case 1: predicted = a
            case 2: predicted = b
            case 3: predicted = (a + b) / 2
            case 4: predicted = PNGEncoder.paeth(a, b, c)
            default: throw Bad(why: "filter \(filter)")
            }
            pixels[y * stride + i] = UInt8(truncatingIfNeeded: x + predicted)
        }
    }
    return (width, height, channels, pixels)
}

struct PNGEncoderTests {
    @Test(arguments: [1, 2, 3, 4])
    func imagesRoundTripExactly(channels: Int) throws {
        let (w, h) = (37, 23)
        // A gradient plus noise, so every filter type wins somewhere.
        var state: UInt32 = 12345
        let pixels = (0..<(w * h * channels)).map { i -> UInt8 in
            state = state &* 1_664_525 &+ 1_013_904_223
            let x = (i / channels) % w, y = i / (channels * w)
            return i % 5 == 0 ? UInt8(state >> 24) : UInt8((x * 7 + y * 3 + i % channels * 40) & 0xFF)
        }
        let png = try PNGEncoder.encode(width: w, height: h, channels: channels, pixels: pixels)
        let decoded = try decodePNG(png)
        #expect(decoded.width == w && decoded.height == h && decoded.channels == channels)
        #expect(decoded.pixels == pixels)
        let filters = Set((0..<h).map { y in try! Self.filterByte(png, row: y, stride: w * channels) })
        #expect(filters.count > 1, "adaptive filtering should pick more than one filter here")
    }

    /// The filter byte of a row, from the inflated stream.
    static func filterByte(_ png: [UInt8], row: Int, stride: Int) throws -> UInt8 {
        var at = 8
        var idat: [UInt8] = []
        while at < png.count {
            let length = png[at..<at + 4].reduce(0) { $0 << 8 | Int($1) }
            if String(decoding: png[at + 4..<at + 8], as: UTF8.self) == "IDAT" { idat += png[at + 8..<at + 8 + length] }
            at += 12 + length
        }
        var raw = [UInt8](repeating: 0, count: 1 << 20)
        var n = uLongf(raw.count)
        _ = uncompress(&raw, &n, idat, uLong(idat.count))
        return raw[row * (stride + 1)]
    }

    @Test func badImagesAreRefused() {
        #expect(throws: MediaError.self) { try PNGEncoder.encode(width: 4, height: 4, channels: 3, pixels: [0, 1, 2]) }
        #expect(throws: MediaError.self) { try PNGEncoder.encode(width: 0, height: 4, channels: 3, pixels: []) }
        #expect(throws: MediaError.self) { try PNGEncoder.encode(width: 1, height: 1, channels: 5, pixels: [0, 0, 0, 0, 0]) }
    }
}

// Serialized: one test changes $DIORAMA_FFMPEG, which the others read.
@Suite(.serialized) struct VideoEncoderTests {
    @Test(.enabled(if: VideoEncoder.locateFFmpeg() != nil, "needs the ffmpeg program"))
    func framesBecomeAnMP4OnlyWhenFinished() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("diorama-video-\(getpid())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("clip.mp4").path
        let encoder = try VideoEncoder(path: path, width: 33, height: 17, fps: 12)
        for k in 0..<6 { try encoder.append(rgb: [UInt8](repeating: UInt8(k * 40), count: 33 * 17 * 3)) }
        #expect(!FileManager.default.fileExists(atPath: path), "nothing appears before finish()")
        try encoder.finish()
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(bytes.count > 200)
        #expect(String(decoding: bytes[4..<8], as: UTF8.self) == "ftyp")
        // No temporary files are left beside it.
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == ["clip.mp4"])
        #expect(throws: MediaError.self) { try encoder.append(rgb: [UInt8](repeating: 0, count: 33 * 17 * 3)) }
    }

    @Test(.enabled(if: VideoEncoder.locateFFmpeg() != nil, "needs the ffmpeg program"))
    func cancelledOrWrongFramesLeaveNothing() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("diorama-video-cancel-\(getpid())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("clip.mp4").path
        let encoder = try VideoEncoder(path: path, width: 16, height: 16, fps: 24)
        try encoder.append(rgb: [UInt8](repeating: 128, count: 16 * 16 * 3))
        #expect(throws: MediaError.self) { try encoder.append(rgb: [1, 2, 3]) }
        encoder.cancel()
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).isEmpty)
    }

    @Test func aMissingEncoderIsNamed() throws {
        setenv("DIORAMA_FFMPEG", "/nonexistent/ffmpeg", 1)
        defer { unsetenv("DIORAMA_FFMPEG") }
        #expect {
            _ = try VideoEncoder(path: "/tmp/never.mp4", width: 16, height: 16, fps: 24)
        } throws: { error in
            (error as? MediaError)?.kind == .encoderMissing && "\(error)".contains("apt-get install ffmpeg")
        }
    }
}
