import Cameras
import FoundationEssentials

/// What a scene file records about how it was made (`SplatMetadata`: a PLY comment, an SPZ extension), in the
/// scene's frame (OpenGL axes, RUB) and units: the cameras it was generated along, and, for a grown world, each
/// chunk's first-camera pose, its scale and how that was estimated, oldest first (as the `.chunks.json` sidecar lists
/// them).
public struct SceneRecord: Codable, Sendable, Equatable {
    public struct Chunk: Codable, Sendable, Equatable {
        /// The scene file it was grown into, and the chunk's own file (for undo), where the CLI wrote them.
        public var scene: String?
        public var chunk: String?
        public var position: [Double]
        public var orientationWXYZ: [Double]
        public var scale: Double
        public var pixels: Int
        public var spread: Double
        public var pruned: Int

        public init(_ placement: ChunkPlacement, scene: String? = nil, chunk: String? = nil) {
            let p = placement.pose.position
            (self.scene, self.chunk) = (scene, chunk)
            position = [p.x, p.y, p.z]
            orientationWXYZ = placement.pose.orientation.wxyz
            (scale, pixels, spread, pruned) = (placement.scale, placement.pixels, placement.spread, placement.pruned)
        }
    }

    public var frame = "RUB"
    /// The generation path's cameras as 11-value vectors `[qw qx qy qz px py pz fx fy cx cy]` (`Camera.vector`,
    /// intrinsics normalised), at the scene's scale; nil where unknown.
    public var cameras: [[Double]]?
    public var chunks: [Chunk]

    public init(cameras: [Camera]? = nil, chunks: [Chunk] = []) {
        self.cameras = cameras?.map(\.vector)
        self.chunks = chunks
    }

    /// The generation path's cameras, the ones that read.
    public var pathCameras: [Camera] { (cameras ?? []).compactMap { try? Camera(vector: $0) } }

    /// A generated scene's record: its cameras as the cloud holds them (camera 0 at the origin, the scene's scale).
    public init(generated result: GenerationResult) { self.init(cameras: result.normalization.camerasAtExportScale) }

    /// The record in a scene file's metadata; nil when it has none (a scene never grown) or another document.
    public init?(metadata: String?) {
        guard let metadata, let record = try? JSONDecoder().decode(SceneRecord.self, from: Data(metadata.utf8)) else { return nil }
        self = record
    }

    /// One line of JSON, for `SplatWriteOptions.metadata`; nil when a value cannot be written (a camera that is not
    /// finite, from a path of absurd coordinates): the scene is written without its record rather than not at all.
    public var metadata: String? {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) }
    }
}
