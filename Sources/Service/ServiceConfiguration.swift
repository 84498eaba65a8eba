import FlashWorld
import FoundationEssentials

/// Everything `diorama serve` can be told, with embedded defaults so a fresh machine needs nothing. Read from a JSON
/// config file, then `DIORAMA_*` environment variables, then flags: later sources win. One table of settings drives
/// all three, so a name means the same everywhere (`max_queued`, `DIORAMA_MAX_QUEUED`, `--max-queued`).
public struct ServiceConfiguration: Sendable {
    /// `sqlite` (DATA/jobs.sqlite, one server) or a PostgreSQL URL shared by many servers.
    public var store = "sqlite"
    public var role = ServiceRole.all
    /// Seconds a worker's claim lasts without a heartbeat.
    public var leaseSeconds: Double = 30
    public var host = "127.0.0.1"
    public var port = 7860
    public var dataDirectory = "diorama-data"
    /// Where job files go when not in the data folder: a folder every node sharing a store mounts.
    public var artifactsDirectory: String?
    /// `tiny` or a model folder.
    public var model = "tiny"
    public var checkpoint: String?
    /// `tiny-video` or a Wan2.2-TI2V-5B folder, for `/v1/videos`; unset, video jobs are refused.
    public var videoModel: String?
    /// `auto`, `cuda` or `cpu`.
    public var device = "auto"
    /// `fp32`, `bf16` or `fp8`; unset, the device's natural precision.
    public var precision: String?
    /// Where the FlashWorld model's weights wait: `full`, `balanced` or `low` (`FlashWorldMemoryMode`), or `auto`:
    /// the mode the GPU's free memory allows.
    public var memory = "auto"
    /// When set, API calls need `Authorization: Bearer <token>`.
    public var token: String?
    /// Origins allowed to call the API from a browser; `*` for any, empty for none.
    public var corsOrigins = ["*"]
    public var maxQueued = 64
    /// Jobs run at once on the one device.
    public var maxConcurrent = 1
    /// Seconds a connection may sit with nothing read or written before it is closed.
    public var idleTimeout = 30
    /// Seconds a request's head may take to arrive once the connection is ready for it (slowloris).
    public var headerTimeout = 30
    /// Seconds a request's body may take to arrive after its head.
    public var bodyTimeout = 120
    /// Open connections at most; beyond, new ones wait in the listen backlog until one closes.
    public var maxConnections = 1024
    public var maxAttempts = 3
    public var maxFrames = 64
    public var maxSide = 2048
    public var maxBodyBytes = 32 << 20
    public var maxTotalPixels = 48 * 704 * 480
    /// Seconds a finished job's files are kept; 0 keeps them.
    public var artifactLifetime: Double = 7 * 24 * 3600
    /// Seconds failed, cancelled and expired jobs stay listed before their rows are purged; 0 keeps them.
    public var jobRetention: Double = 30 * 24 * 3600
    /// Seconds a job may be expected to take, from the measured rate of earlier jobs; 0 turns the check off.
    public var maxJobSeconds: Double = 1800
    /// MiB the data folder's filesystem must keep free for new jobs to be accepted.
    public var minFreeDiskMiB = 1024
    /// MiB all finished jobs' files may take; the oldest expire first beyond it. 0: no budget.
    public var artifactBudgetMiB = 0
    /// The image-to-3D API's `/generate_from_base64` answers SPZ instead of PLY.
    public var compression = false
    /// Run one small generation before reporting ready.
    public var warmUp = true
    /// What an image-to-3D request generates along the default path; unset, FlashWorld's 24 frames at 704x480, or
    /// 4 frames at 256x192 for the CPU-bound tiny model.
    public var imageFramesSetting: Int?
    public var imageSizeSetting: (width: Int, height: Int)?
    public var imageFrames: Int { imageFramesSetting ?? (model == "tiny" ? 4 : 24) }
    public var imageWidth: Int { imageSizeSetting?.width ?? (model == "tiny" ? 256 : 704) }
    public var imageHeight: Int { imageSizeSetting?.height ?? (model == "tiny" ? 192 : 480) }
    /// Seconds the synchronous image-to-3D endpoints wait for their job.
    public var syncTimeout: Double = 900

    public init() {}

    /// Mistakes only the settings together show, whatever source each came from.
    public func validated() throws(ServiceError) -> ServiceConfiguration {
        guard role == .all || store != "sqlite" else {
            throw ServiceError(400, "role \(role.rawValue) needs a store other servers share: give --store postgres://USER@HOST/DB")
        }
        return self
    }

