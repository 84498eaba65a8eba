#if canImport(Glibc)
    import Glibc
#endif

/// How FlashWorld fits an uploaded image to the generation size (`app.py` L439-457): the scale that makes it cover
/// `width` × `height`, and the whole-pixel box of the source that is kept. Cameras given in the image's pixels move
/// with it: `fx, fy` times `scale`, `cx, cy` minus the box's corner, times `scale`.
public struct CenterCrop: Sendable, Equatable {
    public let scale: Double
    public let box: (left: Int, top: Int, width: Int, height: Int)

    public init(imageWidth: Int, imageHeight: Int, width: Int, height: Int) {
        let (w, h) = (Double(imageWidth), Double(imageHeight))
        scale = Double(height) / h > Double(width) / w ? Double(height) / h : Double(width) / w
        let keptWidth = Int(Double(width) / scale), keptHeight = Int(Double(height) / scale)
        box = ((imageWidth - keptWidth) / 2, (imageHeight - keptHeight) / 2, keptWidth, keptHeight)
    }

    public static func == (a: Self, b: Self) -> Bool { a.scale == b.scale && a.box == b.box }

    /// Pixel intrinsics of the source image in the cropped, resized image's pixels.
    public func intrinsics(fx: Double, fy: Double, cx: Double, cy: Double) -> (fx: Double, fy: Double, cx: Double, cy: Double) {
        (fx * scale, fy * scale, (cx - Double(box.left)) * scale, (cy - Double(box.top)) * scale)
    }
}

/// An 8-bit RGB image, row-major.
public struct RGBImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// FlashWorld's centred crop (`CenterCrop`), resized to exactly `width` × `height` by averaging the source pixels
    /// each output pixel covers (so shrinking does not alias), as a conditioning image needs.
    public func centerCroppedAndResized(width outWidth: Int, height outHeight: Int) -> RGBImage {
        let crop = CenterCrop(imageWidth: width, imageHeight: height, width: outWidth, height: outHeight)
        let cropWidth = Double(crop.box.width), cropHeight = Double(crop.box.height)
        let left = Double(crop.box.left), top = Double(crop.box.top)
        var out = [UInt8](repeating: 0, count: outWidth * outHeight * 3)
        for y in 0..<outHeight {
            let y0 = top + Double(y) * cropHeight / Double(outHeight), y1 = y0 + cropHeight / Double(outHeight)
            for x in 0..<outWidth {
                let x0 = left + Double(x) * cropWidth / Double(outWidth), x1 = x0 + cropWidth / Double(outWidth)
                var sum = (0.0, 0.0, 0.0), area = 0.0
                var sy = Int(y0.rounded(.down))
                while Double(sy) < y1 && sy < height {
                    let wy = min(Double(sy + 1), y1) - max(Double(sy), y0)
                    var sx = Int(x0.rounded(.down))
                    while Double(sx) < x1 && sx < width {
                        let weight = wy * (min(Double(sx + 1), x1) - max(Double(sx), x0))
                        let p = (max(sy, 0) * width + max(sx, 0)) * 3
                        sum.0 += weight * Double(pixels[p])
                        sum.1 += weight * Double(pixels[p + 1])
                        sum.2 += weight * Double(pixels[p + 2])
                        area += weight
                        sx += 1
                    }
                    sy += 1
                }
                let o = (y * outWidth + x) * 3
                let a = max(area, 1e-12)
                out[o] = UInt8(min(max((sum.0 / a).rounded(), 0), 255))
                out[o + 1] = UInt8(min(max((sum.1 / a).rounded(), 0), 255))
                out[o + 2] = UInt8(min(max((sum.2 / a).rounded(), 0), 255))
            }
        }
        return RGBImage(width: outWidth, height: outHeight, pixels: out)
    }
}

/// Decodes PNG, JPEG and WebP through Debian's libpng, libturbojpeg and libwebp, opened at run time (so a binary that
/// never reads images runs where they are absent). Every failure is a `MediaError` that names the file.
public enum ImageDecoder {
    /// Images beyond this many pixels are refused before decoding.
    public static let maxPixels = 1 << 26

