import FoundationEssentials

/// One camera as the FlashWorld API and web UI write it: a w-first quaternion, a position, and intrinsics in pixels
/// at the generation resolution (`service-and-ui.md` §1.1).
public struct CameraRecord: Codable, Equatable, Sendable {
    public var quaternion: [Double]
    public var position: [Double]
    public var fx: Double
    public var fy: Double
    public var cx: Double
    public var cy: Double

    public init(_ camera: Camera, width: Int, height: Int) {
        let k = camera.intrinsics.inPixels(width: width, height: height)
        quaternion = camera.orientation.wxyz
        position = [camera.position.x, camera.position.y, camera.position.z]
        (fx, fy, cx, cy) = (k.fx, k.fy, k.cx, k.cy)
    }

    /// The camera, with intrinsics normalised by `width` × `height`; checked.
    public func camera(width: Int, height: Int, index: Int? = nil) throws(CameraError) -> Camera {
        guard quaternion.count == 4 else {
            throw CameraError(.invalidValue, camera: index, field: "quaternion", "has \(quaternion.count) values; expected [w, x, y, z]")
        }
        guard position.count == 3 else {
            throw CameraError(.invalidValue, camera: index, field: "position", "has \(position.count) values; expected [x, y, z]")
        }
        let pixels = PixelIntrinsics(fx: fx, fy: fy, cx: cx, cy: cy)
        return try Camera(
            orientation: Quaternion(quaternion), position: SIMD3(position[0], position[1], position[2]),
            intrinsics: pixels.normalized(width: width, height: height), index: index)
    }
}

/// A camera path file: the FlashWorld request JSON (`{"cameras": [...], "resolution": [frames, H, W], ...}`, other
/// request fields ignored) or a bare list of cameras.
public struct CameraPathDocument: Equatable, Sendable {
    public var cameras: [CameraRecord]
    /// `[frames, height, width]` when the file states it.
    public var resolution: [Int]?

    public init(cameras: [CameraRecord], resolution: [Int]?) {
        self.cameras = cameras
        self.resolution = resolution
    }

    /// A document for `cameras` at `width` × `height`, recording that resolution.
    public init(_ cameras: [Camera], width: Int, height: Int) {
        self.cameras = cameras.map { CameraRecord($0, width: width, height: height) }
        resolution = [cameras.count, height, width]
    }

    /// The size the file states, if any: `(width, height)`.
    public var size: (width: Int, height: Int)? {
        guard let r = resolution, r.count == 3 else { return nil }
        return (r[2], r[1])
    }

    private struct Object: Codable {
        var cameras: [CameraRecord]
        var resolution: [Int]?
    }

    public init(json: some Collection<UInt8>) throws(CameraError) {
        let data = Data(json)
        do {
            if data.first(where: { !$0.isWhitespace }) == UInt8(ascii: "[") {
                self.init(cameras: try JSONDecoder().decode([CameraRecord].self, from: data), resolution: nil)
            } else {
                let object = try JSONDecoder().decode(Object.self, from: data)
                self.init(cameras: object.cameras, resolution: object.resolution)
            }
        } catch let error as DecodingError {
            throw CameraError(.invalidFile, error.explanation)
        } catch {
            throw CameraError(.invalidFile, "is not valid JSON: \(error)")
        }
        if let r = resolution {
            guard r.count == 3, r.allSatisfy({ $0 > 0 }) else {
                throw CameraError(.invalidValue, field: "resolution", "is \(r); expected [frames, height, width], all positive")
            }
        }
        guard !cameras.isEmpty else { throw CameraError(.invalidValue, field: "cameras", "is empty") }
    }

    /// The same cameras with their pixel intrinsics mapped, e.g. into a cropped and resized image's pixels.
    public func intrinsicsMapped(
        _ transform: (_ fx: Double, _ fy: Double, _ cx: Double, _ cy: Double) -> (fx: Double, fy: Double, cx: Double, cy: Double)
    ) -> CameraPathDocument {
        var copy = self
        for i in copy.cameras.indices {
            let c = copy.cameras[i]
            (copy.cameras[i].fx, copy.cameras[i].fy, copy.cameras[i].cx, copy.cameras[i].cy) = transform(c.fx, c.fy, c.cx, c.cy)
        }
        return copy
    }

    /// The cameras, normalised by the file's resolution or else by `width` × `height`; each one checked.
    public func resolvedCameras(defaultWidth: Int, defaultHeight: Int) throws(CameraError) -> [Camera] {
        let (w, h) = size ?? (defaultWidth, defaultHeight)
        var result: [Camera] = []
        result.reserveCapacity(cameras.count)
        for (i, record) in cameras.enumerated() { result.append(try record.camera(width: w, height: h, index: i)) }
        return result
    }

    /// JSON in the API's field order, one camera per line.
    public func jsonBytes() -> [UInt8] {
        func number(_ v: Double) -> String {
            // Integral values print without a fraction; others in Swift's shortest round-trip form.
            v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : "\(v)"
        }
        func list(_ values: [Double]) -> String { "[" + values.map(number).joined(separator: ", ") + "]" }
        let lines = cameras.map { c in
            "    {\"quaternion\": \(list(c.quaternion)), \"position\": \(list(c.position)), \"fx\": \(number(c.fx)), "
                + "\"fy\": \(number(c.fy)), \"cx\": \(number(c.cx)), \"cy\": \(number(c.cy))}"
        }
        var text = "{\n  \"cameras\": [\n" + lines.joined(separator: ",\n") + "\n  ]"
        if let resolution { text += ",\n  \"resolution\": [" + resolution.map(String.init).joined(separator: ", ") + "]" }
        text += "\n}\n"
        return Array(text.utf8)
    }
}

extension UInt8 {
    fileprivate var isWhitespace: Bool { self == 0x20 || self == 0x0A || self == 0x0D || self == 0x09 }
}

extension DecodingError {
    /// Names the JSON path of the problem, e.g. `cameras[3].fx`.
    fileprivate var explanation: String {
        func path(_ keys: [any CodingKey]) -> String {
            var s = ""
            for key in keys {
                if let i = key.intValue { s += "[\(i)]" } else { s += (s.isEmpty ? "" : ".") + key.stringValue }
            }
            return s.isEmpty ? "the top level" : s
        }
        switch self {
        case .keyNotFound(let key, let context): return "is missing \(path(context.codingPath + [key]))"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "has a wrong value at \(path(context.codingPath)): \(context.debugDescription)"
        case .dataCorrupted(let context): return "is not valid JSON at \(path(context.codingPath)): \(context.debugDescription)"
        @unknown default: return "is not a camera path: \(self)"
        }
    }
}
