import Foundation
import Service

#if canImport(Glibc)
    import Glibc
#endif

/// A PostgreSQL cluster of the tests' own: `initdb` into a temporary folder, listening only on a socket in it (a
/// private port number names the socket), stopped and removed at the end. Run as the `postgres` user when the tests
/// run as root, since PostgreSQL refuses to run as root.
final class ThrowawayPostgres: @unchecked Sendable {
    /// The folder of PostgreSQL's programs, or nil when none is installed (`.ci/run` installs Debian's).
    static let binaries: String? = {
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        for version in versions.sorted(by: >) where FileManager.default.isExecutableFile(atPath: "/usr/lib/postgresql/\(version)/bin/initdb") {
            return "/usr/lib/postgresql/\(version)/bin"
        }
        return nil
    }()
    static var available: Bool { binaries != nil && (geteuid() != 0 || getpwnam("postgres") != nil) }
    static let missing = "PostgreSQL is not installed here (apt-get install postgresql); the shared-store tests are skipped"

    let folder: String
    let port: Int
    var url: String { "postgres://diorama@/postgres?host=\(folder)&port=\(port)" }

    init() throws {
        guard let binaries = Self.binaries else { throw ServiceTestError(Self.missing) }
        folder = temporaryFolder("pg")
        port = Int.random(in: 20_000..<60_000)
        if geteuid() == 0, let user = getpwnam("postgres") { chown(folder, user.pointee.pw_uid, user.pointee.pw_gid) }
        try Self.run("\(binaries)/initdb", ["-D", "\(folder)/data", "-U", "diorama", "-A", "trust", "--no-sync", "-E", "UTF8"])
        try start()
    }

    deinit {
        try? stop()
        try? FileManager.default.removeItem(atPath: folder)
    }

    func start() throws {
        let options = "-c listen_addresses='' -k \(folder) -p \(port) -c fsync=off -c max_connections=200"
        try Self.run("\(Self.binaries!)/pg_ctl", ["-D", "\(folder)/data", "-l", "\(folder)/log", "-w", "-t", "60", "-o", options, "start"])
    }

    /// Stops at once, as a crash or a failover would (`immediate`: no checkpoint, clients cut off).
    func stop() throws {
        try Self.run("\(Self.binaries!)/pg_ctl", ["-D", "\(folder)/data", "-m", "immediate", "-w", "stop"])
    }

    func store(timeout: Double = 10) async throws -> PostgresJobStore {
        try await PostgresJobStore(location: PostgresLocation(url: url), timeout: timeout)
    }

    /// Runs a PostgreSQL program to its end (as the `postgres` user under root); its output is kept for the error.
    /// posix_spawn and waitpid rather than Foundation's Process, which waits for every holder of its pipes, and the
    /// server pg_ctl starts would be one for as long as it runs.
    static func run(_ program: String, _ arguments: [String]) throws {
        let argv = (geteuid() == 0 ? ["/usr/sbin/runuser", "-u", "postgres", "--", program] : [program]) + arguments
        let outputPath = "\(FileManager.default.temporaryDirectory.path)/diorama-pg-output-\(UUID().uuidString)"
        defer { unlink(outputPath) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var pid: pid_t = 0
        let cArguments = argv.map { strdup($0) } + [nil]
        defer { cArguments.forEach { free($0) } }
        let spawned = posix_spawn(&pid, argv[0], &actions, nil, cArguments, environ)
        guard spawned == 0 else { throw ServiceTestError("cannot start \(argv[0]): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        guard status == 0 else {
            let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
            throw ServiceTestError("\((program as NSString).lastPathComponent) \(arguments.joined(separator: " ")) failed: \(text)")
        }
    }
}
