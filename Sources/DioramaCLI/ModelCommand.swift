import ArgumentParser
import Foundation
import ModelHub
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

struct ModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Fetch models by name into the Hugging Face hub's cache, and see what is there.",
        discussion: helpText(
            """
            Models live in the Hugging Face hub's own cache (HF_HUB_CACHE, else HF_HOME/hub, else \
            ~/.cache/huggingface/hub) in its own layout, so weights already fetched with Python tools are found and \
            reused, and what Diorama fetches is theirs too. After a pull, --model flashworld (or wan2.2-ti2v-5b) \
            works in generate, serve and video.
            """),
        subcommands: [ModelPullCommand.self, ModelListCommand.self])
}

extension HubError: CommandLineReportable {
    var exitCode: Int32 {
        switch kind {
        case .unknownModel: 64  // EX_USAGE
        case .notDownloaded: 66  // EX_NOINPUT
        case .hub(let status): status == 401 || status == 403 ? 77 : 69  // EX_NOPERM, EX_UNAVAILABLE
        case .network: 69
        case .verification: 65
        case .file: 74
        }
    }
}

struct ModelPullCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pull",
        abstract: "Download a model's files from the Hugging Face hub (resumable, verified).",
        discussion: helpText(
            """
            Only the files the model needs are fetched: for flashworld, the tokenizer, text encoder, configs and VAE \
            of Wan-AI/Wan2.2-TI2V-5B-Diffusers and FlashWorld's model.ckpt from imlixinyang/FlashWorld; for \
            wan2.2-ti2v-5b, the whole diffusers folder. Every file is checked against the hub's SHA-256 before it \
            is used; a broken or interrupted download resumes where it stopped (run the command again). HF_ENDPOINT \
            (a mirror), HF_TOKEN (gated repositories), HF_HUB_OFFLINE and HF_HOME/HF_HUB_CACHE are honoured.

            Examples:
              diorama model pull flashworld
              HF_HUB_CACHE=/data/hub diorama model pull wan2.2-ti2v-5b
            """))

    @Argument(help: "The model: flashworld or wan2.2-ti2v-5b.")
    var name: String

    @Option(help: "The hub cache folder (default: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub).")
    var cacheDir: String?

    @Flag(help: "No progress bar.")
    var quiet = false

    func run() throws {
        let model = try reportingErrors { () throws(HubError) in try ModelArgument.known(name) }
        let settings = HubSettings(environment: ModelArgument.environment, cacheRoot: cacheDir)
        if !quiet { printError("pulling \(model.name) into \(settings.cache.root)\n") }
        let bar = PullProgressBar(enabled: !quiet)
        // `pull` throws only HubError; the bar is cleared before anything else is said.
        let result = try reportingErrors { () throws(HubError) in
            defer { bar.finish() }
            do {
                return try waitingFor { try await ModelPull(settings: settings).pull(model) { bar.update($0) } }
            } catch {
                throw error as? HubError ?? HubError(.network, "\(error)")
            }
        }
        print(
            "\(model.name): \(result.files) files, \(result.downloadedFiles) downloaded (\(formattedBytes(result.downloadedBytes))), "
                + "the rest already cached")
        print("folder: \(result.model.folder)")
        if let checkpoint = result.model.checkpoint { print("checkpoint: \(checkpoint)") }
    }
}

struct ModelListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "Show the models Diorama knows, whether each is complete in the cache, and what else the cache holds.")

    @Option(help: "The hub cache folder (default: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub).")
    var cacheDir: String?

    func run() throws {
        let cache = HubSettings(environment: ModelArgument.environment, cacheRoot: cacheDir).cache
        print("cache: \(cache.root)")
        let repositories = cache.repositories()
        for model in HubModel.all {
            let size = model.parts.compactMap { part in repositories.first { $0.repository == part.repository }?.bytes }.reduce(0, +)
            let state: String
            do {
                let resolved = try cache.resolve(model)
                state = "complete, \(formattedBytes(size)) in \(resolved.folder)"
            } catch {
                state = size > 0 ? "incomplete (\(formattedBytes(size))): run `diorama model pull \(model.name)`" : "not downloaded"
            }
            print("\(model.name): \(state)")
        }
        let known = Set(HubModel.all.flatMap { $0.parts.map(\.repository) })
        let others = repositories.filter { !known.contains($0.repository) }
        if !others.isEmpty {
            print("other repositories in the cache:")
            for other in others { print("  \(other.repository): \(formattedBytes(other.bytes)), \(other.snapshots.count) snapshot(s)") }
        }
    }
}

/// `--model` as commands take it: the built-in toy models, a model folder, or a name `diorama model pull` fetched.
enum ModelArgument {
    static var environment: [String: String] { ProcessInfo.processInfo.environment }

    static func known(_ name: String) throws(HubError) -> HubModel {
        guard let model = HubModel.named(name) else {
            throw HubError(.unknownModel, "\(name) is not a model Diorama can fetch; known: \(HubModel.all.map(\.name).joined(separator: ", "))")
        }
        return model
    }

    /// A folder is used as it is; a known name resolves through the hub cache (its checkpoint too, unless one is
    /// given); anything else is an error naming both ways.
    static func resolve(_ value: String, checkpoint: String?) throws(HubError) -> (folder: String, checkpoint: String?) {
        var info = stat()
        // A path (or anything present) is a folder; its loader says what is wrong with it.
        if stat(value, &info) == 0 || value.contains("/") { return (value, checkpoint) }
        guard let model = HubModel.named(value) else {
            throw HubError(
                .unknownModel,
                "\(value) is neither a model folder nor a model name (\(HubModel.all.map(\.name).joined(separator: ", ")), fetched by `diorama model pull`)")
        }
        let resolved = try HubSettings(environment: environment).cache.resolve(model)
        return (resolved.folder, checkpoint ?? resolved.checkpoint)
    }
}

/// The file being fetched and the whole pull on one line, updated from the pull's own task.
final class PullProgressBar: Sendable {
    private let bar: Mutex<ProgressBar>
    init(enabled: Bool) { bar = Mutex(ProgressBar("", enabled: enabled)) }
    func update(_ progress: PullProgress) {
        bar.withLock { bar in
            bar.label = progress.file
            bar.detail = "\(formattedBytes(progress.fileBytes)) of \(formattedBytes(progress.fileTotal)); all \(formattedBytes(progress.bytes)) of \(formattedBytes(progress.total))"
            bar.update(progress.bytes, max(progress.total, 1))
        }
    }
    func finish() { bar.withLock { $0.finish() } }
}

func formattedBytes(_ bytes: Int64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"]
    var value = Double(bytes), unit = 0
    // 999.96 KB reads as 1.0 MB, not 1000.0 KB
    while value >= 999.95 && unit < units.count - 1 {
        value /= 1000
        unit += 1
    }
    return unit == 0 ? "\(bytes) B" : String(format: "%.1f", value) + " " + units[unit]
}
