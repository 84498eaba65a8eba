import AsyncHTTPClient
import Crypto
import FoundationEssentials
import NIOCore
import NIOHTTP1

#if canImport(Glibc)
    import Glibc
#endif

/// One file of a repository as the hub lists it (`/api/models/<repo>/revision/<rev>?blobs=true`).
struct HubListedFile: Decodable, Sendable {
    struct LargeFile: Decodable, Sendable {
        var sha256: String
        var size: Int64
    }
    var rfilename: String
    var size: Int64?
    var blobId: String?
    var lfs: LargeFile?

    /// The cache names a blob by its ETag: the SHA-256 for LFS files, the git blob id for the rest.
    var etag: String? { lfs?.sha256 ?? blobId }
    var byteCount: Int64? { lfs?.size ?? size }
}

struct HubListing: Decodable, Sendable {
    var sha: String
    var siblings: [HubListedFile]
}

/// Where a pull is: the file being fetched and the bytes of it and of the whole model.
public struct PullProgress: Sendable {
    public var file: String
    public var fileBytes: Int64
    public var fileTotal: Int64
    public var bytes: Int64
    public var total: Int64
}

public struct PullSummary: Sendable, Equatable {
    public var model: ResolvedModel
    public var files: Int
    public var downloadedFiles: Int
    /// The sizes of the files downloaded this time (a resumed file counts whole).
    public var downloadedBytes: Int64
}

/// Fetches the files a model needs into the hub's cache: listed once per repository, every file fetched from the
/// listed commit (so a branch moving mid-pull cannot mix revisions), resumed with HTTP Range from a partial blob,
/// verified against the hub's SHA-256 (LFS) or git blob id before it becomes the blob, linked into the snapshot.
/// Files already in the cache are not fetched again.
public struct ModelPull: Sendable {
    public var settings: HubSettings
    public var userAgent = "diorama"
    /// How often a broken transfer is resumed before the pull gives up.
    public var attempts = 4

    public init(settings: HubSettings) { self.settings = settings }

    public func pull(_ model: HubModel, progress: @escaping @Sendable (PullProgress) -> Void = { _ in }) async throws(HubError) -> PullSummary {
        if settings.offline {
            do {
                let resolved = try settings.cache.resolve(model)
                return PullSummary(model: resolved, files: 0, downloadedFiles: 0, downloadedBytes: 0)
            } catch {
                throw HubError(.notDownloaded, "HF_HUB_OFFLINE is set, so nothing can be fetched, and \(error.message)")
            }
        }
        do {
            return try await HTTPClient.withHTTPClient(configuration: clientConfiguration) { client in
                try await pull(model, client: client, progress: progress)
            }
        } catch let error as HubError {
            throw error
        } catch {
            throw HubError(.network, "cannot reach \(settings.endpoint): \(error)")
        }
    }

    var clientConfiguration: HTTPClient.Configuration {
        // Redirects are followed here, not by the client, so the token never goes to another host (the hub's CDN).
        HTTPClient.Configuration(redirectConfiguration: .disallow, timeout: .init(connect: .seconds(20), read: .seconds(60)))
    }

