import FoundationEssentials

/// Where and how to reach the hub, from the variables huggingface_hub reads: `HF_ENDPOINT`, `HF_TOKEN` (else the
/// token file `huggingface-cli login` writes), `HF_HUB_OFFLINE`, and the cache's `HF_HUB_CACHE`/`HF_HOME`.
public struct HubSettings: Sendable {
    public var endpoint: String
    public var token: String?
    public var offline: Bool
    public var cache: HubCache

    public init(endpoint: String = "https://huggingface.co", token: String? = nil, offline: Bool = false, cache: HubCache) {
        self.endpoint = endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint
        self.token = token
        self.offline = offline
        self.cache = cache
    }

    public init(environment: [String: String], cacheRoot: String? = nil) {
        let home = HubCache.hubHome(environment: environment)
        var token = environment["HF_TOKEN"] ?? environment["HUGGING_FACE_HUB_TOKEN"]
        if token?.isEmpty ?? true {
            let file = environment["HF_TOKEN_PATH"] ?? "\(home)/token"
            token = (try? String(contentsOfFile: file, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let offline = ["1", "ON", "YES", "TRUE"].contains((environment["HF_HUB_OFFLINE"] ?? "").uppercased())
        self.init(
            endpoint: environment["HF_ENDPOINT"].flatMap { $0.isEmpty ? nil : $0 } ?? "https://huggingface.co",
            token: token.flatMap { $0.isEmpty ? nil : $0 }, offline: offline,
            cache: HubCache(root: cacheRoot ?? HubCache.defaultRoot(environment: environment)))
    }
}
