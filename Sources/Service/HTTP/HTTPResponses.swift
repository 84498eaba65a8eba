import FoundationEssentials
import Hummingbird

#if canImport(Glibc)
    import Glibc
#endif

/// JSON's null in a `[String: Any]`.
enum JSONNull { case null }

/// Minimal JSON writer for response bodies, keys sorted for stable output.
enum JSONText {
    static func encode(_ value: Any) -> String {
        switch value {
        case let s as String: return quoted(s)
        case let b as Bool: return b ? "true" : "false"
        case let i as Int: return String(i)
        case let i as Int64: return String(i)
        case let d as Double: return d.isFinite ? "\(d)" : "null"
        case let a as [Any]: return "[" + a.map(encode).joined(separator: ",") + "]"
        case let o as [String: Any]: return "{" + o.keys.sorted().map { quoted($0) + ":" + encode(o[$0]!) }.joined(separator: ",") + "}"
        default: return "null"
        }
    }

    static func quoted(_ s: String) -> String {
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default:
                if c.value < 0x20 {
                    let hex = String(c.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(c)
                }
            }
        }
        return out + "\""
    }
}

enum HTTPResponses {
    /// A JSON response from plain values (strings, numbers, booleans, null, arrays, dictionaries).
    static func json(_ status: Int, _ object: [String: Any]) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(string: JSONText.encode(object))))
    }

    /// Every rejection: its status and `{"error": what to fix}` (plus `detail`, which FastAPI clients read).
    static func error(_ status: Int, _ message: String, detail: Bool = false) -> Response {
        // Server-side failures may quote file paths from deep inside; clients see the file's name only. A message
        // that quotes input is cut to an excerpt: an answer never echoes unbounded input.
        var shown = status >= 500 ? withoutPaths(message) : message
        if shown.count > maxMessageCharacters { shown = String(shown.prefix(maxMessageCharacters)) + "… (cut)" }
        return json(status, detail ? ["error": shown, "detail": shown] : ["error": shown])
    }

    static let maxMessageCharacters = 1000

    /// `message` with every absolute path (`/a/b/c.ply`) cut to its last component.
    static func withoutPaths(_ message: String) -> String {
        var out = ""
        var rest = message[...]
        while let slash = rest.firstIndex(of: "/") {
            let before = rest[..<slash]
            // A path starts at a slash that begins a word (not the one in "a/b" or in a URL's "//host").
            let startsWord = before.last.map { $0 == " " || $0 == "(" || $0 == "'" || $0 == "\"" || $0 == "=" } ?? true
            let token = rest[slash...].prefix { !$0.isWhitespace && $0 != "'" && $0 != "\"" && $0 != ")" && $0 != "," }
            out += before
            if startsWord, !token.hasPrefix("//"), token.dropFirst().contains("/") {
                out += token.split(separator: "/").last.map(String.init) ?? ""
            } else {
                out += token
            }
            rest = rest[token.endIndex...]
        }
        return out + rest
    }

    static func error(_ error: any Error, detail: Bool = false) -> Response {
        if let error = error as? ServiceError { return self.error(error.status, error.message, detail: detail) }
        if let error = error as? JobStoreError, error.unavailable {
            var answer = self.error(503, "the job store is unavailable for now (\(error.message)); try again shortly", detail: detail)
            answer.headers[.retryAfter] = "5"
            return answer
        }
        return self.error(500, "server error: \(error)", detail: detail)
    }

    static func bytes(_ bytes: [UInt8], contentType: String, status: Int = 200, headers extra: HTTPFields = [:]) -> Response {
        var headers = extra
        headers[.contentType] = contentType
        headers[.contentLength] = String(bytes.count)
        return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// A file with a strong ETag (size and modification time), `Range` (one range: 206, or 416 past the end) and
    /// `If-None-Match` (304). Large files are read in pieces as they are sent.
    static func file(_ path: String, request: Request, contentType: String, downloadName: String) -> Response {
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return error(404, "the file is gone") }
        let size = Int(info.st_size)
        let etag = "\"\(String(UInt64(info.st_size), radix: 16))-\(String(info.st_mtim.tv_sec, radix: 16))\(String(info.st_mtim.tv_nsec, radix: 16))\""
        var headers = HTTPFields()
        headers[.eTag] = etag
        headers[.acceptRanges] = "bytes"
        headers[.contentType] = contentType
        headers[.contentDisposition] = "attachment; filename=\"\(downloadName)\""
        headers[.cacheControl] = "private, max-age=0, must-revalidate"
        // If-None-Match compares weakly: a W/ prefix does not matter.
        if let match = request.headers[.ifNoneMatch],
            match.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }).contains(where: { $0 == "*" || $0 == etag || $0 == "W/" + etag })
        {
            return Response(status: .notModified, headers: headers)
        }
        var range = 0..<size
        var status = HTTPResponse.Status.ok
        // Ranges in other units, or several at once, are ignored (the whole file is sent), as RFC 9110 allows.
        // A range that cannot be read as one (`bytes=5-3`, digits that overflow) is ignored as RFC 9110 says: the whole
        // file. Only a well-formed range that starts past the end is 416.
        if let header = request.headers[.range], header.hasPrefix("bytes="), !header.contains(","), request.headers[.ifRange].map({ $0 == etag }) ?? true {
            switch byteRange(header, size: size) {
            case .some(.some(let parsed)):
                range = parsed
                status = .partialContent
                headers[.contentRange] = "bytes \(range.lowerBound)-\(range.upperBound - 1)/\(size)"
            case .some(.none):
                headers[.contentRange] = "bytes */\(size)"
                headers[.contentType] = "application/json"
                return Response(
                    status: .rangeNotSatisfiable, headers: headers,
                    body: .init(byteBuffer: ByteBuffer(string: JSONText.encode(["error": "the range starts past the file's \(size) bytes"]))))
            case .none: break
            }
        }
        headers[.contentLength] = String(range.count)
        let chunk = 1 << 20
        let span = range
        return Response(status: status, headers: headers, body: ResponseBody(contentLength: span.count) { writer in
            let fd = open(path, O_RDONLY)
            guard fd >= 0 else { throw ServiceError(404, "the file is gone") }
            defer { close(fd) }
            var offset = span.lowerBound
            var buffer = [UInt8](repeating: 0, count: chunk)
            while offset < span.upperBound {
                let want = min(chunk, span.upperBound - offset)
                let got = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, want, off_t(offset)) }
                guard got > 0 else { throw ServiceError(500, "\(path) shrank while it was sent") }
                try await writer.write(ByteBuffer(bytes: buffer[0..<got]))
                offset += got
            }
            try await writer.finish(nil)
        })
    }

    /// One `bytes=a-b`, `bytes=a-` or `bytes=-n` range within `size` (an end past the file clamped to it): nil when the
    /// header is not a valid single range (ignore it), `.some(nil)` when it is valid but starts past the end (416).
    static func byteRange(_ header: String, size: Int) -> Range<Int>?? {
        guard header.hasPrefix("bytes="), !header.contains(",") else { return nil }
        let spec = header.dropFirst(6).split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard spec.count == 2 else { return nil }
        let (first, last) = (spec[0].trimmingCharacters(in: .whitespaces), spec[1].trimmingCharacters(in: .whitespaces))
        let digits = { (s: String) in !s.isEmpty && s.allSatisfy(\.isASCIIDigit) }
        if first.isEmpty {
            guard digits(last) else { return nil }
            let n = Int(last) ?? Int.max
            guard n > 0, size > 0 else { return .some(nil) }
            return max(0, size - n)..<size
        }
        guard digits(first), last.isEmpty || digits(last) else { return nil }
        let a = Int(first) ?? Int.max
        let b = last.isEmpty ? Int.max : Int(last) ?? Int.max
        // A last byte before the first makes the range invalid (ignored), whatever the size.
        guard b >= a else { return nil }
        guard a < size else { return .some(nil) }
        return a..<min(size, b == Int.max ? size : b + 1)
    }
}