    func pull(_ model: HubModel, client: HTTPClient, progress: @escaping @Sendable (PullProgress) -> Void) async throws -> PullSummary {
        var plans: [(part: HubModel.Part, commit: String, files: [HubListedFile])] = []
        for part in model.parts {
            let listing = try await list(part, client: client)
            // Everything the listing names becomes a path in the cache: a commit, hashes and file names that could
            // leave it (a hostile mirror) are refused.
            guard HubCache.isCommit(listing.sha) else {
                throw HubError(.verification, "\(part.repository): the listing's commit \"\(listing.sha.prefix(80))\" is not a commit id")
            }
            let files = listing.siblings.filter { part.wants($0.rfilename) }
            if let unsafe = files.first(where: { !HubCache.isSafeRelativePath($0.rfilename) || !($0.etag.map(HubCache.isHash) ?? true) }) {
                throw HubError(.verification, "\(part.repository) lists a file the cache cannot hold safely: \(unsafe.rfilename.prefix(200))")
            }
            let missing = part.required.filter { name in
                guard let star = name.range(of: "/*") else { return !files.contains { $0.rfilename == name } }
                let (folder, suffix) = (name[..<star.lowerBound] + "/", String(name[star.upperBound...]))
                return !files.contains { $0.rfilename.hasPrefix(folder) && $0.rfilename.hasSuffix(suffix) }
            }
            guard missing.isEmpty else {
                throw HubError(.verification, "\(part.repository) at \(listing.sha) does not list \(missing.joined(separator: ", ")), which \(model.name) needs")
            }
            plans.append((part, listing.sha, files))
        }
        let cache = settings.cache
        let pending = plans.flatMap { plan in
            plan.files.filter { file in file.etag.map { HubFiles.size(cache.blob(plan.part.repository, etag: $0)) == file.byteCount } != true }
        }
        let total = pending.reduce(Int64(0)) { $0 + ($1.byteCount ?? 0) }
        var done: Int64 = 0, downloaded = 0, fileCount = 0
        for plan in plans {
            for file in plan.files {
                fileCount += 1
                let repository = plan.part.repository
                if let etag = file.etag, HubFiles.size(cache.blob(repository, etag: etag)) == file.byteCount {
                    try cache.link(repository, commit: plan.commit, file: file.rfilename, etag: etag)
                    continue
                }
                let before = done
                let etag = try await download(file, of: repository, commit: plan.commit, client: client) { fileBytes, fileTotal in
                    progress(PullProgress(file: file.rfilename, fileBytes: fileBytes, fileTotal: fileTotal, bytes: before + fileBytes, total: total))
                }
                try cache.link(repository, commit: plan.commit, file: file.rfilename, etag: etag)
                done += file.byteCount ?? HubFiles.size(cache.blob(repository, etag: etag)) ?? 0
                downloaded += 1
            }
            try cache.record(plan.part.repository, revision: plan.part.revision, commit: plan.commit)
        }
        return PullSummary(model: try cache.resolve(model), files: fileCount, downloadedFiles: downloaded, downloadedBytes: done)
    }

    func list(_ part: HubModel.Part, client: HTTPClient) async throws -> HubListing {
        let url = "\(settings.endpoint)/api/models/\(part.repository)/revision/\(Self.escaped(part.revision, keepingSlashes: false))?blobs=true"
        let response = try await client.execute(request(url, sameHost: true), timeout: .seconds(60))
        let body = try await response.body.collect(upTo: 64 << 20)
        try check(response.status, url: url, repository: part.repository)
        do {
            return try JSONDecoder().decode(HubListing.self, from: Data(Array(buffer: body)))
        } catch {
            throw HubError(.hub(status: Int(response.status.code)), "\(url) did not answer with a repository listing: \(error)")
        }
    }

