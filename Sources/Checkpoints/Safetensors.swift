import FoundationEssentials

/// The safetensors format: an 8-byte little-endian header length, a JSON header of
/// `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}`, then the data, with offsets
/// relative to its start. Read by memory map; every field is checked before anything is trusted.
public enum Safetensors {
    /// Headers beyond this are refused (the reference library's limit).
    public static let maxHeaderSize = 100 << 20

    struct Entry: Decodable {
        var dtype: String
        var shape: [Int]
        var data_offsets: [Int]
    }

    enum HeaderValue: Decodable {
        case tensor(Entry)
        case metadata([String: String])

        init(from decoder: any Decoder) throws {
            if let entry = try? Entry(from: decoder) {
                self = .tensor(entry)
            } else {
                self = .metadata(try [String: String](from: decoder))
            }
        }
    }

    /// Reads one `.safetensors` file.
    public static func read(path: String) throws(CheckpointError) -> Checkpoint {
        let file = try MappedFile(path: path)
        guard file.size >= 8 else {
            throw CheckpointError(.truncated, file: path, offset: 0, "is \(file.size) bytes; a safetensors file starts with an 8-byte header length")
        }
        let headerSize = Int(clamping: file.bytes.loadUnaligned(as: UInt64.self).littleEndian)
        guard headerSize <= maxHeaderSize else {
            throw CheckpointError(.invalidHeader, file: path, offset: 0, "header length \(headerSize) exceeds the limit of \(maxHeaderSize) bytes")
        }
        guard headerSize <= file.size - 8 else {
            throw CheckpointError(.truncated, file: path, offset: 0, "header length \(headerSize) runs past the end of the \(file.size)-byte file")
        }
        let headerBytes = try file.slice(8, headerSize)
        guard headerBytes.first == UInt8(ascii: "{") else {
            throw CheckpointError(.invalidHeader, file: path, offset: 8, "the header is not a JSON object")
        }
        let header: [String: HeaderValue]
        do {
            header = try JSONDecoder().decode([String: HeaderValue].self, from: Data(headerBytes))
        } catch {
            throw CheckpointError(.invalidHeader, file: path, offset: 8, "the JSON header does not parse as safetensors: \(error)")
        }
        let dataStart = 8 + headerSize
        let dataSize = file.size - dataStart
        var metadata: [String: String] = [:]
        var tensors: [(begin: Int, tensor: StoredTensor)] = []
        for (name, value) in header {
            switch value {
            case .metadata(let m):
                guard name == "__metadata__" else {
                    throw CheckpointError(.invalidHeader, file: path, tensor: name, "is not a tensor entry {dtype, shape, data_offsets}")
                }
                metadata = m
            case .tensor(let entry):
                guard let dtype = StoredDType(rawValue: entry.dtype) else {
                    throw CheckpointError(.dtypeMismatch, file: path, tensor: name, "has the unknown dtype '\(entry.dtype)'")
                }
                guard entry.data_offsets.count == 2, let count = Int.checkedProduct(entry.shape) else {
                    throw CheckpointError(.invalidHeader, file: path, tensor: name, "needs a non-negative shape and two data offsets")
                }
                let (begin, end) = (entry.data_offsets[0], entry.data_offsets[1])
                guard begin >= 0, begin <= end, end <= dataSize else {
                    throw CheckpointError(
                        .outOfBounds, file: path, tensor: name, offset: dataStart + max(begin, 0),
                        "data offsets [\(begin), \(end)] lie outside the \(dataSize)-byte data area")
                }
                let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
                guard !overflow, bytes == end - begin else {
                    throw CheckpointError(
                        .dtypeMismatch, file: path, tensor: name, offset: dataStart + begin,
                        "\(entry.dtype) \(entry.shape) needs \(count * dtype.byteSize) bytes but its offsets span \(end - begin)")
                }
                let tensor = StoredTensor(
                    name: name, dtype: dtype, shape: entry.shape, strides: denseStrides(entry.shape), storageOffset: dataStart + begin,
                    elementOffset: 0, file: file)
                tensors.append((begin, tensor))
            }
        }
        tensors.sort { $0.begin < $1.begin || ($0.begin == $1.begin && $0.tensor.name < $1.tensor.name) }
        // Overlapping ranges would make two tensors alias; the format forbids it.
        var reach = 0
        for (begin, tensor) in tensors where tensor.byteCount > 0 {
            guard begin >= reach else {
                throw CheckpointError(.outOfBounds, file: path, tensor: tensor.name, offset: dataStart + begin, "overlaps the data of the tensor before it")
            }
            reach = begin + tensor.byteCount
        }
        return Checkpoint(format: .safetensors, tensors: tensors.map(\.tensor), metadata: metadata, otherEntries: [])
    }

