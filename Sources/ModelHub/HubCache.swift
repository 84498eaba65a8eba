import FoundationEssentials

#if canImport(Glibc)
    import Glibc
#endif

/// The Hugging Face hub's cache, in the hub's own layout, so weights fetched by Python tools are found here and what
/// Diorama fetches is theirs too:
///
///     <root>/models--<org>--<name>/blobs/<etag>             the files' bytes, named by their ETag (LFS: SHA-256)
///     <root>/models--<org>--<name>/snapshots/<commit>/<path> relative symbolic links to the blobs
///     <root>/models--<org>--<name>/refs/<revision>          the commit a branch or tag pointed at when fetched
///
/// A download in progress is `blobs/<etag>.incomplete`; it becomes the blob only once verified.
public struct HubCache: Sendable, Equatable {
    public var root: String

    public init(root: String) {
        self.root = root.count > 1 && root.hasSuffix("/") ? String(root.dropLast()) : root
    }

    /// The root huggingface_hub uses: `HF_HUB_CACHE`, else `HF_HOME/hub`, else `XDG_CACHE_HOME/huggingface/hub`, else
    /// `~/.cache/huggingface/hub` (`HUGGINGFACE_HUB_CACHE`, the older name, is honoured too).
    public static func defaultRoot(environment: [String: String]) -> String {
        if let cache = environment["HF_HUB_CACHE"] ?? environment["HUGGINGFACE_HUB_CACHE"], !cache.isEmpty { return expandingTilde(cache, environment) }
        return "\(hubHome(environment: environment))/hub"
    }

    /// `HF_HOME`, else `XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`: where the token file lives too.
    public static func hubHome(environment: [String: String]) -> String {
        if let home = environment["HF_HOME"], !home.isEmpty { return expandingTilde(home, environment) }
        if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty { return "\(expandingTilde(xdg, environment))/huggingface" }
        return "\(environment["HOME"] ?? "/root")/.cache/huggingface"
    }

    static func expandingTilde(_ path: String, _ environment: [String: String]) -> String {
        path == "~" || path.hasPrefix("~/") ? (environment["HOME"] ?? "/root") + path.dropFirst() : path
    }

    public func repositoryFolder(_ repository: String) -> String {
        "\(root)/models--" + repository.replacingOccurrences(of: "/", with: "--")
    }

    public func blob(_ repository: String, etag: String) -> String { "\(repositoryFolder(repository))/blobs/\(etag)" }
    public func snapshot(_ repository: String, commit: String) -> String { "\(repositoryFolder(repository))/snapshots/\(commit)" }
    public func reference(_ repository: String, revision: String) -> String { "\(repositoryFolder(repository))/refs/\(revision)" }

    /// The commit `revision` names: itself when it is a commit id, else what `refs/<revision>` recorded; nil when
    /// this cache has never fetched it.
    public func commit(_ repository: String, revision: String) -> String? {
        if Self.isCommit(revision) { return revision }
        guard let text = try? String(contentsOfFile: reference(repository, revision: revision), encoding: .utf8) else { return nil }
        let commit = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return Self.isCommit(commit) ? commit : nil
    }

    /// A blob name the hub gives: a git blob id (40 hex digits) or a SHA-256 (64).
    public static func isHash(_ value: String) -> Bool {
        (value.utf8.count == 40 || value.utf8.count == 64) && value.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// A path that stays inside its snapshot: relative, no empty, `.` or `..` parts, no backslashes or NULs.
    public static func isSafeRelativePath(_ path: String) -> Bool {
        guard !path.isEmpty, !path.hasPrefix("/"), !path.contains("\\"), !path.contains("\0") else { return false }
        return path.split(separator: "/", omittingEmptySubsequences: false).allSatisfy { !$0.isEmpty && $0 != "." && $0 != ".." }
    }

    public static func isCommit(_ revision: String) -> Bool {
        revision.utf8.count == 40 && revision.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// Records that `revision` pointed at `commit` (written beside and renamed over, never half-written).
    public func record(_ repository: String, revision: String, commit: String) throws(HubError) {
        guard !Self.isCommit(revision) else { return }
        let path = reference(repository, revision: revision)
        try HubFiles.makeDirectories(HubFiles.parent(path))
        try HubFiles.writeAtomically(Array(commit.utf8), to: path)
    }

    /// Points `snapshots/<commit>/<file>` at `blobs/<etag>` with a relative link, as huggingface_hub does.
    public func link(_ repository: String, commit: String, file: String, etag: String) throws(HubError) {
        let path = "\(snapshot(repository, commit: commit))/\(file)"
        try HubFiles.makeDirectories(HubFiles.parent(path))
        let depth = file.split(separator: "/").count - 1
        let target = String(repeating: "../", count: depth + 2) + "blobs/\(etag)"
        unlink(path)
        guard symlink(target, path) == 0 else { throw HubError.file(path, "cannot link to \(target): \(HubFiles.lastError())") }
    }

    /// The path of `file` in the snapshot when it is there and its blob is whole (a dangling link counts as absent).
    public func cachedFile(_ repository: String, commit: String, file: String) -> String? {
        let path = "\(snapshot(repository, commit: commit))/\(file)"
        return access(path, R_OK) == 0 ? path : nil
    }

    /// The repositories present, with their snapshots and the bytes of their blobs.
    public func repositories() -> [CachedRepository] {
        HubFiles.entries(root).filter { $0.hasPrefix("models--") }.sorted().map { folder in
            let name = folder.dropFirst("models--".count).replacingOccurrences(of: "--", with: "/")
            let base = "\(root)/\(folder)"
            let blobs = HubFiles.entries("\(base)/blobs").filter { !$0.hasSuffix(".incomplete") }
            let bytes = blobs.reduce(Int64(0)) { $0 + (HubFiles.size("\(base)/blobs/\($1)") ?? 0) }
            var references: [String: String] = [:]
            for revision in HubFiles.entries("\(base)/refs") {
                if let commit = commit(name, revision: revision) { references[revision] = commit }
            }
            return CachedRepository(
                repository: name, snapshots: HubFiles.entries("\(base)/snapshots").sorted(), references: references, bytes: bytes)
        }
    }
}

public struct CachedRepository: Sendable, Equatable {
    public var repository: String
    public var snapshots: [String]
    public var references: [String: String]
    public var bytes: Int64
}
