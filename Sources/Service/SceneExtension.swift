import Cameras
import FoundationEssentials
import SplatIO

#if canImport(Glibc)
    import Glibc
#endif

/// `POST /v1/jobs/{id}/extend`: world expansion as a job. The body names where the new chunk's path starts in the
/// scene (or gives its cameras), and what to call it; the job stored is an ordinary scene request with explicit
/// cameras and the parent's id, so a restarted server runs it unchanged.
enum SceneExtensionRequest {
    struct Pose: Decodable {
        var position: [Double]
        var orientation: [Double]
    }

    struct Body: Decodable {
        var text_prompt: String?
        var start: Pose?
        var path: String?
        var fov: Double?
        var resolution: [Int]?
        var seed: Int64?
        var cameras: [CameraRecord]?
    }

    /// What is stored: FlashWorld's request fields with explicit cameras, and the parent's id.
    struct Stored: Encodable {
        var text_prompt: String
        var resolution: [Int]
        var image_index = 0
        var seed: Int64?
        var cameras: [CameraRecord]
        var extend_from: String
    }

    static let fields: Set = ["text_prompt", "start", "path", "fov", "resolution", "seed", "cameras"]
    /// Two steps ahead from where the viewer stands, as `diorama extend`'s default.
    static let defaultPath = "forward,forward"

    /// The scene request body to store for growing `parent`'s scene as `bytes` asks.
    static func storedBody(_ bytes: [UInt8], parent: JobRecord) throws(ServiceError) -> [UInt8] {
        // An empty body asks for every default.
        let json = Data(bytes.isEmpty ? Array("{}".utf8) : bytes)
        let body: Body
        do {
            body = try JSONDecoder().decode(Body.self, from: json)
        } catch let error as DecodingError {
            throw ServiceError(400, error.requestMessage)
        } catch {
            throw ServiceError(400, "the body is not JSON")
        }
        if let object = try? JSONDecoder().decode([String: JSONValue].self, from: json) {
            try JSONValue.refuseUnknownFields(of: object, known: fields)
        }
        let inherited = FlashWorldRequest.summary(parent.request)
        let resolution = body.resolution ?? [inherited.frames, inherited.height, inherited.width]
        let cameras: [CameraRecord]
        if let records = body.cameras {
            guard body.start == nil, body.path == nil, body.fov == nil else {
                throw ServiceError(400, "give cameras, or start, path and fov; not both")
            }
            cameras = records
        } else {
            let steps = (body.path ?? defaultPath).split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            let parsed = steps.compactMap(PathStep.init(rawValue:))
            guard !steps.isEmpty, parsed.count == steps.count else {
                throw ServiceError(
                    400, "path must be template steps joined by commas (\(PathStep.allCases.map(\.rawValue).joined(separator: ", "))), not \(body.path ?? "")")
            }
            let fov = body.fov ?? 60
            guard fov > 1, fov < 179 else { throw ServiceError(400, "fov must be between 1 and 179 degrees, not \(fov)") }
            guard resolution.count == 3, resolution.allSatisfy({ $0 > 0 }) else {
                throw ServiceError(400, "resolution must be [frames, height, width], three positive numbers, not \(resolution)")
            }
            var path = CameraPath.keyframes(parsed, intrinsics: NormalizedIntrinsics(verticalFieldOfView: fov, width: resolution[2], height: resolution[1]))
            if let start = body.start {
                guard start.position.count == 3, start.orientation.count == 4, (start.position + start.orientation).allSatisfy(\.isFinite) else {
                    throw ServiceError(400, "start must be {\"position\": [x, y, z], \"orientation\": [w, x, y, z]} with finite numbers")
                }
                let orientation = Quaternion(start.orientation)
                guard orientation.lengthSquared > 1e-12 else { throw ServiceError(400, "start.orientation must not be the zero quaternion") }
                path = path.startingAt(orientation: orientation, position: SIMD3(start.position[0], start.position[1], start.position[2]))
            }
            cameras = CameraPathDocument(path.cameras, width: resolution[2], height: resolution[1]).cameras
        }
        let stored = Stored(
            text_prompt: body.text_prompt ?? inherited.prompt, resolution: resolution, seed: body.seed, cameras: cameras, extend_from: parent.id)
        // Plain values: encoding cannot fail.
        return Array(try! JSONEncoder().encode(stored))
    }
}

extension GenerationService {
    /// Queues a job that grows `parentID`'s scene. The parent's PLY is linked under the new job's name before the job
    /// is stored, so the job runs even if the parent is deleted or expires meanwhile.
    public nonisolated func submitExtension(of parentID: String, body: [UInt8]) async throws -> (JobRecord, QueueInfo) {
        guard let parent = try await job(id: parentID) else { throw ServiceError(404, "no job \(parentID)") }
        guard !VideoJobParser.isVideo(parent.request) else { throw ServiceError(409, "job \(parentID) made a video; only scenes grow") }
        if parent.status == .expired { throw ServiceError(410, "the files of job \(parentID) have expired") }
        guard parent.status == .completed else {
            throw ServiceError(409, "job \(parentID) is \(parent.status.rawValue); a scene grows once its job has completed")
        }
        let source = artifactPath(parent.fileID, .ply)
        guard access(source, R_OK) == 0 else { throw ServiceError(410, "the files of job \(parentID) have expired or were deleted") }
        let limits = self.limits
        let (stored, request) = try await BlockingWork.parsing { () throws(ServiceError) in
            let stored = try SceneExtensionRequest.storedBody(body, parent: parent)
            return (stored, try FlashWorldRequest.parse(stored, limits: limits, stored: true))
        }
        let summary = JobSummary(
            kind: "scene", prompt: request.prompt, frames: request.frames, width: request.width, height: request.height, steps: 4, extends: parent.id)
        return try await enqueue(stored, seed: request.seed, summary: summary) { fileID in
            let base = self.artifactPath(fileID, .extensionBase)
            guard link(source, base) != 0 else { return }
            let failure = errno
            if failure == ENOENT { throw ServiceError(410, "the files of job \(parentID) were deleted just now") }
            // Filesystems without hard links (some network and object-store mounts): a copy, written atomically.
            do {
                let output = try AtomicFileOutput(path: base)
                try output.write(try InputSource(path: source).allBytes())
                try output.commit()
            } catch {
                throw ServiceError(500, "cannot keep the scene to grow (\(String(cString: strerror(failure))), and a copy failed: \(error)")
            }
        }
    }
}
