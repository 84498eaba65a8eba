import EngineCore
import MediaIO

#if canImport(Glibc)
    import Glibc
#endif

/// Generated frames leaving the device: `[t, 3, h, w]` in [−1, 1] as 8-bit RGB pictures, and as an MP4 written to a
/// temporary name and renamed into place when complete (an interrupted write never leaves a half file).
public struct VideoFrames: Sendable {
    public let count: Int
    public let width: Int
    public let height: Int
    private let values: [Float]

    /// One read-back of the whole video (visible: the frames are done when this returns).
    public init(_ frames: Tensor, on backend: any Backend) throws(EngineError) {
        guard frames.rank == 4, frames.shape[1] == 3 else {
            throw EngineError(.shapeMismatch, "video frames \(frames.shape) must be [t, 3, h, w]")
        }
        (count, height, width) = (frames.shape[0], frames.shape[2], frames.shape[3])
        values = try backend.download(try backend.cast(frames, to: .float32)).floats()
    }

    /// Frame `t` as interleaved RGB bytes, `x·0.5 + 0.5` clamped and rounded as diffusers' postprocessing does.
    public func rgb(_ t: Int) -> [UInt8] {
        let plane = width * height, base = t * 3 * plane
        var bytes = [UInt8](repeating: 0, count: 3 * plane)
        for p in 0..<plane {
            for c in 0..<3 { bytes[3 * p + c] = UInt8((min(max(values[base + c * plane + p] * 0.5 + 0.5, 0), 1) * 255).rounded()) }
        }
        return bytes
    }

    /// Writes an H.264 MP4 at `fps` through ffmpeg.
    public func writeMP4(to path: String, fps: Int) throws(MediaError) {
        let partial = "\(path).partial-\(UInt32.random(in: 0...UInt32.max)).mp4"
        do {
            let encoder = try VideoEncoder(path: partial, width: width, height: height, fps: Double(fps))
            for t in 0..<count { try encoder.append(rgb: rgb(t)) }
            try encoder.finish()
        } catch {
            unlink(partial)
            throw error
        }
        guard rename(partial, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(partial)
            throw MediaError(.io, "cannot place \(path): \(reason)")
        }
    }
}
