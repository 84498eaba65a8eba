import FoundationEssentials
import Hummingbird
import SplatCore
import SplatIO

/// The image-to-3D service API as its clients call it (`service-and-ui.md` §2.4): a multipart `POST /generate`
/// answering the PLY, `POST /generate-spz` answering standard SPZ, `POST /generate_from_base64` answering JSON, and
/// `GET /health` with real states. Each image becomes an ordinary durable job (image-conditioned FlashWorld along the
/// default path) and the call waits for it, so the HTTP loop never blocks on the model.
enum ImageTo3DRoutes {
    enum Answer { case ply, spz }

    static func add(to router: Router<DioramaRequestContext>, service: GenerationService, configuration: ServiceConfiguration) {
        router.post("generate-spz") { request, _ -> Response in
            guard request.headers[.contentType]?.lowercased().hasPrefix("multipart/form-data") == true else {
                return HTTPResponses.error(415, "send multipart/form-data with a prompt_image_file part (and optionally seed)", detail: true)
            }
            return await generateFromForm(request, service: service, configuration: configuration, answer: .spz)
        }

        router.post("generate_from_base64") { request, _ -> Response in
            struct Body: Decodable {
                var prompt_type: String?
                var prompt_image: String?
                var seed: Int64?
            }
            do {
                let bytes = try await FlashWorldRoutes.collectBody(request, limit: service.limits.maxBodyBytes)
                guard let body = try? JSONDecoder().decode(Body.self, from: Data(bytes)) else {
                    throw ServiceError(400, "the body must be JSON: {\"prompt_image\": base64, \"seed\": int}")
                }
                guard (body.prompt_type ?? "image") == "image" else {
                    throw ServiceError(400, "prompt_type \"\(body.prompt_type!)\" is not supported; send an image (prompt_type \"image\")")
                }
                guard let text = body.prompt_image, let image = Data(base64Encoded: text, options: .ignoreUnknownCharacters), !image.isEmpty else {
                    throw ServiceError(400, "prompt_image must be a base64 image (PNG, JPEG or WebP)")
                }
                let began = Date()
                let answer: Answer = configuration.compression ? .spz : .ply
                let path = try await run(image: [UInt8](image), seed: body.seed, service: service, configuration: configuration, answer: answer)
                return HTTPResponses.json(200, [
                    "generation_time": Date().timeIntervalSince(began), "ply_file_base64": Data(try ArtifactStore.read(path)).base64EncodedString(),
                    "image_edited_file_base64": JSONNull.null, "image_without_background_file_base64": JSONNull.null,
                ])
            } catch {
                return HTTPResponses.error(error, detail: true)
            }
        }
    }

    /// The multipart form of `/generate` and `/generate-spz`: `prompt_image_file` and an optional `seed`.
    static func generateFromForm(_ request: Request, service: GenerationService, configuration: ServiceConfiguration, answer: Answer) async -> Response {
        do {
            let body = try await FlashWorldRoutes.collectBody(request, limit: service.limits.maxBodyBytes)
            let contentType = request.headers[.contentType] ?? ""
            let form = try await BlockingWork.parsing { () throws(ServiceError) in try MultipartForm(body: body, contentType: contentType) }
            guard let image = form.parts.first(where: { $0.name == "prompt_image_file" }), !image.data.isEmpty else {
                throw ServiceError(400, "the form needs a prompt_image_file part with the image (PNG, JPEG or WebP)")
            }
            var seed: Int64?
            if let part = form.parts.first(where: { $0.name == "seed" }) {
                let text = String(decoding: part.data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                guard let value = Int64(text) else { throw ServiceError(400, "seed must be a whole number, not \"\(text)\"") }
                seed = value
            }
            let path = try await run(image: image.data, seed: seed, service: service, configuration: configuration, answer: answer)
            // Streamed from the file in pieces, with its length, as the reference streams 1 MiB chunks.
            return HTTPResponses.file(path, request: request, contentType: "application/octet-stream", downloadName: "scene.\(answer == .ply ? "ply" : "spz")")
        } catch {
            return HTTPResponses.error(error, detail: true)
        }
    }

    /// Submits the image as a job and waits for its scene; the path of its PLY or SPZ.
    static func run(image: [UInt8], seed: Int64?, service: GenerationService, configuration: ServiceConfiguration, answer: Answer) async throws -> String {
        var fields: [String: Any] = [
            "image_prompt": Data(image).base64EncodedString(), "text_prompt": "", "image_index": 0,
            "resolution": [configuration.imageFrames, configuration.imageHeight, configuration.imageWidth],
        ]
        if let seed, seed >= 0 { fields["seed"] = seed }
        let (job, _) = try await service.submit(Array(JSONText.encode(fields).utf8))
        guard let finished = try await service.finished(id: job.id, timeout: configuration.syncTimeout) else {
            throw ServiceError(504, "the scene was not ready within \(Int(configuration.syncTimeout)) s; job \(job.id) continues (GET /v1/jobs/\(job.id))")
        }
        switch finished.status {
        case .completed: return try await ArtifactStore.path(for: answer == .ply ? .ply : .spz, of: finished, service: service)
        case .cancelled: throw ServiceError(409, "job \(job.id) was cancelled before its scene was made")
        case .expired: throw ServiceError(410, "the scene of job \(job.id) has expired")
        default: throw ServiceError(500, "the generation failed: \(finished.error ?? "no reason given")")
        }
    }
}

/// A `multipart/form-data` body split into its parts (RFC 7578): name, optional file name, bytes.
struct MultipartForm {
    struct Part {
        var name: String
        var fileName: String?
        var data: [UInt8]
    }
    var parts: [Part] = []

