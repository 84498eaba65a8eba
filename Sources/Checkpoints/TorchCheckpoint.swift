/// PyTorch's zip checkpoints (`torch.save` since 1.6: `.ckpt`, `.pt`, `.bin`), read without Python: the zip
/// directory, then `data.pkl` through a pickle machine that knows only what state dicts use. No class from the file is
/// ever instantiated; a pickle that asks for anything else is refused with the opcode or class and its offset.
public enum TorchCheckpoint {
    /// Reads a torch zip checkpoint; nested dicts become dotted names (`transformer.blocks.0.attn1.to_q.weight`).
    public static func read(path: String) throws(CheckpointError) -> Checkpoint {
        let file = try MappedFile(path: path)
        let legacyMagic: [UInt8] = [0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]
        if file.size >= legacyMagic.count, Array(try file.slice(0, legacyMagic.count)) == legacyMagic {
            throw CheckpointError(
                .unsupportedFormat, file: path,
                "is in PyTorch's legacy (pre-1.6) format; load and re-save it with torch.save, or convert it to safetensors")
        }
        let archive = try ZipArchive(file: file)
        guard let pickleName = archive.entries.keys.filter({ $0.hasSuffix("/data.pkl") || $0 == "data.pkl" }).sorted().first else {
            throw CheckpointError(.missingEntry, file: path, "is a zip without data.pkl, so not a PyTorch checkpoint")
        }
        let prefix = String(pickleName.dropLast("data.pkl".count))
        if let order = archive.entries["\(prefix)byteorder"] {
            let text = String(decoding: try file.slice(order.offset, order.size), as: UTF8.self)
            guard text.hasPrefix("little") else {
                throw CheckpointError(.unsupportedFormat, file: path, "stores its tensors \(text)-endian; only little-endian is read")
            }
        }
        let pickle = archive.entries[pickleName]!
        var machine = PickleMachine(bytes: try file.slice(pickle.offset, pickle.size), file: path, base: pickle.offset)
        let root = try machine.run()

        var tensors: [StoredTensor] = []
        var others: [String] = []
        func flatten(_ value: PickleValue, _ name: String) throws(CheckpointError) {
            switch value {
            case .dict(let items):
                for (key, item) in items {
                    let k: String
                    switch key {
                    case .string(let s): k = s
                    case .int(let i): k = String(i)
                    default: throw CheckpointError(.unsupportedPickle, file: path, tensor: name, "has a dict key that is not a string or integer")
                    }
                    try flatten(item, name.isEmpty ? k : "\(name).\(k)")
                }
            case .tensor(let record): tensors.append(try tensor(record, name: name, archive: archive, prefix: prefix, file: file))
            default: others.append(name)
            }
        }
        try flatten(root, "")
        return Checkpoint(format: .pytorchZip, tensors: tensors, metadata: [:], otherEntries: others)
    }

    static func tensor(
        _ r: TensorRecord, name: String, archive: ZipArchive, prefix: String, file: MappedFile
    ) throws(CheckpointError) -> StoredTensor {
        let path = file.path
        guard let entry = archive.entries["\(prefix)data/\(r.storageKey)"] else {
            throw CheckpointError(.missingEntry, file: path, tensor: name, "its storage data/\(r.storageKey) is not in the archive")
        }
        guard r.shape.count == r.strides.count, r.shape.allSatisfy({ $0 >= 0 }), r.strides.allSatisfy({ $0 >= 0 }),
            r.offset >= 0, Int.checkedProduct(r.shape) != nil
        else {
            throw CheckpointError(.invalidHeader, file: path, tensor: name, "has an invalid size \(r.shape), stride \(r.strides) or offset \(r.offset)")
        }
        let size = r.dtype.byteSize
        guard r.storageElements * size <= entry.size else {
            throw CheckpointError(
                .dtypeMismatch, file: path, tensor: name, offset: entry.offset,
                "its storage claims \(r.storageElements) \(r.dtype) elements but data/\(r.storageKey) holds \(entry.size) bytes")
        }
        // The farthest element the view touches must lie inside the storage.
        let count = Int.checkedProduct(r.shape)!
        if count > 0 {
            var last = r.offset
            for (d, s) in zip(r.shape, r.strides) { last += (d - 1) * s }
            guard last < r.storageElements else {
                throw CheckpointError(
                    .outOfBounds, file: path, tensor: name, offset: entry.offset,
                    "size \(r.shape), stride \(r.strides) at offset \(r.offset) reach element \(last) of a \(r.storageElements)-element storage")
            }
        }
        return StoredTensor(
            name: name, dtype: r.dtype, shape: r.shape, strides: r.strides, storageOffset: entry.offset, elementOffset: r.offset,
            file: file)
    }
}

