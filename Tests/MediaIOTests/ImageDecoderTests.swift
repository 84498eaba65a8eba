import Foundation
import Testing

@testable import MediaIO

struct ImageDecoderTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    func bytes(_ name: String) throws -> [UInt8] { try [UInt8](Data(contentsOf: Self.folder.appendingPathComponent(name))) }

    @Test func pngWebPAndJPEGDecodeToTheSamePattern() throws {
        let png = try ImageDecoder.decode(try bytes("pattern.png"), name: "pattern.png")
        #expect(png.width == 36 && png.height == 22 && png.pixels.count == 36 * 22 * 3)
        #expect(Set(png.pixels).count > 20, "a test pattern, not a flat image")
        let webp = try ImageDecoder.decode(try bytes("pattern.webp"), name: "pattern.webp")
        #expect(webp == png, "lossless WebP decodes to the PNG's pixels")
        let jpeg = try ImageDecoder.decode(try bytes("pattern.jpg"), name: "pattern.jpg")
        #expect(jpeg.width == 36 && jpeg.height == 22)
        let meanError = zip(jpeg.pixels, png.pixels).reduce(0) { $0 + abs(Int($1.0) - Int($1.1)) } / png.pixels.count
        #expect(meanError < 8, "a quality-1 JPEG stays close to its source")
    }

    @Test func ourPNGsDecodeExactly() throws {
        let pixels = (0..<(19 * 11 * 3)).map { UInt8(($0 * 37) % 256) }
        let png = try PNGEncoder.encode(width: 19, height: 11, channels: 3, pixels: pixels)
        #expect(try ImageDecoder.decode(png, name: "ours.png") == RGBImage(width: 19, height: 11, pixels: pixels))
    }

    @Test func damagedOrUnknownImagesAreTypedErrors() throws {
        let png = try bytes("pattern.png"), jpeg = try bytes("pattern.jpg"), webp = try bytes("pattern.webp")
        for (name, data) in [
            ("text.png", Array("hello".utf8)), ("cut.png", Array(png.prefix(60))), ("cut.jpg", Array(jpeg.prefix(40))),
            ("cut.webp", Array(webp.prefix(30))), ("empty", []),
        ] {
            #expect {
                _ = try ImageDecoder.decode(data, name: name)
            } throws: { ($0 as? MediaError).map { $0.kind == .invalidImage && $0.message.hasPrefix(name) } ?? false }
        }
    }

    /// FlashWorld's crop arithmetic (app.py L439-457), numbers from Python: the covering scale, whole-pixel box, and
    /// intrinsics moved into the resized image's pixels.
    @Test func centreCropFollowsTheReference() {
        let wide = CenterCrop(imageWidth: 300, imageHeight: 100, width: 128, height: 96)
        #expect(wide.scale == 0.96 && wide.box == (83, 0, 133, 100))
        let k = wide.intrinsics(fx: 100, fy: 100, cx: 150, cy: 50)
        #expect(abs(k.fx - 96) < 1e-12 && abs(k.cx - 64.32) < 1e-12 && abs(k.cy - 48) < 1e-12)
        let tall = CenterCrop(imageWidth: 36, imageHeight: 22, width: 64, height: 32)
        #expect(tall.scale == 64.0 / 36 && tall.box == (0, 2, 36, 18))
        #expect(CenterCrop(imageWidth: 704, imageHeight: 480, width: 704, height: 480).intrinsics(fx: 415.7, fy: 415.7, cx: 352, cy: 240) == (415.7, 415.7, 352, 240))
    }

    @Test func centreCropKeepsTheMiddleAndResizes() {
        // A 4x2 image whose left and right quarters differ: cropping to square keeps the middle half.
        var pixels = [UInt8](repeating: 100, count: 4 * 2 * 3)
        for y in 0..<2 { for c in 0..<3 { pixels[(y * 4) * 3 + c] = 0; pixels[(y * 4 + 3) * 3 + c] = 255 } }
        let square = RGBImage(width: 4, height: 2, pixels: pixels).centerCroppedAndResized(width: 2, height: 2)
        #expect(square.pixels.allSatisfy { $0 == 100 })
        let big = RGBImage(width: 4, height: 2, pixels: pixels).centerCroppedAndResized(width: 8, height: 4)
        #expect(big.width == 8 && big.height == 4)
    }
}