    public enum Format: String, Sendable {
        case png, jpeg, webp
    }

    public static func format(of bytes: [UInt8]) -> Format? {
        if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return .png }
        if bytes.starts(with: [0xFF, 0xD8, 0xFF]) { return .jpeg }
        if bytes.count >= 12 && bytes.starts(with: Array("RIFF".utf8)) && Array(bytes[8..<12]) == Array("WEBP".utf8) { return .webp }
        return nil
    }

    public static func decode(_ bytes: [UInt8], name: String) throws(MediaError) -> RGBImage {
        guard let format = format(of: bytes) else {
            throw MediaError(.invalidImage, "\(name): not a PNG, JPEG or WebP image (unrecognised first bytes)")
        }
        switch format {
        case .png: return try decodePNG(bytes, name: name)
        case .jpeg: return try decodeJPEG(bytes, name: name)
        case .webp: return try decodeWebP(bytes, name: name)
        }
    }

    static func library(_ names: [String], for purpose: String) throws(MediaError) -> UnsafeMutableRawPointer {
        for name in names { if let handle = dlopen(name, RTLD_NOW | RTLD_LOCAL) { return handle } }
        throw MediaError(.encoderMissing, "\(purpose) needs \(names[0]) (Debian: the README's setup script installs it)")
    }

    static func symbol<T>(_ handle: UnsafeMutableRawPointer, _ name: String, _ type: T.Type) throws(MediaError) -> T {
        guard let s = dlsym(handle, name) else { throw MediaError(.encoderMissing, "the image library has no \(name)") }
        return unsafeBitCast(s, to: type)
    }

    static func checkSize(_ width: Int, _ height: Int, name: String) throws(MediaError) {
        guard width > 0, height > 0, width * height <= maxPixels else {
            throw MediaError(.invalidImage, "\(name): \(width)x\(height) pixels is empty or larger than \(maxPixels) pixels")
        }
    }

    /// libpng's simplified API (no setjmp): `png_image` laid out as the header declares it.
    struct PNGImage {
        var opaque: UnsafeMutableRawPointer? = nil
        var version: UInt32 = 1
        var width: UInt32 = 0
        var height: UInt32 = 0
        var format: UInt32 = 0
        var flags: UInt32 = 0
        var colormapEntries: UInt32 = 0
        var warningOrError: UInt32 = 0
        // char message[64]: four-byte words keep it at offset 36, as in C.
        var message: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    }

    static func decodePNG(_ bytes: [UInt8], name: String) throws(MediaError) -> RGBImage {
        let lib = try library(["libpng16.so.16", "libpng16.so"], for: "reading PNG")
        typealias Begin = @convention(c) (UnsafeMutableRawPointer, UnsafeRawPointer, Int) -> Int32
        typealias Finish = @convention(c) (UnsafeMutableRawPointer, UnsafeRawPointer?, UnsafeMutableRawPointer, Int32, UnsafeMutableRawPointer?) -> Int32
        typealias Free = @convention(c) (UnsafeMutableRawPointer) -> Void
        let begin = try symbol(lib, "png_image_begin_read_from_memory", Begin.self)
        let finish = try symbol(lib, "png_image_finish_read", Finish.self)
        let free = try symbol(lib, "png_image_free", Free.self)
        var image = PNGImage()
        func message(_ image: inout PNGImage) -> String {
            withUnsafeBytes(of: &image.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
        let started = withUnsafeMutablePointer(to: &image) { p in bytes.withUnsafeBytes { begin(p, $0.baseAddress!, $0.count) } }
        guard started != 0 else { throw MediaError(.invalidImage, "\(name): \(message(&image))") }
        let (width, height) = (Int(image.width), Int(image.height))
        do throws(MediaError) { try checkSize(width, height, name: name) } catch {
            withUnsafeMutablePointer(to: &image) { free($0) }
            throw error
        }
        image.format = 2  // PNG_FORMAT_RGB
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        let finished = withUnsafeMutablePointer(to: &image) { p in
            pixels.withUnsafeMutableBytes { finish(p, nil, $0.baseAddress!, Int32(width * 3), nil) }
        }
        guard finished != 0 else { throw MediaError(.invalidImage, "\(name): \(message(&image))") }
        return RGBImage(width: width, height: height, pixels: pixels)
    }

    static func decodeJPEG(_ bytes: [UInt8], name: String) throws(MediaError) -> RGBImage {
        let lib = try library(["libturbojpeg.so.0", "libturbojpeg.so"], for: "reading JPEG")
        typealias Initialise = @convention(c) () -> OpaquePointer?
        typealias Header = @convention(c) (OpaquePointer?, UnsafePointer<UInt8>, UInt, UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) -> Int32
        typealias Decompress = @convention(c) (OpaquePointer?, UnsafePointer<UInt8>, UInt, UnsafeMutablePointer<UInt8>, Int32, Int32, Int32, Int32, Int32) -> Int32
        typealias ErrorString = @convention(c) (OpaquePointer?) -> UnsafePointer<CChar>?
        typealias Destroy = @convention(c) (OpaquePointer?) -> Int32
        let initialise = try symbol(lib, "tjInitDecompress", Initialise.self)
        let header = try symbol(lib, "tjDecompressHeader3", Header.self)
        let decompress = try symbol(lib, "tjDecompress2", Decompress.self)
        let errorString = try symbol(lib, "tjGetErrorStr2", ErrorString.self)
        let destroy = try symbol(lib, "tjDestroy", Destroy.self)
        guard let handle = initialise() else { throw MediaError(.invalidImage, "\(name): cannot start the JPEG decoder") }
        defer { _ = destroy(handle) }
        var width: Int32 = 0, height: Int32 = 0, subsampling: Int32 = 0, colorspace: Int32 = 0
        let read = bytes.withUnsafeBufferPointer { header(handle, $0.baseAddress!, UInt($0.count), &width, &height, &subsampling, &colorspace) }
        guard read == 0 else { throw MediaError(.invalidImage, "\(name): \(errorString(handle).map { String(cString: $0) } ?? "not a JPEG")") }
        try checkSize(Int(width), Int(height), name: name)
        var pixels = [UInt8](repeating: 0, count: Int(width) * Int(height) * 3)
        let status = bytes.withUnsafeBufferPointer { src in
            pixels.withUnsafeMutableBufferPointer { decompress(handle, src.baseAddress!, UInt(src.count), $0.baseAddress!, width, width * 3, height, 0, 0) }
        }
        guard status == 0 else { throw MediaError(.invalidImage, "\(name): \(errorString(handle).map { String(cString: $0) } ?? "cannot decode")") }
        return RGBImage(width: Int(width), height: Int(height), pixels: pixels)
    }

    static func decodeWebP(_ bytes: [UInt8], name: String) throws(MediaError) -> RGBImage {
        let lib = try library(["libwebp.so.7", "libwebp.so"], for: "reading WebP")
        typealias Info = @convention(c) (UnsafePointer<UInt8>, Int, UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) -> Int32
        typealias Decode = @convention(c) (UnsafePointer<UInt8>, Int, UnsafeMutablePointer<UInt8>, Int, Int32) -> UnsafeMutablePointer<UInt8>?
        let info = try symbol(lib, "WebPGetInfo", Info.self)
        let decode = try symbol(lib, "WebPDecodeRGBInto", Decode.self)
        var width: Int32 = 0, height: Int32 = 0
        guard bytes.withUnsafeBufferPointer({ info($0.baseAddress!, $0.count, &width, &height) }) != 0 else {
            throw MediaError(.invalidImage, "\(name): not a valid WebP image")
        }
        try checkSize(Int(width), Int(height), name: name)
        var pixels = [UInt8](repeating: 0, count: Int(width) * Int(height) * 3)
        let done = bytes.withUnsafeBufferPointer { src in
            pixels.withUnsafeMutableBufferPointer { decode(src.baseAddress!, src.count, $0.baseAddress!, $0.count, width * 3) != nil }
        }
        guard done else { throw MediaError(.invalidImage, "\(name): the WebP data is damaged") }
        return RGBImage(width: Int(width), height: Int(height), pixels: pixels)
    }
}