/// The stored (uncompressed) entries of a zip file, zip64 included, by name: where each one's data starts and its size.
struct ZipArchive {
    struct Entry {
        var offset: Int
        var size: Int
    }

    var entries: [String: Entry] = [:]

    init(file: MappedFile) throws(CheckpointError) {
        let path = file.path
        func u16(_ at: Int) throws(CheckpointError) -> Int { Int(try file.slice(at, 2).loadUnaligned(as: UInt16.self).littleEndian) }
        func u32(_ at: Int) throws(CheckpointError) -> Int { Int(try file.slice(at, 4).loadUnaligned(as: UInt32.self).littleEndian) }
        func u64(_ at: Int) throws(CheckpointError) -> Int { Int(clamping: try file.slice(at, 8).loadUnaligned(as: UInt64.self).littleEndian) }

        // The end-of-central-directory record: within the last 64 KiB + 22 bytes.
        guard file.size >= 22 else { throw CheckpointError(.truncated, file: path, "is too short to be a zip archive") }
        var eocd = -1
        var at = file.size - 22
        while at >= max(0, file.size - 22 - 65535) {
            if try u32(at) == 0x0605_4B50 {
                eocd = at
                break
            }
            at -= 1
        }
        guard eocd >= 0 else {
            throw CheckpointError(.truncated, file: path, "has no zip end-of-directory record: the file is cut short or is not a zip")
        }
        var count = try u16(eocd + 10)
        var directorySize = try u32(eocd + 12)
        var directoryOffset = try u32(eocd + 16)
        // zip64: the locator sits just before the classic record.
        if eocd >= 20, try u32(eocd - 20) == 0x0706_4B50 {
            let record = try u64(eocd - 20 + 8)
            guard try u32(record) == 0x0606_4B50 else {
                throw CheckpointError(.invalidHeader, file: path, offset: record, "the zip64 locator points at no zip64 directory record")
            }
            count = try u64(record + 32)
            directorySize = try u64(record + 40)
            directoryOffset = try u64(record + 48)
        }
        guard directoryOffset <= file.size, directorySize <= file.size - directoryOffset else {
            throw CheckpointError(.truncated, file: path, offset: directoryOffset, "the zip directory lies beyond the end of the file")
        }
        var cursor = directoryOffset
        for _ in 0..<count {
            guard try u32(cursor) == 0x0201_4B50 else {
                throw CheckpointError(.invalidHeader, file: path, offset: cursor, "expected a zip directory entry")
            }
            let method = try u16(cursor + 10)
            var compressed = try u32(cursor + 20)
            var size = try u32(cursor + 24)
            let nameLength = try u16(cursor + 28), extraLength = try u16(cursor + 30), commentLength = try u16(cursor + 32)
            var localOffset = try u32(cursor + 42)
            let name = String(decoding: try file.slice(cursor + 46, nameLength), as: UTF8.self)
            // zip64 extra (id 1): only the fields whose 32-bit value is 0xFFFFFFFF, in this order.
            var extra = cursor + 46 + nameLength
            let extraEnd = extra + extraLength
            while extra + 4 <= extraEnd {
                let id = try u16(extra), length = try u16(extra + 2)
                if id == 1 {
                    var field = extra + 4
                    if size == 0xFFFF_FFFF { size = try u64(field); field += 8 }
                    if compressed == 0xFFFF_FFFF { compressed = try u64(field); field += 8 }
                    if localOffset == 0xFFFF_FFFF { localOffset = try u64(field) }
                }
                extra += 4 + length
            }
            guard method == 0 else {
                throw CheckpointError(.unsupportedFormat, file: path, offset: cursor, "entry '\(name)' is compressed (method \(method)); PyTorch stores entries uncompressed")
            }
            guard try u32(localOffset) == 0x0403_4B50 else {
                throw CheckpointError(.invalidHeader, file: path, offset: localOffset, "entry '\(name)' has no local header where the directory says")
            }
            let dataOffset = localOffset + 30 + (try u16(localOffset + 26)) + (try u16(localOffset + 28))
            guard dataOffset <= file.size, size <= file.size - dataOffset else {
                throw CheckpointError(.truncated, file: path, offset: dataOffset, "entry '\(name)' (\(size) bytes) runs past the end of the file")
            }
            entries[name] = Entry(offset: dataOffset, size: size)
            cursor += 46 + nameLength + extraLength + commentLength
        }
    }
}

