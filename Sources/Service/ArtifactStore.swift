import Cameras
import FlashWorld
import FoundationEssentials
import MediaIO
import SplatCore
import SplatIO
import SplatRender

#if canImport(Glibc)
    import Glibc
#endif

/// A finished job's files: the PLY written when it finished, and SPZ, .splat, the orbit MP4, the GLB mesh and collider
/// and the panorama made from it the first time they are asked for (once however many ask at the same moment, on a Dispatch thread, written beside and
/// renamed into place, so an interrupted conversion never serves half a file).
enum ArtifactStore {
    static func path(for artifact: GenerationService.Artifact, of job: JobRecord, service: GenerationService) async throws -> String {
        if job.status == .expired { throw ServiceError(410, "the files of job \(job.id) have expired") }
        guard job.status == .completed else { throw ServiceError(409, "job \(job.id) is \(job.status.rawValue); its files exist once it completes") }
        // A video job has its MP4 and nothing else; a scene job everything but that.
        guard VideoJobParser.isVideo(job.request) == (artifact == .video) else {
            throw ServiceError(404, artifact == .video ? "job \(job.id) made a scene, not a video" : "job \(job.id) made a video; its file is video.mp4")
        }
        if artifact == .video {
            let path = service.artifactPath(job.fileID, .video)
            guard access(path, R_OK) == 0 else { throw ServiceError(410, "the video of job \(job.id) has expired or was deleted") }
            return path
        }
        let source = service.artifactPath(job.fileID, .ply)
        let target = service.artifactPath(job.fileID, artifact)
        if access(target, R_OK) == 0 { return target }
        guard access(source, R_OK) == 0 else { throw ServiceError(410, "the files of job \(job.id) have expired or were deleted") }
        let (limits, videoFrames, meshResolution) = (service.limits, service.videoFrames, service.meshResolution)
        try await service.converting(target) {
            let (cloud, description) = try SplatFile.read(InputSource(path: source))
            switch artifact {
            case .ply, .video, .extensionBase: break
            case .spz, .splat: try SplatFile.write(cloud, toPath: target, options: SplatWriteOptions(metadata: description.metadata))
            case .glb, .collider:
                var options = SceneMesher.Options()
                options.resolution = meshResolution
                options.viewSize = 2 * meshResolution
                options.pathViews = SceneRecord(metadata: description.metadata)?.pathCameras ?? []
                let rub = cloud.frame == .rub ? cloud : cloud.converted(to: .rub)
                let volume = try SceneMesher(options: options).fuse(rub)
                let mesh = artifact == .collider
                    ? try SceneMesher.collider(from: volume, triangles: SceneMesher.defaultColliderTriangles) : volume.extractSurface()
                guard mesh.triangleCount > 0 else { throw ServiceError(422, "the scene has no surface opaque enough to mesh") }
                let output = try AtomicFileOutput(path: target)
                try output.write(try GLBWriter.encode(mesh))
                try output.commit()
            case .panorama:
                // From where the scene was generated: camera #0, the origin of its frame (a grown world's too).
                let rub = cloud.frame == .rub ? cloud : cloud.converted(to: .rub)
                let size = (width: 2048, height: 1024)
                let origin = Camera(orientation: .identity, position: .zero, intrinsics: NormalizedIntrinsics(fx: 1, fy: 1, cx: 0.5, cy: 0.5))
                let panorama = try PanoramaRenderer().render(rub, from: origin, width: size.width, height: size.height)
                let output = try AtomicFileOutput(path: target)
                try output.write(try PNGEncoder.encode(width: size.width, height: size.height, channels: 3, pixels: panorama.rgb8()))
                try output.commit()
            case .flashWorldSPZ:
                var raw = cloud.pruned(minOpacity: 0.00025)
                raw.frame = SPZReader.defaultFrame  // the positions as they are, no frame extension: the reference's bytes
                try SplatFile.write(raw, toPath: target, format: .spz)
            case .mp4:
                // A 4-second swing around the scene's content from the side it was generated from (camera 0's, in
                // the cloud's frame), the generation's aspect at 480p or more.
                let request = try FlashWorldRequest.parse(job.request, limits: limits)
                let path = request.cameras.count == request.frames ? CameraPath(request.cameras) : CameraPath(request.cameras).resampled(count: request.frames)
                let first = SceneVideo.path(normalizedCameras(path.cameras)).cameras[0]
                let size = SceneVideo.videoSize(width: request.width, height: request.height)
                let temporary = "\(target).partial-\(UInt32.random(in: 0...UInt32.max)).mp4"
                do {
                    try SceneVideo.write(
                        cloud, along: SceneVideo.orbit(around: cloud, from: first), width: size.width, height: size.height, to: temporary,
                        frames: videoFrames)
                } catch {
                    unlink(temporary)
                    throw ServiceError(500, "the orbit video could not be made: \(error)")
                }
                guard rename(temporary, target) == 0 else {
                    unlink(temporary)
                    throw ServiceError(500, "could not place \(target)")
                }
            }
        }
        // Deleted or expired while it was being made: the new file must not outlive its job.
        guard let current = try await service.job(id: job.id), current.status == .completed else {
            unlink(target)
            throw ServiceError(410, "job \(job.id) was deleted or expired while its \(artifact.rawValue) was made")
        }
        return target
    }

    static func read(_ path: String) throws -> [UInt8] {
        try InputSource(path: path).allBytes()
    }

    static func contentType(_ artifact: GenerationService.Artifact) -> String {
        switch artifact {
        case .mp4, .video: "video/mp4"
        case .glb, .collider: "model/gltf-binary"
        case .panorama: "image/png"
        default: "application/octet-stream"
        }
    }
}
