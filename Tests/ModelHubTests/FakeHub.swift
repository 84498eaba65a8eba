import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// A repository the fake hub serves: small files answered directly, LFS files through a redirect to a CDN host.
struct FakeRepository: Sendable {
    var name: String
    var commit: String
    var files: [String: [UInt8]]
    var largeFiles: Set<String> = []
    /// Needs `Authorization: Bearer <token>` on the hub's own routes.
    var token: String?
    /// Files whose bytes differ from what the listing says.
    var corrupted: Set<String> = []

    static func sha256(_ bytes: [UInt8]) -> String { SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined() }
    static func gitBlob(_ bytes: [UInt8]) -> String {
        Insecure.SHA1.hash(data: Array("blob \(bytes.count)\0".utf8) + bytes).map { String(format: "%02x", $0) }.joined()
    }
}

/// What the fake hub saw.
actor HubLog {
    struct Entry: Sendable {
        var path: String
        var authorization: String?
        var range: String?
    }
    var entries: [Entry] = []
    /// CDN transfers to cut short (once each): the body stops after half the bytes.
    var breakOnce: Set<String>
    init(breakOnce: Set<String>) { self.breakOnce = breakOnce }
    func record(_ entry: Entry) { entries.append(entry) }
    func shouldBreak(_ file: String) -> Bool { breakOnce.remove(file) != nil }
}

/// A local HTTP server speaking the hub's protocol as huggingface_hub uses it: the repository listing with file
/// metadata (`/api/models/<repo>/revision/<rev>?blobs=true`), `resolve` with `X-Repo-Commit` and ETags, LFS files by
/// a redirect to another host name (`localhost` for the hub's `127.0.0.1`) that honours Range.
struct FakeHub {
    var repositories: [FakeRepository]

    func run(breakOnce: Set<String> = [], _ body: @Sendable (_ endpoint: String, _ log: HubLog) async throws -> Void) async throws {
        let log = HubLog(breakOnce: breakOnce)
        let port = PortBox()
        let repositories = self.repositories
        let router = Router()
        router.get("**") { request, _ -> Response in
            try await Self.answer(request, repositories: repositories, log: log, port: await port.value)
        }
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in await port.set(channel.localAddress?.port ?? 0) })
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.run() }
            var waited = 0
            while await port.value == 0 && waited < 500 {
                try await Task.sleep(for: .milliseconds(10))
                waited += 1
            }
            try await body("http://127.0.0.1:\(await port.value)", log)
            group.cancelAll()
        }
    }

    static func answer(_ request: Request, repositories: [FakeRepository], log: HubLog, port: Int) async throws -> Response {
        let path = request.uri.path
        let authorization = request.headers[.authorization]
        await log.record(.init(path: path, authorization: authorization, range: request.headers[.range]))
        let parts = path.split(separator: "/").map(String.init)
        func find(_ org: String, _ name: String) -> FakeRepository? { repositories.first { $0.name == "\(org)/\(name)" } }
        func refused(_ repository: FakeRepository) -> Response? {
            guard let token = repository.token, authorization != "Bearer \(token)" else { return nil }
            return Response(status: .unauthorized)
        }
        // /api/models/<org>/<name>/revision/<rev>
        if parts.count == 6, parts[0] == "api", parts[1] == "models", parts[4] == "revision" {
            guard let repository = find(parts[2], parts[3]) else { return Response(status: .notFound) }
            if let refusal = refused(repository) { return refusal }
            guard parts[5] == "main" || parts[5] == repository.commit else { return Response(status: .notFound) }
            let siblings: [[String: Any]] = repository.files.keys.sorted().map { name in
                let bytes = repository.files[name]!
                var entry: [String: Any] = ["rfilename": name, "size": bytes.count]
                if repository.largeFiles.contains(name) {
                    entry["blobId"] = FakeRepository.gitBlob(Array("pointer \(name)".utf8))
                    entry["lfs"] = ["sha256": FakeRepository.sha256(bytes), "size": bytes.count, "pointerSize": 130]
                } else {
                    entry["blobId"] = FakeRepository.gitBlob(bytes)
                }
                return entry
            }
            return json(["id": repository.name, "sha": repository.commit, "siblings": siblings])
        }
        // /<org>/<name>/resolve/<rev>/<file...>
        if parts.count >= 5, parts[2] == "resolve", let repository = find(parts[0], parts[1]) {
            if let refusal = refused(repository) { return refusal }
            guard parts[3] == "main" || parts[3] == repository.commit else { return Response(status: .notFound) }
            let file = parts[4...].joined(separator: "/").removingPercentEncoding ?? ""
            guard let bytes = repository.files[file] else { return Response(status: .notFound) }
            var headers = HTTPFields()
            headers[HTTPField.Name("X-Repo-Commit")!] = repository.commit
            if repository.largeFiles.contains(file) {
                let sha = FakeRepository.sha256(bytes)
                headers[HTTPField.Name("X-Linked-Etag")!] = "\"\(sha)\""
                headers[HTTPField.Name("X-Linked-Size")!] = "\(bytes.count)"
                headers[.location] = "http://localhost:\(port)/cdn/\(repository.name)/\(file)"
                return Response(status: .found, headers: headers)
            }
            headers[.eTag] = "\"\(FakeRepository.gitBlob(bytes))\""
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: served(repository, file, bytes))))
        }
        // /cdn/<org>/<name>/<file...>: another host name, bytes with Range.
        if parts.count >= 4, parts[0] == "cdn", let repository = find(parts[1], parts[2]) {
            let file = parts[3...].joined(separator: "/")
            guard let original = repository.files[file] else { return Response(status: .notFound) }
            let bytes = served(repository, file, original)
            var start = 0
            if let range = request.headers[.range], range.hasPrefix("bytes="), let from = Int(range.dropFirst(6).prefix { $0 != "-" }) {
                guard from < bytes.count else { return Response(status: .rangeNotSatisfiable) }
                start = from
            }
            var headers = HTTPFields()
            headers[.contentLength] = "\(bytes.count - start)"
            if start > 0 { headers[.contentRange] = "bytes \(start)-\(bytes.count - 1)/\(bytes.count)" }
            let cut = await log.shouldBreak(file)
            let body = Array(bytes[start...])
            return Response(
                status: start > 0 ? .partialContent : .ok, headers: headers,
                body: ResponseBody { writer in
                    if cut {
                        // Half the bytes, then the connection drops.
                        try await writer.write(ByteBuffer(bytes: body.prefix(body.count / 2)))
                        throw CancellationError()
                    }
                    try await writer.write(ByteBuffer(bytes: body))
                    try await writer.finish(nil)
                })
        }
        return Response(status: .notFound)
    }

    static func served(_ repository: FakeRepository, _ file: String, _ bytes: [UInt8]) -> [UInt8] {
        repository.corrupted.contains(file) ? bytes.map { $0 ^ 0x5A } : bytes
    }

    static func json(_ object: [String: Any]) -> Response {
        let data = try! JSONSerialization.data(withJSONObject: object)
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: Array(data))))
    }
}

actor PortBox {
    var value = 0
    func set(_ port: Int) { value = port }
}