    func request(_ url: String, sameHost: Bool, range: Int64 = 0) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "User-Agent", value: userAgent)
        if sameHost, let token = settings.token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if range > 0 { request.headers.add(name: "Range", value: "bytes=\(range)-") }
        return request
    }

    func check(_ status: HTTPResponseStatus, url: String, repository: String) throws {
        switch status.code {
        case 200..<300: return
        case 401, 403:
            throw HubError(
                .hub(status: Int(status.code)),
                "the hub refused \(url) (\(status.code)): \(repository) may be gated or private; accept its terms on the hub and set HF_TOKEN"
                    + (settings.token == nil ? " (no token is set)" : ""))
        case 404: throw HubError(.hub(status: 404), "\(url) was not found (404): check the repository and revision")
        // A server error may pass: the transfer is tried again.
        case 500..<600: throw HubError(.network, "the hub answered \(status.code) \(status.reasonPhrase) for \(url)")
        default: throw HubError(.hub(status: Int(status.code)), "the hub answered \(status.code) \(status.reasonPhrase) for \(url)")
        }
    }

    /// Fetches one file into `blobs/<etag>` (through `<etag>.incomplete`), resuming after broken transfers, and
    /// returns the etag it was stored under.
    func download(
        _ file: HubListedFile, of repository: String, commit: String, client: HTTPClient, progress: @escaping (Int64, Int64) -> Void
    ) async throws -> String {
        let cache = settings.cache
        let start = "\(settings.endpoint)/\(repository)/resolve/\(commit)/\(Self.escaped(file.rfilename, keepingSlashes: true))"
        // A listing without hashes (some mirrors) names the blob by the ETag of the first answer.
        var etag = file.etag
        var lastError: Error?
        for _ in 0..<attempts {
            do {
                let (response, announced) = try await follow(start, client: client, resumingAt: etag.map { HubFiles.size(cache.blob(repository, etag: $0) + ".incomplete") ?? 0 } ?? 0)
                guard let name = etag ?? announced, HubCache.isHash(name) else {
                    throw HubError(.verification, "\(start) gave no ETag and the listing no hash: the file cannot be named in the cache")
                }
                if let announced, announced != name, file.etag != nil {
                    throw HubError(.verification, "\(start): the hub's ETag \(announced) differs from the listing's \(name)")
                }
                etag = name
                try HubFiles.makeDirectories("\(cache.repositoryFolder(repository))/blobs")
                try await receive(response, from: start, of: repository, into: cache.blob(repository, etag: name), expected: file, progress: progress)
                return name
            } catch let error as HubError where error.kind != .network {
                throw error
            } catch {
                lastError = error
                try? await Task.sleep(for: .seconds(1))
            }
        }
        throw HubError(.network, "\(file.rfilename) from \(repository): the transfer kept failing (\(lastError.map { "\($0)" } ?? "unknown"))")
    }

    /// The response with the file's bytes, after the hub's redirects (the token only on the hub's own host), and the
    /// ETag the hub announced on the way.
    func follow(_ start: String, client: HTTPClient, resumingAt offset: Int64) async throws -> (HTTPClientResponse, String?) {
        var url = start
        var announced: String?
        let home = Self.origin(settings.endpoint)
        for _ in 0..<10 {
            let response = try await client.execute(request(url, sameHost: Self.origin(url) == home, range: offset), deadline: .now() + .hours(48))
            if announced == nil {
                announced = (response.headers.first(name: "X-Linked-Etag") ?? response.headers.first(name: "ETag")).map(Self.normalizedETag)
            }
            if (300..<400).contains(response.status.code), let location = response.headers.first(name: "Location") {
                _ = try? await response.body.collect(upTo: 1 << 20)
                url = Self.resolved(location, against: url)
                continue
            }
            return (response, announced)
        }
        throw HubError(.hub(status: 310), "\(start) redirected more than 10 times")
    }

    /// Streams the body onto the partial blob (appending after a 206, from the start after a 200), then verifies it
    /// and renames it into place.
    func receive(
        _ response: HTTPClientResponse, from url: String, of repository: String, into blob: String, expected: HubListedFile,
        progress: (Int64, Int64) -> Void
    ) async throws {
        let partial = blob + ".incomplete"
        var offset = HubFiles.size(partial) ?? 0
        switch response.status.code {
        case 206:
            guard let range = response.headers.first(name: "Content-Range"), range.hasPrefix("bytes \(offset)-") else {
                unlink(partial)
                throw HubError(.network, "the server resumed at another offset (\(response.headers.first(name: "Content-Range") ?? "none"))")
            }
        case 416:
            // The partial file is already as long as the range allows: verify what is there.
            _ = try? await response.body.collect(upTo: 1 << 20)
        default:
            try check(response.status, url: url, repository: repository)
            offset = 0
        }
        let total = expected.byteCount ?? response.headers.first(name: "Content-Length").flatMap { Int64($0) }.map { $0 + offset } ?? 0
        let fd = open(partial, O_WRONLY | O_CREAT | (offset > 0 ? O_APPEND : O_TRUNC), 0o644)
        guard fd >= 0 else { throw HubError.file(partial, "cannot write: \(HubFiles.lastError())") }
        var closed = false
        defer { if !closed { close(fd) } }
        var received = offset
        progress(received, total)
        if response.status.code != 416 {
            for try await chunk in response.body {
                let written = chunk.withUnsafeReadableBytes { write(fd, $0.baseAddress, $0.count) }
                guard written == chunk.readableBytes else { throw HubError.file(partial, "cannot write: \(HubFiles.lastError())") }
                received += Int64(written)
                progress(received, total)
            }
        }
        close(fd)
        closed = true
        try verify(partial, expected: expected)
        guard rename(partial, blob) == 0 else { throw HubError.file(blob, "cannot move the verified file into place: \(HubFiles.lastError())") }
    }

    /// The whole file against the listing: its size, then its SHA-256 (LFS) or git blob id. A mismatch removes the
    /// partial file, so the next pull starts clean.
    func verify(_ path: String, expected: HubListedFile) throws {
        let size = HubFiles.size(path) ?? -1
        if let count = expected.byteCount, size != count {
            if size > count { unlink(path) }
            throw HubError(size > count ? .verification : .network, "\(expected.rfilename): \(size) bytes received, the hub lists \(count)")
        }
        let actual: String?, wanted: String?
        if let lfs = expected.lfs {
            actual = try Self.digest(of: path, SHA256(), prefix: [])
            wanted = lfs.sha256
        } else if let blobId = expected.blobId {
            actual = try Self.digest(of: path, Insecure.SHA1(), prefix: Array("blob \(size)\0".utf8))
            wanted = blobId
        } else {
            (actual, wanted) = (nil, nil)
        }
        if let actual, let wanted, actual != wanted.lowercased() {
            unlink(path)
            throw HubError(.verification, "\(expected.rfilename) is corrupt: its hash is \(actual), the hub lists \(wanted); it was removed, pull again")
        }
    }

    static func digest<H: HashFunction>(of path: String, _ hasher: H, prefix: [UInt8]) throws -> String {
        var hasher = hasher
        hasher.update(data: prefix)
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw HubError.file(path, "cannot read: \(HubFiles.lastError())") }
        defer { close(fd) }
        let chunk = 4 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 64)
        defer { buffer.deallocate() }
        while true {
            let n = read(fd, buffer.baseAddress, chunk)
            guard n >= 0 else { throw HubError.file(path, "cannot read: \(HubFiles.lastError())") }
            if n == 0 { break }
            hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        }
        return hasher.finalize().map { byte in (byte < 16 ? "0" : "") + String(byte, radix: 16) }.joined()
    }

    /// `W/"abc"` and `"abc"` are both `abc`.
    static func normalizedETag(_ value: String) -> String {
        var tag = Substring(value)
        if tag.hasPrefix("W/") { tag = tag.dropFirst(2) }
        while tag.hasPrefix("\"") { tag = tag.dropFirst() }
        while tag.hasSuffix("\"") { tag = tag.dropLast() }
        return String(tag)
    }

    /// Scheme and host: the token goes only where both match the endpoint's (never to plain HTTP after HTTPS).
    static func origin(_ url: String) -> String {
        guard let scheme = url.range(of: "://") else { return "" }
        return url[..<scheme.lowerBound].lowercased() + "://" + host(url)
    }

    static func host(_ url: String) -> String {
        guard let scheme = url.range(of: "://") else { return "" }
        let rest = url[scheme.upperBound...]
        return String(rest.prefix { $0 != "/" && $0 != "?" }).lowercased()
    }

    static func resolved(_ location: String, against url: String) -> String {
        if location.contains("://") { return location }
        guard let scheme = url.range(of: "://") else { return location }
        let origin = url[..<scheme.upperBound] + host(url)
        if location.hasPrefix("/") { return origin + location }
        let base = url.prefix { $0 != "?" }
        return String(base[..<(base.lastIndex(of: "/") ?? base.endIndex)]) + "/" + location
    }

    /// Percent-encodes a path for a URL (unreserved characters kept; "/" kept between a file's folders).
    static func escaped(_ path: String, keepingSlashes: Bool) -> String {
        var out = ""
        for byte in path.utf8 {
            let c = Character(Unicode.Scalar(byte))
            if c.isASCII && (c.isLetter || c.isNumber || "-._~".contains(c) || (keepingSlashes && c == "/")) {
                out.append(c)
            } else {
                out += "%" + (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true)
            }
        }
        return out
    }
}