    public var limits: ServiceLimits {
        var limits = ServiceLimits()
        limits.maxQueued = maxQueued
        limits.maxFrames = maxFrames
        limits.maxSide = maxSide
        limits.maxBodyBytes = maxBodyBytes
        limits.maxTotalPixels = maxTotalPixels
        limits.maxAttempts = maxAttempts
        limits.jobRetention = jobRetention
        limits.maxJobSeconds = maxJobSeconds
        limits.minFreeDiskBytes = Int64(minFreeDiskMiB) << 20
        limits.artifactBudgetBytes = Int64(artifactBudgetMiB) << 20
        limits.leaseSeconds = leaseSeconds
        return limits
    }

    struct Setting: Sendable {
        let key: String
        let help: String
        let apply: @Sendable (inout ServiceConfiguration, String) throws(ServiceError) -> Void
        var environmentName: String { "DIORAMA_" + key.uppercased() }
    }

    static func integer(_ key: String, _ text: String, range: ClosedRange<Int>) throws(ServiceError) -> Int {
        guard let value = Int(text.trimmingCharacters(in: .whitespaces)), range.contains(value) else {
            throw ServiceError(400, "\(key) must be a whole number from \(range.lowerBound) to \(range.upperBound), not \"\(text)\"")
        }
        return value
    }

    static func number(_ key: String, _ text: String) throws(ServiceError) -> Double {
        guard let value = Double(text.trimmingCharacters(in: .whitespaces)), value.isFinite, value >= 0 else {
            throw ServiceError(400, "\(key) must be a number of seconds, 0 or more, not \"\(text)\"")
        }
        return value
    }

    static func flag(_ key: String, _ text: String) throws(ServiceError) -> Bool {
        switch text.lowercased() {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: throw ServiceError(400, "\(key) must be true or false, not \"\(text)\"")
        }
    }

