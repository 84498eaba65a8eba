import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `diorama serve` as a separate process, for what only a real process shows: a SIGKILL mid-job, and a browser.
final class ServerProcess {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let port: Int
    let dataDirectory: String
    var process: Process?

    let extraArguments: [String]
    /// Where the server's output goes (kept for a failing test to show), /dev/null by default.
    let logPath: String

    init(dataDirectory: String, extraArguments: [String] = [], logPath: String = "/dev/null") {
        self.dataDirectory = dataDirectory
        self.extraArguments = extraArguments
        self.logPath = logPath
        port = Self.freePort()
    }

    /// The binary `swift build` made beside the tests.
    static func binary() throws -> String {
        let candidates = [".build/debug/diorama", ".build/release/diorama"].map { repository.appendingPathComponent($0).path }
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw ServiceTestError("no diorama binary in .build; run swift build first")
        }
        return found
    }

    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Starts the server and waits until `/health` says ready.
    func start() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Self.binary())
        process.arguments = ["serve", "--port", String(port), "--data-dir", dataDirectory] + extraArguments
        if logPath != "/dev/null" { FileManager.default.createFile(atPath: logPath, contents: nil) }
        let log = FileHandle(forWritingAtPath: logPath)
        log?.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        try process.run()
        self.process = process
        for _ in 0..<600 {
            if let (status, _) = try? request("GET", "/health"), status == 200 { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw ServiceTestError("the server on port \(port) did not become ready")
    }

    /// Stops the process where it is (SIGSTOP), as a host that hangs would, until `resume()`.
    func pause() {
        if let process { Glibc.kill(process.processIdentifier, SIGSTOP) }
    }

    func resume() {
        if let process { Glibc.kill(process.processIdentifier, SIGCONT) }
    }

    var pid: Int32? { process?.processIdentifier }

    func kill(_ signal: Int32) {
        guard let process else { return }
        Glibc.kill(process.processIdentifier, signal)
        process.waitUntilExit()
        self.process = nil
    }

    /// A raw loopback connection to the server whose reads give up after `receiveTimeout`.
    func connect(receiveTimeout: timeval) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var timeout = receiveTimeout
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    /// What arrives on `fd` until the server closes it (closed) or its receive timeout passes (not closed).
    static func receiveUntilClosedOrTimeout(_ fd: Int32) -> (bytes: [UInt8], closed: Bool) {
        var all: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, 4096, 0) }
            if n == 0 { return (all, true) }
            if n < 0 { return (all, false) }
            all += buffer[0..<n]
        }
    }

    /// One HTTP/1.1 exchange over a fresh loopback connection: status and body.
    func request(_ method: String, _ path: String, body: [UInt8] = []) throws -> (Int, [UInt8]) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ServiceTestError("no socket") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard connected == 0 else { throw ServiceTestError("cannot connect to port \(port)") }
        let head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        let message = Array(head.utf8) + body
        guard message.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == message.count else { throw ServiceTestError("send failed") }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            response += buffer[0..<n]
        }
        guard let split = response.firstRange(of: Array("\r\n\r\n".utf8)) else { throw ServiceTestError("no HTTP response") }
        let statusLine = String(decoding: response[..<split.lowerBound], as: UTF8.self).split(separator: " ")
        var payload = Array(response[split.upperBound...])
        let headers = String(decoding: response[..<split.lowerBound], as: UTF8.self).lowercased()
        if headers.contains("transfer-encoding: chunked") { payload = Self.dechunked(payload) }
        return (statusLine.count > 1 ? Int(statusLine[1]) ?? 0 : 0, payload)
    }

    static func dechunked(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [], i = 0
        while let end = bytes[i...].firstRange(of: Array("\r\n".utf8)),
            let size = Int(String(decoding: bytes[i..<end.lowerBound], as: UTF8.self), radix: 16), size > 0
        {
            out += bytes[end.upperBound..<min(bytes.count, end.upperBound + size)]
            i = end.upperBound + size + 2
        }
        return out
    }

    func json(_ method: String, _ path: String, body: String = "") throws -> [String: Any] {
        let (_, bytes) = try request(method, path, body: Array(body.utf8))
        return (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] ?? [:]
    }

    deinit { kill(SIGKILL) }
}