    /// RFC 2046's limits: a boundary of 1 to 70 characters from its set; and ours: part headers of at most 16 KiB and
    /// at most 64 parts. Every search is linear in the body.
    static let maxHeaderBytes = 16 << 10
    static let maxParts = 64
    static let boundaryCharacters = Set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? ".utf8)

    init(body: [UInt8], contentType: String) throws(ServiceError) {
        guard let range = contentType.range(of: "boundary=") else {
            throw ServiceError(400, "multipart/form-data needs a boundary in its Content-Type")
        }
        var boundary = String(contentType[range.upperBound...].prefix { $0 != ";" }).trimmingCharacters(in: .whitespaces)
        if boundary.hasPrefix("\""), boundary.hasSuffix("\""), boundary.count >= 2 { boundary = String(boundary.dropFirst().dropLast()) }
        guard !boundary.isEmpty else { throw ServiceError(400, "the multipart boundary is empty") }
        guard boundary.utf8.count <= 70, boundary.utf8.allSatisfy(Self.boundaryCharacters.contains), boundary.last != " " else {
            throw ServiceError(400, "the multipart boundary must be 1 to 70 letters, digits or '()+_,-./:=? (RFC 2046)")
        }
        let delimiter = Array("--\(boundary)".utf8)
        guard var cursor = Self.find(delimiter, in: body, from: 0) else { throw ServiceError(400, "the body has no multipart boundary \(boundary)") }
        while true {
            cursor += delimiter.count
            if body.count >= cursor + 2, body[cursor] == UInt8(ascii: "-"), body[cursor + 1] == UInt8(ascii: "-") { return }
            guard parts.count < Self.maxParts else { throw ServiceError(400, "the form has more than \(Self.maxParts) parts") }
            cursor = Self.skipLineBreak(body, cursor)
            guard let headerEnd = Self.find(Array("\r\n\r\n".utf8), in: body, from: cursor, within: Self.maxHeaderBytes + 4) else {
                throw ServiceError(400, "a multipart part's headers do not end within \(Self.maxHeaderBytes) bytes")
            }
            let headers = String(decoding: body[cursor..<headerEnd], as: UTF8.self)
            let dataStart = headerEnd + 4
            guard let next = Self.find(Array("\r\n".utf8) + delimiter, in: body, from: dataStart) else {
                throw ServiceError(400, "the multipart body ends before its closing boundary")
            }
            var name: String?, fileName: String?
            for line in headers.split(whereSeparator: { $0 == "\r" || $0 == "\n" }) where line.lowercased().hasPrefix("content-disposition:") {
                name = Self.parameter("name", in: String(line))
                fileName = Self.parameter("filename", in: String(line))
            }
            guard let name else { throw ServiceError(400, "a multipart part has no Content-Disposition name") }
            parts.append(Part(name: name, fileName: fileName, data: Array(body[dataStart..<next])))
            cursor = next + 2
        }
    }

    static func skipLineBreak(_ body: [UInt8], _ i: Int) -> Int {
        i + 1 < body.count && body[i] == 13 && body[i + 1] == 10 ? i + 2 : i
    }

    static func parameter(_ key: String, in line: String) -> String? {
        for piece in line.split(separator: ";").dropFirst() {
            let pair = piece.split(separator: "=", maxSplits: 1)
            guard pair.count == 2, pair[0].trimmingCharacters(in: .whitespaces).lowercased() == key else { continue }
            var value = pair[1].trimmingCharacters(in: .whitespaces)
            if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = String(value.dropFirst().dropLast()) }
            return value
        }
        return nil
    }

    /// The first `needle` at or after `start` (and within `within` bytes of it), in linear time (Knuth-Morris-Pratt:
    /// a body of dashes and a boundary of dashes cost one pass, not body x boundary).
    static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int, within: Int = .max) -> Int? {
        guard !needle.isEmpty, start >= 0, start <= haystack.count else { return nil }
        let end = start + min(haystack.count - start, within)
        guard end - start >= needle.count else { return nil }
        // failure[i]: the length of the longest proper prefix of needle[0...i] that is also its suffix.
        var failure = [Int](repeating: 0, count: needle.count)
        var k = 0
        for i in 1..<needle.count {
            while k > 0 && needle[i] != needle[k] { k = failure[k - 1] }
            if needle[i] == needle[k] { k += 1 }
            failure[i] = k
        }
        k = 0
        for i in start..<end {
            while k > 0 && haystack[i] != needle[k] { k = failure[k - 1] }
            if haystack[i] == needle[k] { k += 1 }
            if k == needle.count { return i - needle.count + 1 }
        }
        return nil
    }
}