    /// Every setting, by its file key.
    static let settings: [Setting] = [
        Setting(key: "host", help: "address to listen on") { c, v throws(ServiceError) in c.host = v },
        Setting(key: "port", help: "port") { c, v throws(ServiceError) in c.port = try integer("port", v, range: 1...65535) },
        Setting(key: "data_dir", help: "folder for jobs.sqlite and the artifacts (with a shared store: a folder every node mounts)") { c, v throws(ServiceError) in
            c.dataDirectory = v
        },
        Setting(key: "artifacts", help: "folder for the job files, if not the data folder (with a shared store: one every node mounts)") { c, v throws(ServiceError) in
            c.artifactsDirectory = v.isEmpty ? nil : v
        },
        Setting(key: "store", help: "sqlite (DATA/jobs.sqlite), or postgres://USER@HOST/DB shared by many servers") { c, v throws(ServiceError) in
            if v != "sqlite" { _ = try PostgresLocation(url: v) }
            c.store = v
        },
        Setting(key: "role", help: "all (default), api (answers clients, runs no jobs) or worker (runs jobs; /health and /metrics only)") { c, v throws(ServiceError) in
            guard let role = ServiceRole(rawValue: v.lowercased()) else { throw ServiceError(400, "role must be all, api or worker, not \"\(v)\"") }
            c.role = role
        },
        Setting(key: "lease_seconds", help: "seconds a worker's claim lasts without a heartbeat; its job runs elsewhere after") { c, v throws(ServiceError) in
            let value = try number("lease_seconds", v)
            guard value >= 1 else { throw ServiceError(400, "lease_seconds must be at least 1, not \"\(v)\"") }
            c.leaseSeconds = value
        },
        Setting(key: "model", help: "tiny, or a model folder") { c, v throws(ServiceError) in c.model = v },
        Setting(key: "checkpoint", help: "FlashWorld checkpoint, if not in the folder") { c, v throws(ServiceError) in c.checkpoint = v.isEmpty ? nil : v },
        Setting(key: "video_model", help: "tiny-video, or a Wan2.2-TI2V-5B folder, for /v1/videos (default: none)") { c, v throws(ServiceError) in
            c.videoModel = v.isEmpty ? nil : v
        },
        Setting(key: "device", help: "auto, cuda or cpu") { c, v throws(ServiceError) in
            guard ["auto", "cuda", "cpu"].contains(v) else { throw ServiceError(400, "device must be auto, cuda or cpu, not \(v)") }
            c.device = v
        },
        Setting(key: "memory", help: "auto (from the GPU's free memory), full, balanced (text encoder in host memory) or low (transformer streamed too)") {
            c, v throws(ServiceError) in
            guard v == "auto" || FlashWorldMemoryMode(rawValue: v) != nil else {
                throw ServiceError(400, "memory must be auto, full, balanced or low, not \(v)")
            }
            c.memory = v
        },
        Setting(key: "precision", help: "fp32, bf16, fp8 or fp8-lean (default: the device's own)") { c, v throws(ServiceError) in
            guard v.isEmpty || ["fp32", "bf16", "fp8", "fp8-lean"].contains(v) else {
                throw ServiceError(400, "precision must be fp32, bf16, fp8 or fp8-lean, not \(v)")
            }
            c.precision = v.isEmpty ? nil : v
        },
        Setting(key: "token", help: "bearer token API calls must carry") { c, v throws(ServiceError) in c.token = v.isEmpty ? nil : v },
        Setting(key: "cors_origins", help: "comma-separated origins, * for any, empty for none") { c, v throws(ServiceError) in
            c.corsOrigins = v.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        },
        Setting(key: "max_queued", help: "jobs waiting at most (429 beyond)") { c, v throws(ServiceError) in c.maxQueued = try integer("max_queued", v, range: 1...100_000) },
        Setting(key: "max_concurrent", help: "jobs running at once") { c, v throws(ServiceError) in c.maxConcurrent = try integer("max_concurrent", v, range: 1...64) },
        Setting(key: "idle_timeout", help: "seconds an idle connection stays open (default 30)") { c, v throws(ServiceError) in
            c.idleTimeout = try integer("idle_timeout", v, range: 1...3600)
        },
        Setting(key: "header_timeout", help: "seconds a request's head may take to arrive (default 30)") { c, v throws(ServiceError) in
            c.headerTimeout = try integer("header_timeout", v, range: 1...3600)
        },
        Setting(key: "body_timeout", help: "seconds a request's body may take after its head (default 120)") { c, v throws(ServiceError) in
            c.bodyTimeout = try integer("body_timeout", v, range: 1...86_400)
        },
        Setting(key: "max_connections", help: "open connections at most (default 1024)") { c, v throws(ServiceError) in
            c.maxConnections = try integer("max_connections", v, range: 8...100_000)
        },
        Setting(key: "max_attempts", help: "runs of a job interrupted by crashes") { c, v throws(ServiceError) in c.maxAttempts = try integer("max_attempts", v, range: 1...100) },
        Setting(key: "max_frames", help: "frames a request may ask for") { c, v throws(ServiceError) in c.maxFrames = try integer("max_frames", v, range: 1...1024) },
        Setting(key: "max_side", help: "pixels a side a request may ask for") { c, v throws(ServiceError) in c.maxSide = try integer("max_side", v, range: 32...16384) },
        Setting(key: "max_body_bytes", help: "request and upload size limit") { c, v throws(ServiceError) in c.maxBodyBytes = try integer("max_body_bytes", v, range: 1024...(1 << 34)) },
        Setting(key: "max_total_pixels", help: "frames x height x width a request may ask for") { c, v throws(ServiceError) in
            c.maxTotalPixels = try integer("max_total_pixels", v, range: 1024...(1 << 40))
        },
        Setting(key: "artifact_lifetime", help: "seconds finished files are kept, 0 forever") { c, v throws(ServiceError) in c.artifactLifetime = try number("artifact_lifetime", v) },
        Setting(key: "job_retention", help: "seconds failed, cancelled and expired jobs stay listed, 0 forever (default 30 days)") { c, v throws(ServiceError) in
            c.jobRetention = try number("job_retention", v)
        },
        Setting(key: "max_job_seconds", help: "seconds a job may be expected to take here, from earlier jobs' rate; 0 off (default 1800)") {
            c, v throws(ServiceError) in c.maxJobSeconds = try number("max_job_seconds", v)
        },
        Setting(key: "min_free_disk_mib", help: "MiB the data folder's disk must keep free to accept jobs (default 1024)") { c, v throws(ServiceError) in
            c.minFreeDiskMiB = try integer("min_free_disk_mib", v, range: 0...(1 << 30))
        },
        Setting(key: "artifact_budget_mib", help: "MiB all finished jobs' files may take; the oldest expire first beyond it; 0 no budget (default 0)") {
            c, v throws(ServiceError) in c.artifactBudgetMiB = try integer("artifact_budget_mib", v, range: 0...(1 << 40))
        },
        Setting(key: "compression", help: "image-to-3D base64 answers SPZ") { c, v throws(ServiceError) in c.compression = try flag("compression", v) },
        Setting(key: "warm_up", help: "one small generation before ready") { c, v throws(ServiceError) in c.warmUp = try flag("warm_up", v) },
        Setting(key: "image_frames", help: "frames of an image-to-3D job") { c, v throws(ServiceError) in c.imageFramesSetting = try integer("image_frames", v, range: 1...1024) },
        Setting(key: "image_size", help: "WIDTHxHEIGHT of an image-to-3D job") { c, v throws(ServiceError) in
            let parts = v.lowercased().split(separator: "x")
            guard parts.count == 2, let w = Int(parts[0]), let h = Int(parts[1]), w > 0, h > 0, w % 32 == 0, h % 32 == 0 else {
                throw ServiceError(400, "image_size must be WIDTHxHEIGHT in multiples of 32, not \"\(v)\"")
            }
            c.imageSizeSetting = (w, h)
        },
        Setting(key: "sync_timeout", help: "seconds image-to-3D calls wait") { c, v throws(ServiceError) in c.syncTimeout = try number("sync_timeout", v) },
    ]