/// A tensor as the pickle describes it: which storage, its element type, and the view.
struct TensorRecord {
    var storageKey: String
    var dtype: StoredDType
    var storageElements: Int
    var offset: Int
    var shape: [Int]
    var strides: [Int]
}

indirect enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case tuple([PickleValue])
    case list([PickleValue])
    case dict([(PickleValue, PickleValue)])
    case global(module: String, name: String)
    case storage(key: String, dtype: StoredDType, elements: Int)
    case tensor(TensorRecord)
    case mark
}

/// The pickle subset of state dicts: protocol 2 (and the protocol 4 framing opcodes), dicts and OrderedDicts,
/// tuples, lists, numbers, strings, storages by persistent id, and the tensor rebuild functions.
struct PickleMachine {
    let bytes: UnsafeRawBufferPointer
    let file: String
    let base: Int
    var position = 0
    var stack: [PickleValue] = []
    var memo: [Int: PickleValue] = [:]

    init(bytes: UnsafeRawBufferPointer, file: String, base: Int) {
        self.bytes = bytes
        self.file = file
        self.base = base
    }

    static let storageTypes: [String: StoredDType] = [
        "FloatStorage": .F32, "HalfStorage": .F16, "BFloat16Storage": .BF16, "DoubleStorage": .F64, "LongStorage": .I64,
        "IntStorage": .I32, "ShortStorage": .I16, "CharStorage": .I8, "ByteStorage": .U8, "BoolStorage": .BOOL,
    ]
    static let dtypeGlobals: [String: StoredDType] = [
        "float32": .F32, "float": .F32, "float16": .F16, "half": .F16, "bfloat16": .BF16, "float64": .F64, "double": .F64,
        "int64": .I64, "long": .I64, "int32": .I32, "int": .I32, "int16": .I16, "int8": .I8, "uint8": .U8, "bool": .BOOL,
        "float8_e4m3fn": .F8_E4M3, "float8_e5m2": .F8_E5M2, "uint16": .U16, "uint32": .U32, "uint64": .U64,
    ]

    func fail(_ message: String, at offset: Int? = nil) -> CheckpointError {
        CheckpointError(.unsupportedPickle, file: file, offset: base + (offset ?? position), message)
    }

    mutating func read(_ n: Int) throws(CheckpointError) -> UnsafeRawBufferPointer {
        guard n >= 0, position + n <= bytes.count else {
            throw CheckpointError(.truncated, file: file, offset: base + position, "data.pkl ends in the middle of an opcode")
        }
        defer { position += n }
        return UnsafeRawBufferPointer(rebasing: bytes[position..<(position + n)])
    }

    mutating func u8() throws(CheckpointError) -> Int { Int(try read(1)[0]) }
    mutating func u16() throws(CheckpointError) -> Int { Int(try read(2).loadUnaligned(as: UInt16.self).littleEndian) }
    mutating func u32() throws(CheckpointError) -> Int { Int(try read(4).loadUnaligned(as: UInt32.self).littleEndian) }
    mutating func i32() throws(CheckpointError) -> Int { Int(try read(4).loadUnaligned(as: Int32.self).littleEndian) }

    mutating func pop() throws(CheckpointError) -> PickleValue {
        guard let v = stack.popLast() else { throw fail("pops an empty stack") }
        return v
    }

    /// Everything above the topmost mark, which is removed.
    mutating func popToMark() throws(CheckpointError) -> [PickleValue] {
        guard let mark = stack.lastIndex(where: { if case .mark = $0 { true } else { false } }) else {
            throw fail("expects a MARK on the stack")
        }
        let items = Array(stack[(mark + 1)...])
        stack.removeSubrange(mark...)
        return items
    }