    static func denseStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var running = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[i] = running
            running *= max(shape[i], 1)
        }
        return strides
    }

    /// Reads a sharded folder: `*.safetensors.index.json` (whose `weight_map` names each tensor's shard) when there
    /// is one, else every `*.safetensors` file in name order.
    public static func readFolder(path: String, entries: [String]) throws(CheckpointError) -> Checkpoint {
        let folder = path.hasSuffix("/") ? String(path.dropLast()) : path
        var shards: [String]
        var expected: [String: String]?
        if let index = entries.filter({ $0.hasSuffix(".safetensors.index.json") }).sorted().first {
            let file = try MappedFile(path: "\(folder)/\(index)")
            struct Index: Decodable { var weight_map: [String: String] }
            let map: [String: String]
            do {
                map = try JSONDecoder().decode(Index.self, from: Data(try file.slice(0, file.size))).weight_map
            } catch let error as CheckpointError {
                throw error
            } catch {
                throw CheckpointError(.invalidHeader, file: file.path, "is not a safetensors index (weight_map): \(error)")
            }
            shards = Array(Set(map.values)).sorted()
            for shard in shards where shard.contains("/") || shard.hasPrefix(".") {
                throw CheckpointError(.invalidHeader, file: file.path, "names the shard '\(shard)' outside its folder")
            }
            for shard in shards where !entries.contains(shard) {
                throw CheckpointError(.missingEntry, file: file.path, "names the shard '\(shard)', which is not in \(folder)")
            }
            expected = map
        } else {
            shards = entries.filter { $0.hasSuffix(".safetensors") }.sorted()
        }
        guard !shards.isEmpty else {
            throw CheckpointError(.missingEntry, file: path, "holds no .safetensors files")
        }
        var tensors: [StoredTensor] = []
        var metadata: [String: String] = [:]
        var seen: [String: String] = [:]
        for shard in shards {
            let part = try read(path: "\(folder)/\(shard)")
            metadata.merge(part.metadata) { a, _ in a }
            for t in part.tensors {
                if let other = seen[t.name] {
                    throw CheckpointError(.invalidHeader, file: t.path, tensor: t.name, "also appears in \(other)")
                }
                if let expected, expected[t.name] != shard {
                    throw CheckpointError(.invalidHeader, file: t.path, tensor: t.name, "is not where the index says (\(expected[t.name] ?? "nowhere"))")
                }
                seen[t.name] = shard
                tensors.append(t)
            }
        }
        if let expected {
            for name in expected.keys.sorted() where seen[name] == nil {
                throw CheckpointError(.missingEntry, file: "\(folder)/\(expected[name]!)", tensor: name, "is in the index but not in its shard")
            }
        }
        return Checkpoint(format: .shardedSafetensors, tensors: tensors, metadata: metadata, otherEntries: [])
    }
}

/// Writes safetensors files: header (padded to 8 bytes with spaces), then every tensor dense, in the given order.
public struct SafetensorsWriter {
    public struct Item {
        public var name: String
        public var dtype: StoredDType
        public var shape: [Int]
        public var byteCount: Int
        public init(name: String, dtype: StoredDType, shape: [Int], byteCount: Int) {
            self.name = name
            self.dtype = dtype
            self.shape = shape
            self.byteCount = byteCount
        }
    }

    /// Writes `tensors` (dense, in order) with `metadata`, handing the bytes to `sink` in pieces: the header, then
    /// each tensor's data, so a large checkpoint streams without a second copy in memory.
    public static func write(
        _ tensors: [StoredTensor], metadata: [String: String], to sink: (UnsafeRawBufferPointer) throws -> Void
    ) rethrows {
        let items = tensors.map { Item(name: $0.name, dtype: $0.dtype, shape: $0.shape, byteCount: $0.byteCount) }
        try header(for: items, metadata: metadata).withUnsafeBytes { try sink($0) }
        for t in tensors { try t.withContiguousBytes { try sink($0) } }
    }

    /// The header bytes (length prefix included) for `items` stored back to back in that order.
    public static func header(for items: [Item], metadata: [String: String]) -> [UInt8] {
        func quoted(_ s: String) -> String {
            var out = "\""
            for c in s.unicodeScalars {
                switch c {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
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
        var parts: [String] = []
        if !metadata.isEmpty {
            let fields = metadata.keys.sorted().map { "\(quoted($0)):\(quoted(metadata[$0]!))" }
            parts.append("\"__metadata__\":{" + fields.joined(separator: ",") + "}")
        }
        var offset = 0
        for item in items {
            let shape = item.shape.map(String.init).joined(separator: ",")
            parts.append("\(quoted(item.name)):{\"dtype\":\"\(item.dtype.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + item.byteCount)]}")
            offset += item.byteCount
        }
        var json = Array(("{" + parts.joined(separator: ",") + "}").utf8)
        while json.count % 8 != 0 { json.append(UInt8(ascii: " ")) }
        var out: [UInt8] = []
        var length = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &length) { out += $0 }
        return out + json
    }
}