    /// A value from a JSON file, whatever its JSON type, as the text a setting parses.
    enum FileValue: Decodable {
        case text(String)
        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let b = try? container.decode(Bool.self) {
                self = .text(b ? "true" : "false")
            } else if let i = try? container.decode(Int.self) {
                self = .text(String(i))
            } else if let d = try? container.decode(Double.self) {
                self = .text(String(d))
            } else if let s = try? container.decode(String.self) {
                self = .text(s)
            } else if let list = try? container.decode([String].self) {
                self = .text(list.joined(separator: ","))
            } else if container.decodeNil() {
                self = .text("")
            } else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "expected a string, number, boolean or list of strings")
            }
        }
    }

    /// Applies a config file's keys; an unknown key is an error that names it (a typo must not be ignored).
    public mutating func apply(file bytes: [UInt8], name: String) throws(ServiceError) {
        let values: [String: FileValue]
        do {
            values = try JSONDecoder().decode([String: FileValue].self, from: Data(bytes))
        } catch {
            throw ServiceError(400, "\(name) is not a JSON object of settings: \(error)")
        }
        for (key, value) in values.sorted(by: { $0.key < $1.key }) {
            guard let setting = Self.settings.first(where: { $0.key == key }) else {
                throw ServiceError(400, "\(name): unknown setting \"\(key)\"; known: \(Self.settings.map(\.key).joined(separator: ", "))")
            }
            guard case .text(let text) = value else { continue }
            do {
                try setting.apply(&self, text)
            } catch {
                throw ServiceError(400, "\(name): \(error.message)")
            }
        }
    }

    /// Applies `DIORAMA_<KEY>` variables that are set.
    public mutating func apply(environment: [String: String]) throws(ServiceError) {
        for setting in Self.settings {
            guard let text = environment[setting.environmentName] else { continue }
            do {
                try setting.apply(&self, text)
            } catch {
                throw ServiceError(400, "\(setting.environmentName): \(error.message)")
            }
        }
    }

    /// Applies one setting by its key (flags use this).
    public mutating func set(_ key: String, _ text: String) throws(ServiceError) {
        guard let setting = Self.settings.first(where: { $0.key == key }) else { throw ServiceError(400, "unknown setting \(key)") }
        try setting.apply(&self, text)
    }

    /// The settings' names, environment variables and meanings, for `--help`.
    /// Each setting on its own line, then its meaning indented below, wrapped to fit 80 columns unbroken.
    public static var settingsHelp: String {
        settings.map { setting in
            var lines = ["  \(setting.key) (\(setting.environmentName))"]
            var line = "      "
            for word in setting.help.split(separator: " ") {
                if line.count + word.count + 1 > 78 && line.count > 6 {
                    lines.append(line)
                    line = "      "
                }
                line += (line.count > 6 ? " " : "") + word
            }
            lines.append(line)
            return lines.joined(separator: "\n")
        }.joined(separator: "\n")
    }
}

/// What a `diorama serve` process does when several share one store: everything, only answer clients (`api`), or only
/// run jobs (`worker`).
public enum ServiceRole: String, Sendable, CaseIterable {
    case all, api, worker
}