    mutating func run() throws(CheckpointError) -> PickleValue {
        while true {
            let start = position
            let opcode = try u8()
            switch opcode {
            case 0x80: _ = try u8()  // PROTO
            case 0x95: _ = try read(8)  // FRAME
            case 0x2E: return try pop()  // STOP
            case 0x28: stack.append(.mark)  // MARK
            case 0x4E: stack.append(.none)  // NONE
            case 0x88: stack.append(.bool(true))  // NEWTRUE
            case 0x89: stack.append(.bool(false))  // NEWFALSE
            case 0x4B: stack.append(.int(try u8()))  // BININT1
            case 0x4D: stack.append(.int(try u16()))  // BININT2
            case 0x4A: stack.append(.int(try i32()))  // BININT
            case 0x8A:  // LONG1
                let n = try u8()
                guard n <= 8 else { throw fail("has an integer of \(n) bytes", at: start) }
                let raw = try read(n)
                var value: Int64 = 0
                for (i, b) in raw.enumerated() { value |= Int64(b) << (8 * i) }
                if n > 0 && n < 8 && raw[n - 1] & 0x80 != 0 { value -= Int64(1) << (8 * n) }
                stack.append(.int(Int(value)))
            case 0x47: stack.append(.float(Double(bitPattern: UInt64(bigEndian: try read(8).loadUnaligned(as: UInt64.self)))))  // BINFLOAT
            case 0x58: stack.append(.string(String(decoding: try read(try u32()), as: UTF8.self)))  // BINUNICODE
            case 0x8C: stack.append(.string(String(decoding: try read(try u8()), as: UTF8.self)))  // SHORT_BINUNICODE
            case 0x29: stack.append(.tuple([]))  // EMPTY_TUPLE
            case 0x85: stack.append(.tuple([try pop()]))  // TUPLE1
            case 0x86:  // TUPLE2
                let b = try pop(), a = try pop()
                stack.append(.tuple([a, b]))
            case 0x87:  // TUPLE3
                let c = try pop(), b = try pop(), a = try pop()
                stack.append(.tuple([a, b, c]))
            case 0x74: stack.append(.tuple(try popToMark()))  // TUPLE
            case 0x5D: stack.append(.list([]))  // EMPTY_LIST
            case 0x61:  // APPEND
                let v = try pop()
                guard case .list(var items) = try pop() else { throw fail("APPEND on something that is not a list", at: start) }
                items.append(v)
                stack.append(.list(items))
            case 0x65:  // APPENDS
                let values = try popToMark()
                guard case .list(var items) = try pop() else { throw fail("APPENDS on something that is not a list", at: start) }
                items += values
                stack.append(.list(items))
            case 0x7D: stack.append(.dict([]))  // EMPTY_DICT
            case 0x73:  // SETITEM
                let v = try pop(), k = try pop()
                guard case .dict(var items) = try pop() else { throw fail("SETITEM on something that is not a dict", at: start) }
                items.append((k, v))
                stack.append(.dict(items))
            case 0x75:  // SETITEMS
                let pairs = try popToMark()
                guard pairs.count % 2 == 0, case .dict(var items) = try pop() else {
                    throw fail("SETITEMS without a dict and key-value pairs", at: start)
                }
                for i in stride(from: 0, to: pairs.count, by: 2) { items.append((pairs[i], pairs[i + 1])) }
                stack.append(.dict(items))
            case 0x71: memo[try u8()] = stack.last  // BINPUT
            case 0x72: memo[try u32()] = stack.last  // LONG_BINPUT
            case 0x94: memo[memo.count] = stack.last  // MEMOIZE
            case 0x68, 0x6A:  // BINGET, LONG_BINGET
                let index = opcode == 0x68 ? try u8() : try u32()
                guard let v = memo[index] else { throw fail("refers to memo entry \(index), which was never stored", at: start) }
                stack.append(v)
            case 0x63:  // GLOBAL "module\nname\n"
                let module = try line(), name = try line()
                try checkGlobal(module, name, at: start)
                stack.append(.global(module: module, name: name))
            case 0x93:  // STACK_GLOBAL
                guard case .string(let name) = try pop(), case .string(let module) = try pop() else {
                    throw fail("STACK_GLOBAL without two strings", at: start)
                }
                try checkGlobal(module, name, at: start)
                stack.append(.global(module: module, name: name))
            case 0x51:  // BINPERSID
                stack.append(try storage(try pop(), at: start))
            case 0x52:  // REDUCE
                let arguments = try pop(), callable = try pop()
                stack.append(try reduce(callable, arguments, at: start))
            case 0x62:  // BUILD: a state dict's `_metadata` attribute; dropped
                _ = try pop()
                guard case .dict = stack.last else { throw fail("BUILD on something that is not a dict", at: start) }
            default:
                throw fail(
                    "uses pickle opcode 0x\(String(opcode, radix: 16, uppercase: true)), outside the subset state dicts use; the file was not loaded",
                    at: start)
            }
        }
    }