struct ServiceTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

@Suite(.serialized) struct ServerProcessTests {

    /// Headless Chromium's DOM of `url` after `budget` ms of virtual time (`extra` flags, e.g. WebGL on SwiftShader).
    static func dumpDOM(_ url: String, profile: String, budget: Int, extra: [String] = []) throws -> String {
        let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }
        let browser = try #require(chromium, "Chromium is missing; scripts/setup.sh installs it")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: browser)
        process.arguments = ["--headless=new", "--no-sandbox"] + extra + [
            "--user-data-dir=\(profile)", "--virtual-time-budget=\(budget)", "--dump-dom", url,
        ]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        let dom = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return dom
    }
    /// A job that a killed process was running is run again after the restart, a queued one runs, both complete, and
    /// no partial file is left: nothing is lost.
    @Test func aKilledServerLosesNoJob() async throws {
        let folder = temporaryFolder("sigkill")
        let server = ServerProcess(dataDirectory: folder)
        try await server.start()
        // A second server on the same data folder is refused at once.
        let rival = Process()
        rival.executableURL = URL(fileURLWithPath: try ServerProcess.binary())
        rival.arguments = ["serve", "--port", String(ServerProcess.freePort()), "--data-dir", folder]
        rival.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        rival.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try rival.run()
        rival.waitUntilExit()
        #expect(rival.terminationStatus != 0)
        let body = #"{"text_prompt": "a harbour", "resolution": [2, 96, 128], "seed": 3}"#
        let first = try server.json("POST", "/v1/jobs", body: body)["id"] as? String ?? ""
        let second = try server.json("POST", "/generate", body: body)["task_id"] as? String ?? ""
        #expect(!first.isEmpty && !second.isEmpty)
        var status = ""
        for _ in 0..<300 where status != "running" {
            status = try server.json("GET", "/v1/jobs/\(first)")["status"] as? String ?? ""
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(status == "running")
        server.kill(SIGKILL)

        try await server.start()
        var jobs: [[String: Any]] = []
        for _ in 0..<1200 {
            jobs = [try server.json("GET", "/v1/jobs/\(first)"), try server.json("GET", "/v1/jobs/\(second)")]
            if jobs.allSatisfy({ ["completed", "failed"].contains($0["status"] as? String ?? "") }) { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(jobs.map { $0["status"] as? String } == ["completed", "completed"])
        #expect(jobs[0]["attempts"] as? Int == 2, "the interrupted job ran again")
        #expect(jobs[1]["attempts"] as? Int == 1)
        let (code, ply) = try server.request("GET", "/download/\(jobs[0]["file_id"] as? String ?? "")")
        #expect(code == 200 && ply.starts(with: Array("ply\n".utf8)))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.contains("partial") || $0.hasPrefix(".") }
        #expect(leftovers.isEmpty, "\(leftovers)")
        server.kill(SIGTERM)
    }

    /// A busy port is one clear line and exit 69, and nothing is created.
    @Test func aBusyPortIsSaidAndNothingIsCreated() throws {
        let port = ServerProcess.freePort()
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        #expect(bound == 0 && listen(listener, 1) == 0)
        let folder = temporaryFolder("busy") + "-data"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try ServerProcess.binary())
        process.arguments = ["serve", "--port", String(port), "--data-dir", folder]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 69)
        #expect(text == "error: port \(port) on 127.0.0.1 is in use; choose another with --port\n")
        #expect(access(folder, F_OK) != 0, "no data folder was created")
    }

    /// Silent connections are closed after the idle timeout, and an HTTP/1.0 request without keep-alive gets its
    /// answer and the end of the connection.
    @Test func idleAndOneShotConnectionsAreClosed() async throws {
        let server = ServerProcess(dataDirectory: temporaryFolder("idle"), extraArguments: ["--idle-timeout", "1", "--no-warm-up"])
        try await server.start()
        defer { server.kill(SIGTERM) }
        func connect() -> Int32 { server.connect(receiveTimeout: timeval(tv_sec: 5, tv_usec: 0)) }
        /// Everything the server sends until it closes (or the 5-second receive timeout).
        func readToEnd(_ fd: Int32) -> (bytes: [UInt8], closed: Bool) { ServerProcess.receiveUntilClosedOrTimeout(fd) }
        let silent = connect()
        defer { close(silent) }
        let started = Date()
        #expect(readToEnd(silent).closed, "the silent connection was closed")
        #expect(Date().timeIntervalSince(started) < 4.5)
        let oneShot = connect()
        defer { close(oneShot) }
        _ = Array("GET /health HTTP/1.0\r\n\r\n".utf8).withUnsafeBytes { send(oneShot, $0.baseAddress, $0.count, 0) }
        let (answer, closed) = readToEnd(oneShot)
        #expect(String(decoding: answer.prefix(12), as: UTF8.self).hasPrefix("HTTP/1.") && closed)
    }

    /// A client that trickles a request's head (slowloris) or body is cut off at the header and body timeouts however
    /// often it sends; HTTP/1.1 needs exactly one Host; what the parser rejects gets the JSON error; a keep-alive
    /// connection serves a second request.
    @Test func slowClientsAndMalformedRequestsAreCutOff() async throws {
        let server = ServerProcess(
            dataDirectory: temporaryFolder("slow"), extraArguments: ["--header-timeout", "1", "--body-timeout", "1", "--idle-timeout", "60", "--no-warm-up"])
        try await server.start()
        defer { server.kill(SIGTERM) }
        func connect() -> Int32 { server.connect(receiveTimeout: timeval(tv_sec: 0, tv_usec: 200_000)) }
        func send(_ fd: Int32, _ text: String) -> Bool {
            Array(text.utf8).withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == text.utf8.count
        }
        /// Whatever arrives within 200 ms, and whether the server closed the connection.
        func poll(_ fd: Int32) -> (bytes: [UInt8], closed: Bool) { ServerProcess.receiveUntilClosedOrTimeout(fd) }
        /// Sends one byte of `text` every 100 ms until the server closes; the seconds that took (nil: never closed).
        func trickle(_ fd: Int32, _ text: String) -> Double? {
            let started = Date()
            for byte in text.utf8 {
                if poll(fd).closed || !send(fd, String(UnicodeScalar(byte))) { return Date().timeIntervalSince(started) }
                usleep(100_000)
                if Date().timeIntervalSince(started) > 8 { return nil }
            }
            return nil
        }
        let slowHead = connect()
        defer { close(slowHead) }
        let head = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + String(repeating: "X-Padding: aaaaaaaaaaaaaaaaaaaaaa\r\n", count: 10)
        let headCut = try #require(trickle(slowHead, head), "a trickled head kept its connection")
        #expect(headCut < 3)

        // After an early answer (a 404 to a POST, its body drained after the response), the next head is still timed.
        let afterEarly = connect()
        defer { close(afterEarly) }
        #expect(send(afterEarly, "POST /no-such-route HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n"))
        usleep(300_000)
        #expect(String(decoding: poll(afterEarly).bytes.prefix(12), as: UTF8.self) == "HTTP/1.1 404")
        #expect(send(afterEarly, "0123456789"))
        let earlyCut = try #require(trickle(afterEarly, head), "a trickled head after an early answer kept its connection")
        #expect(earlyCut < 3)

        let slowBody = connect()
        defer { close(slowBody) }
        #expect(send(slowBody, "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"))
        let bodyCut = try #require(trickle(slowBody, String(repeating: " ", count: 400)), "a trickled body kept its connection")
        #expect(bodyCut < 3)

        func exchange(_ request: String) -> (status: Int, body: String, closed: Bool) {
            let fd = connect()
            defer { close(fd) }
            _ = send(fd, request)
            var bytes: [UInt8] = [], closed = false
            for _ in 0..<15 where !closed {
                let (more, ended) = poll(fd)
                bytes += more
                closed = ended
            }
            let text = String(decoding: bytes, as: UTF8.self)
            let status = text.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
            return (status, text.components(separatedBy: "\r\n\r\n").dropFirst().joined(), closed)
        }
        let noHost = exchange("GET /health HTTP/1.1\r\n\r\n")
        #expect(noHost.status == 400 && noHost.body.contains("Host") && noHost.closed)
        let twoHosts = exchange("GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        #expect(twoHosts.status == 400 && twoHosts.body.contains("2 Host headers"))
        #expect(exchange("GET /health HTTP/1.0\r\n\r\n").status == 200)
        let garbage = exchange("GET /health HTTP/1.1\r\nHost: a\r\nBad Header Line\r\n\r\n")
        #expect(garbage.status == 400 && garbage.closed)
        let error = try JSONSerialization.jsonObject(with: Data(garbage.body.utf8)) as? [String: Any]
        #expect((error?["error"] as? String)?.contains("not valid HTTP") == true)

        // Two requests on one keep-alive connection, the second after a pause shorter than the header timeout.
        let keptAlive = connect()
        defer { close(keptAlive) }
        #expect(send(keptAlive, "GET /health HTTP/1.1\r\nHost: a\r\n\r\n"))
        let first = poll(keptAlive)
        usleep(500_000)
        #expect(send(keptAlive, "GET /health HTTP/1.1\r\nHost: a\r\n\r\n"))
        var second = poll(keptAlive)
        if second.bytes.isEmpty { second = poll(keptAlive) }
        #expect(String(decoding: first.bytes.prefix(12), as: UTF8.self) == "HTTP/1.1 200")
        #expect(String(decoding: second.bytes.prefix(12), as: UTF8.self) == "HTTP/1.1 200")
        // And once idle past the header timeout, it is closed even though the idle timeout is a minute.
        usleep(1_500_000)
        #expect(poll(keptAlive).closed)
    }

    /// The studio keeps its prompt, camera path, settings and followed job across a reload (local storage), and
    /// follows that job again; with nothing loaded it shows the grid, a hint and example prompts.
    @Test func theStudioKeepsItsSessionAcrossReloads() async throws {
        let folder = temporaryFolder("studio-session")
        let server = ServerProcess(dataDirectory: folder, extraArguments: ["--no-warm-up"])
        try await server.start()
        defer { server.kill(SIGTERM) }
        func body(_ dom: String) -> String { dom.range(of: "<body[^>]*>", options: .regularExpression).map { String(dom[$0]) } ?? "" }
        let fresh = try Self.dumpDOM("http://127.0.0.1:\(server.port)/", profile: "\(folder)/fresh", budget: 4000)
        #expect(body(fresh).contains("data-empty=\"true\"") && !body(fresh).contains("data-session"))
        #expect(fresh.components(separatedBy: "a quiet Japanese garden").count == 2, "one example button")

        let id = try server.json("POST", "/v1/jobs", body: #"{"text_prompt": "a garden", "resolution": [2, 64, 96]}"#)["id"] as? String ?? ""
        let state: [String: Any] = [
            "prompt": "a garden", "frames": 2, "H": 64, "W": 96, "job": id,
            "keys": [["pos": [0, 0, 0], "quat": [1, 0, 0, 0]], ["pos": [0, 0, -0.5], "quat": [1, 0, 0, 0]], ["pos": [0.5, 0, -1], "quat": [1, 0, 0, 0]]],
        ]
        let handed = String(decoding: try JSONSerialization.data(withJSONObject: state), as: UTF8.self)
            .addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        let first = body(try Self.dumpDOM("http://127.0.0.1:\(server.port)/?session=\(handed)", profile: "\(folder)/kept", budget: 8000))
        #expect(first.contains("data-keys=\"3\"") && first.contains("data-job=\"\(id)"))
        // A plain reload in the same browser profile: everything comes back from local storage, the job is followed.
        let reloaded = body(try Self.dumpDOM("http://127.0.0.1:\(server.port)/", profile: "\(folder)/kept", budget: 8000))
        #expect(reloaded.contains("data-session=\"restored\"") && reloaded.contains("data-keys=\"3\""))
        #expect(["queued", "running", "completed"].contains { reloaded.contains("data-job=\"\(id) \($0)\"") }, "\(reloaded)")
        // Once the job is done, a reload finds it completed and shows its scene.
        for _ in 0..<600 where try server.json("GET", "/v1/jobs/\(id)")["status"] as? String != "completed" {
            try await Task.sleep(for: .milliseconds(50))
        }
        let done = body(try Self.dumpDOM("http://127.0.0.1:\(server.port)/", profile: "\(folder)/kept", budget: 8000))
        #expect(done.contains("data-job=\"\(id) completed\"") && done.contains("data-empty=\"false\""), "\(done)")
    }

    /// The viewer shades with spherical harmonics up to degree 2: 49 grey splats ahead of camera 0 whose red has a
    /// degree-1 coefficient along the view axis draw red from there, and grey without it.
    @Test func theViewerShadesWithSphericalHarmonics() async throws {
        let folder = temporaryFolder("studio-sh")
        let server = ServerProcess(dataDirectory: folder, extraArguments: ["--no-warm-up"])
        try await server.start()
        defer { server.kill(SIGTERM) }
        /// An INRIA-layout PLY (RDF, degree 1: f_rest_* channel-major) of a 7x7 patch two units ahead.
        func ply(redAlongView: Float) -> [UInt8] {
            let names = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2"] + (0..<9).map { "f_rest_\($0)" }
                + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
            var bytes = Array("ply\nformat binary_little_endian 1.0\nelement vertex 49\n".utf8)
            for name in names { bytes += Array("property float \(name)\n".utf8) }
            bytes += Array("end_header\n".utf8)
            for i in 0..<49 {
                var rest = [Float](repeating: 0, count: 9)
                rest[1] = redAlongView  // red, coefficient 1 (the z basis function)
                let row: [Float] = [Float(i % 7 - 3) * 0.15, Float(i / 7 - 3) * 0.15, 2, 0, 0, 0] + rest + [5, -2.3, -2.3, -2.3, 1, 0, 0, 0]
                for v in row { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes += $0 } }
            }
            return bytes
        }
        func mean(_ scene: [UInt8], _ label: String) async throws -> [Double] {
            // A finished job's PLY replaced by the test scene, then opened in the viewer from camera 0.
            let job = try server.json("POST", "/v1/jobs", body: #"{"text_prompt": "x", "resolution": [1, 32, 32]}"#)
            let (id, fileID) = (job["id"] as? String ?? "", job["file_id"] as? String ?? "")
            for _ in 0..<600 where try server.json("GET", "/v1/jobs/\(id)")["status"] as? String != "completed" {
                try await Task.sleep(for: .milliseconds(50))
            }
            try Data(scene).write(to: URL(fileURLWithPath: "\(folder)/\(fileID).ply"))
            let url = "/v1/jobs/\(id)/artifacts/scene.ply".addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
            let dom = try Self.dumpDOM(
                "http://127.0.0.1:\(server.port)/?scene=\(url)&size=320x240", profile: "\(folder)/\(label)", budget: 10000,
                extra: ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--enable-webgl", "--ignore-gpu-blocklist"])
            guard let range = dom.range(of: "data-mean=\"") else { throw ServiceTestError("nothing drawn: \(dom.prefix(300))") }
            return dom[range.upperBound...].prefix { $0 != "\"" }.split(separator: ",").compactMap { Double($0) }
        }
        let shaded = try await mean(ply(redAlongView: 1), "sh")
        let plain = try await mean(ply(redAlongView: 0), "plain")
        #expect(shaded.count == 3 && plain.count == 3)
        #expect(shaded[0] - shaded[1] > 0.2 && abs(shaded[1] - shaded[2]) < 0.01, "red from the degree-1 term: \(shaded)")
        #expect(abs(plain[0] - plain[1]) < 0.01, "grey without it: \(plain)")
    }

    /// `/docs` renders every operation of the server's own OpenAPI document, with nothing from another origin.
    @Test func theAPIReferenceRendersFromTheDocument() async throws {
        let folder = temporaryFolder("docs")
        let server = ServerProcess(dataDirectory: folder, extraArguments: ["--no-warm-up", "--token", "secret"])
        try await server.start()
        let dom = try Self.dumpDOM("http://127.0.0.1:\(server.port)/docs", profile: "\(folder)/chromium", budget: 5000)
        server.kill(SIGTERM)
        let operations = dom.range(of: "data-operations=\"").map { Int(dom[$0.upperBound...].prefix { $0 != "\"" }) ?? 0 } ?? 0
        #expect(operations >= 25, "rendered \(operations) operations")
        #expect(dom.contains("/v1/videos") && dom.contains("/v1/jobs/{id}/artifacts/{name}"))
    }

    /// With a video model, the studio shows its Video panel with the model's defaults and lists video jobs as such.
    @Test func theStudioOffersVideosWithAVideoModel() async throws {
        let folder = temporaryFolder("browser-video")
        let server = ServerProcess(dataDirectory: folder, extraArguments: ["--video-model", "tiny-video", "--device", "cpu"])
        try await server.start()
        let id = try server.json("POST", "/v1/videos", body: #"{"prompt": "waves", "steps": 2}"#)["id"] as? String ?? ""
        var job: [String: Any] = [:]
        for _ in 0..<600 where job["status"] as? String != "completed" {
            job = try server.json("GET", "/v1/jobs/\(id)")
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(job["status"] as? String == "completed" && job["kind"] as? String == "video")
        let dom = try Self.dumpDOM("http://127.0.0.1:\(server.port)/", profile: "\(folder)/chromium", budget: 10000)
        server.kill(SIGTERM)
        let panel = try #require(dom.range(of: "<details id=\"video-panel\"").map { String(dom[$0.lowerBound...].prefix { $0 != ">" }) })
        #expect(!panel.contains("hidden"), "\(panel)")
        #expect(dom.contains("video 9×32×64"), "the jobs list names the video job")
    }

    /// Headless Chromium opens the studio with a generated scene; the page reports how many pixels it drew.
    @Test func theStudioDrawsAScene() async throws {
        let folder = temporaryFolder("browser")
        let server = ServerProcess(dataDirectory: folder)
        try await server.start()
        let id = try server.json("POST", "/v1/jobs", body: #"{"text_prompt": "a garden", "resolution": [2, 64, 96]}"#)["id"] as? String ?? ""
        var job: [String: Any] = [:]
        for _ in 0..<600 where job["status"] as? String != "completed" {
            job = try server.json("GET", "/v1/jobs/\(id)")
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(job["status"] as? String == "completed")
        let scene = "/v1/jobs/\(id)/artifacts/scene.spz".addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        let dom = try Self.dumpDOM(
            "http://127.0.0.1:\(server.port)/?scene=\(scene)&size=320x240", profile: "\(folder)/chromium", budget: 20000,
            extra: ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--enable-webgl", "--ignore-gpu-blocklist"])
        server.kill(SIGTERM)
        func attribute(_ name: String) -> String? {
            guard let range = dom.range(of: "\(name)=\"") else { return nil }
            return String(dom[range.upperBound...].prefix { $0 != "\"" })
        }
        #expect(attribute("data-status") == "drawn", "\(attribute("data-error") ?? dom.prefix(200).description)")
        #expect(attribute("data-splats").flatMap(Int.init) == job["gaussians"] as? Int)
        let drawn = attribute("data-drawn").flatMap(Int.init) ?? 0
        #expect(drawn > 320 * 240 / 10, "the scene covers part of the canvas (\(drawn) pixels)")
    }
}
