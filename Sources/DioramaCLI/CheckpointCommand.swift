import ArgumentParser
import Checkpoints
import SplatIO

extension CheckpointError: CommandLineReportable {
    var exitCode: Int32 { kind == .io ? 74 : 65 }
}

struct CheckpointCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkpoint",
        abstract: "Inspect and convert model checkpoints (safetensors, sharded folders, PyTorch .ckpt/.pt/.bin) without Python.",
        subcommands: [CheckpointInspect.self, CheckpointConvert.self])
}

struct CheckpointInspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "List a checkpoint's tensors: names, dtypes, shapes, and totals per group and dtype.",
        discussion: helpText(
            """
            PATH is a .safetensors file, a folder of them (with or without model.safetensors.index.json), or a
            PyTorch zip checkpoint (FlashWorld's model.ckpt holds two state dicts, shown as transformer.* and
            recon_decoder.*). Nothing is loaded into memory beyond the headers; PyTorch pickles are read by a
            parser that refuses anything but state-dict contents, so inspecting an untrusted file runs no code.
            """))

    @Argument(help: "A checkpoint file or folder.")
    var path: String

    @Option(help: "Show only tensors whose name starts with this.")
    var prefix = ""

    @Option(help: "List at most this many tensors (0 for totals only).")
    var limit = 50

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let checkpoint = try reportingErrors { () throws(CheckpointError) in try CheckpointReader.open(path: path) }
        let tensors = checkpoint.tensors.filter { $0.name.hasPrefix(prefix) }
        let parameters = tensors.reduce(0) { $0 + $1.count }
        let bytes = tensors.reduce(0) { $0 + $1.byteCount }
        var byGroup: [String: (count: Int, parameters: Int)] = [:]
        var byType: [String: Int] = [:]
        for t in tensors {
            let group = String(t.name.split(separator: ".").first ?? "")
            byGroup[group, default: (0, 0)].count += 1
            byGroup[group]!.parameters += t.count
            byType[t.dtype.rawValue, default: 0] += t.count
        }
        if json {
            let items = tensors.map {
                "{\"name\": \(quoted($0.name)), \"dtype\": \"\($0.dtype.rawValue)\", \"shape\": [\($0.shape.map(String.init).joined(separator: ", "))]}"
            }
            print(
                "{\"format\": \"\(checkpoint.format.rawValue)\", \"tensors\": \(tensors.count), \"parameters\": \(parameters), \"bytes\": \(bytes), \"list\": [\(items.joined(separator: ", "))]}"
            )
            return
        }
        print("\(path): \(checkpoint.format.rawValue), \(tensors.count) tensors, \(parameters) parameters, \(bytes) bytes")
        for (group, totals) in byGroup.sorted(by: { $0.key < $1.key }) {
            print("  \(group).*  \(totals.count) tensors, \(totals.parameters) parameters")
        }
        print("  dtypes: " + byType.sorted(by: { $0.key < $1.key }).map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        if !checkpoint.metadata.isEmpty {
            print("  metadata: " + checkpoint.metadata.sorted(by: { $0.key < $1.key }).map { "\($0.key)=\($0.value)" }.joined(separator: ", "))
        }
        if !checkpoint.otherEntries.isEmpty { print("  non-tensor entries: " + checkpoint.otherEntries.joined(separator: ", ")) }
        for t in tensors.prefix(max(limit, 0)) {
            print("  \(t.name)  \(t.dtype.rawValue) [\(t.shape.map(String.init).joined(separator: ", "))]\(t.isDense ? "" : " (strided view)")")
        }
        if tensors.count > limit && limit > 0 { print("  … \(tensors.count - limit) more (--limit)") }
    }
}

struct CheckpointConvert: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Write a checkpoint's tensors as one safetensors file (views become dense; names and dtypes are kept).",
        discussion: helpText(
            """
            Examples:
              diorama checkpoint convert model.ckpt flashworld.safetensors
              diorama checkpoint convert model.ckpt transformer.safetensors \\
                  --prefix transformer. --strip-prefix
            The output appears only when complete.
            """))

    @Argument(help: "A checkpoint file or folder.")
    var input: String

    @Argument(help: "The .safetensors file to write.")
    var output: String

    @Option(help: "Only tensors whose name starts with this.")
    var prefix = ""

    @Flag(help: "Remove --prefix from the written names.")
    var stripPrefix = false

    @Flag(name: .shortAndLong, help: "No summary.")
    var quiet = false

    func validate() throws {
        guard output.hasSuffix(".safetensors") else { throw ValidationError("the output must be a .safetensors file, not '\(output)'") }
        if stripPrefix && prefix.isEmpty { throw ValidationError("--strip-prefix needs --prefix") }
    }

    func run() throws {
        let checkpoint = try reportingErrors { () throws(CheckpointError) in try CheckpointReader.open(path: input) }
        let tensors = checkpoint.tensors.filter { $0.name.hasPrefix(prefix) }
        guard !tensors.isEmpty else {
            try reportingErrors { () throws(CheckpointError) in
                throw CheckpointError(.missingEntry, file: input, "has no tensors under the prefix '\(prefix)'")
            }
            return
        }
        let renamed = tensors.map { stripPrefix ? $0.renamed(String($0.name.dropFirst(prefix.count))) : $0 }
        try reportingErrors { () throws(SplatFileError) in
            let sink = try AtomicFileOutput(path: output)
            var failure: SplatFileError?
            SafetensorsWriter.write(renamed, metadata: ["format": "pt", "converted_by": "diorama"]) { bytes in
                guard failure == nil else { return }
                do throws(SplatFileError) { try sink.write(bytes) } catch { failure = error }
            }
            if let failure { throw failure }
            try sink.commit()
        }
        if !quiet { print("wrote \(output): \(renamed.count) tensors from \(input)") }
    }
}
