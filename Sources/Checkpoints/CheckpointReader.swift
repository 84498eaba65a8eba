#if canImport(Glibc)
    import Glibc
#endif

/// Opens any checkpoint Diorama reads, by content: a safetensors file, a folder of them (sharded, with or without an
/// index), or a PyTorch zip checkpoint.
public enum CheckpointReader {
    public static func open(path: String) throws(CheckpointError) -> Checkpoint {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw CheckpointError(.io, file: path, "cannot open: \(String(cString: strerror(errno)))")
        }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            return try Safetensors.readFolder(path: path, entries: try folderEntries(path))
        }
        if path.hasSuffix(".safetensors.index.json") {
            let folder = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
            return try Safetensors.readFolder(path: folder, entries: try folderEntries(folder))
        }
        let file = try MappedFile(path: path)
        if file.size >= 2, Array(try file.slice(0, 2)) == [0x50, 0x4B] { return try TorchCheckpoint.read(path: path) }
        if file.size >= 2, Array(try file.slice(0, 2)) == [0x80, 0x02] { return try TorchCheckpoint.read(path: path) }
        return try Safetensors.read(path: path)
    }

    static func folderEntries(_ path: String) throws(CheckpointError) -> [String] {
        guard let dir = opendir(path) else {
            throw CheckpointError(.io, file: path, "cannot list the folder: \(String(cString: strerror(errno)))")
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}