    mutating func line() throws(CheckpointError) -> String {
        var end = position
        while end < bytes.count && bytes[end] != 0x0A { end += 1 }
        guard end < bytes.count, end - position < 256 else { throw fail("has an unterminated GLOBAL name") }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[position..<end]), as: UTF8.self)
        position = end + 1
        return text
    }

    /// Only the names state dicts use: refusing the rest is what makes loading untrusted files safe.
    func checkGlobal(_ module: String, _ name: String, at offset: Int) throws(CheckpointError) {
        let allowed: Bool
        switch module {
        case "collections": allowed = name == "OrderedDict"
        case "torch._utils": allowed = ["_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter"].contains(name)
        case "torch": allowed = Self.storageTypes[name] != nil || Self.dtypeGlobals[name] != nil
        case "torch.storage": allowed = name == "UntypedStorage"
        default: allowed = false
        }
        guard allowed else {
            throw fail("asks for '\(module).\(name)', which is not part of a state dict; refusing to load it", at: offset)
        }
    }

    /// A persistent id `('storage', StorageClass, key, location, numel)`.
    func storage(_ id: PickleValue, at offset: Int) throws(CheckpointError) -> PickleValue {
        guard case .tuple(let fields) = id, fields.count >= 5, case .string("storage") = fields[0],
            case .global(_, let typeName) = fields[1], case .string(let key) = fields[2], case .int(let numel) = fields[4], numel >= 0
        else { throw fail("has a persistent id that is not a storage reference", at: offset) }
        // UntypedStorage counts bytes; the element type comes with _rebuild_tensor_v3.
        let dtype = Self.storageTypes[typeName] ?? .U8
        guard key.allSatisfy(\.isNumber) || key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
            throw fail("has a storage key '\(key)' that is not a plain name", at: offset)
        }
        return .storage(key: key, dtype: dtype, elements: numel)
    }

    func reduce(_ callable: PickleValue, _ arguments: PickleValue, at offset: Int) throws(CheckpointError) -> PickleValue {
        guard case .global(let module, let name) = callable, case .tuple(let args) = arguments else {
            throw fail("REDUCE needs a known class and an argument tuple", at: offset)
        }
        switch (module, name) {
        case ("collections", "OrderedDict"): return .dict([])
        case ("torch._utils", "_rebuild_parameter"):
            guard case .tensor = args.first else { throw fail("_rebuild_parameter without a tensor", at: offset) }
            return args[0]
        case ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor_v3"):
            guard args.count >= 4, case .storage(let key, var dtype, var elements) = args[0], case .int(let start) = args[1],
                case .tuple(let size) = args[2], case .tuple(let stride) = args[3]
            else { throw fail("\(name) with arguments that are not (storage, offset, size, stride, …)", at: offset) }
            if name == "_rebuild_tensor_v3" {
                guard args.count >= 7, case .global(_, let dtypeName) = args[6], let d = Self.dtypeGlobals[dtypeName] else {
                    throw fail("_rebuild_tensor_v3 without a known dtype", at: offset)
                }
                elements /= d.byteSize
                dtype = d
            }
            func ints(_ values: [PickleValue]) throws(CheckpointError) -> [Int] {
                var out: [Int] = []
                for v in values {
                    guard case .int(let i) = v else { throw fail("\(name) with a size or stride that is not an integer", at: offset) }
                    out.append(i)
                }
                return out
            }
            return .tensor(
                TensorRecord(
                    storageKey: key, dtype: dtype, storageElements: elements, offset: start, shape: try ints(size),
                    strides: try ints(stride)))
        default:
            throw fail("calls '\(module).\(name)', which is not part of a state dict; refusing to load it", at: offset)
        }
    }
}
