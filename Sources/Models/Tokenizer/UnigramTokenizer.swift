import FoundationEssentials

/// T5/UMT5's fast tokenizer read from `tokenizer.json` (the Hugging Face `tokenizers` format): the sentencepiece
/// precompiled character map as normaliser, whitespace splitting and Metaspace (`▁`) as pre-tokeniser, a Unigram model
/// segmented by Viterbi, `</s>` appended, truncation and padding to a fixed length.
public struct UnigramTokenizer: Sendable {
    let normalizers: [NormalizerStep]
    let splitsOnWhitespace: Bool
    let metaspace: Bool
    let prependScheme: String
    /// Keyed by UTF-8 bytes: Swift string equality is canonical equivalence, but the vocabulary is byte-exact.
    let pieces: [[UInt8]: (id: Int, score: Double)]
    /// Special added tokens, longest first, split out of the raw text before anything else.
    let specialTokens: [(text: [UInt8], id: Int)]
    let maxPieceLength: Int
    let unknownID: Int
    let unknownScore: Double
    public let endOfSequenceID: Int
    public let padID: Int

    struct File: Decodable {
        struct Normalizer: Decodable {
            var type: String
            var precompiled_charsmap: String?
            var normalizers: [Normalizer]?
            var strip_left: Bool?
            var strip_right: Bool?
            var pattern: Pattern?
            var content: String?
        }
        struct Pattern: Decodable {
            var String: String?
            var Regex: String?
        }
        struct PreTokenizer: Decodable {
            var type: String
            var pretokenizers: [PreTokenizer]?
            var prepend_scheme: String?
            var add_prefix_space: Bool?
        }
        struct Model: Decodable {
            var type: String
            var unk_id: Int?
            var vocab: [Piece]
            var byte_fallback: Bool?
        }
        struct Piece: Decodable {
            var text: String
            var score: Double
            init(from decoder: any Decoder) throws {
                var c = try decoder.unkeyedContainer()
                text = try c.decode(String.self)
                score = try c.decode(Double.self)
            }
        }
        struct AddedToken: Decodable {
            var id: Int
            var content: String
            var special: Bool?
        }
        var normalizer: Normalizer?
        var pre_tokenizer: PreTokenizer?
        var model: Model
        var added_tokens: [AddedToken]?
    }

    /// Reads `tokenizer.json`; refuses models and steps it does not implement, naming them.
    public init(json: [UInt8], name: String) throws(ModelError) {
        let file: File
        do {
            file = try JSONDecoder().decode(File.self, from: Data(json))
        } catch {
            throw ModelError("\(name) is not a tokenizer.json Diorama reads: \(error)")
        }
        guard file.model.type == "Unigram" else { throw ModelError("\(name): model type \(file.model.type) is not supported (UMT5 uses Unigram)") }
        guard file.model.byte_fallback != true else { throw ModelError("\(name): byte fallback is not supported") }
        var steps: [NormalizerStep] = []
        var queue = [file.normalizer].compactMap { $0 }
        while let n = queue.first {
            queue.removeFirst()
            switch n.type {
            case "Sequence": queue = (n.normalizers ?? []) + queue
            case "Precompiled":
                guard let encoded = n.precompiled_charsmap, let data = Data(base64Encoded: encoded) else {
                    throw ModelError("\(name): the precompiled character map is not base64")
                }
                steps.append(.precompiled(try PrecompiledCharsmap([UInt8](data), name: name)))
            case "Strip": steps.append(.strip(left: n.strip_left ?? false, right: n.strip_right ?? false))
            case "Replace":
                let content = Array((n.content ?? "").unicodeScalars)
                if let literal = n.pattern?.String {
                    steps.append(.replace(Array(literal.unicodeScalars), content))
                } else if let regex = n.pattern?.Regex, let run = Self.spaceRun(regex) {
                    steps.append(.replaceSpaceRuns(minimum: run, content))
                } else {
                    throw ModelError("\(name): Replace pattern \(String(describing: n.pattern)) is not supported")
                }
            default: throw ModelError("\(name): normaliser \(n.type) is not supported")
            }
        }
        var splits = false, meta = false, scheme = "always"
        var pre = [file.pre_tokenizer].compactMap { $0 }
        while let p = pre.first {
            pre.removeFirst()
            switch p.type {
            case "Sequence": pre = (p.pretokenizers ?? []) + pre
            case "WhitespaceSplit": splits = true
            case "Metaspace":
                meta = true
                scheme = p.prepend_scheme ?? (p.add_prefix_space == false ? "never" : "always")
            default: throw ModelError("\(name): pre-tokeniser \(p.type) is not supported")
            }
        }
        var table: [[UInt8]: (Int, Double)] = [:]
        for (id, piece) in file.model.vocab.enumerated() where table[Array(piece.text.utf8)] == nil {
            table[Array(piece.text.utf8)] = (id, piece.score)
        }
        specialTokens = (file.added_tokens ?? []).filter { $0.special ?? false }.map { (Array($0.content.utf8), $0.id) }
            .sorted { $0.0.count > $1.0.count }
        let ids = Dictionary(file.added_tokens?.map { ($0.content, $0.id) } ?? [], uniquingKeysWith: { a, _ in a })
        normalizers = steps
        splitsOnWhitespace = splits
        metaspace = meta
        prependScheme = scheme
        pieces = table
        maxPieceLength = file.model.vocab.map { $0.text.utf8.count }.max() ?? 1
        unknownID = file.model.unk_id ?? ids["<unk>"] ?? 2
        unknownScore = (file.model.vocab.map(\.score).min() ?? 0) - 10
        endOfSequenceID = ids["</s>"] ?? 1
        padID = ids["<pad>"] ?? 0
    }

    /// `" {n,}"`, the only regular expression the T5 converters write: its minimum run length.
    static func spaceRun(_ regex: String) -> Int? {
        guard regex.hasPrefix(" {"), regex.hasSuffix(",}"), let n = Int(regex.dropFirst(2).dropLast(2)) else { return nil }
        return n
    }

    /// The normalised text: every step in order (the character map grapheme by grapheme, as `tokenizers` applies it;
    /// the others code point by code point).
    public func normalized(_ text: String) -> String {
        var scalars = Array(text.unicodeScalars)
        for step in normalizers { scalars = step.apply(scalars) }
        var out = ""
        out.unicodeScalars.append(contentsOf: scalars)
        return out
    }

    /// The pieces before segmentation, code point by code point: whitespace splitting, then Metaspace (spaces become
    /// `▁`, a `▁` prepended per the scheme, a cut before every `▁`).
    public func preTokenized(_ text: String, atStart: Bool = true) -> [String] {
        let scalars = Array(text.unicodeScalars)
        var words: [[Unicode.Scalar]] = []
        if splitsOnWhitespace {
            var current: [Unicode.Scalar] = []
            for scalar in scalars {
                if scalar.properties.isWhitespace {
                    if !current.isEmpty { words.append(current) }
                    current = []
                } else {
                    current.append(scalar)
                }
            }
            if !current.isEmpty { words.append(current) }
        } else if !scalars.isEmpty {
            words = [scalars]
        }
        guard metaspace else { return words.map { String(String.UnicodeScalarView($0)) } }
        let mark: Unicode.Scalar = "\u{2581}"
        var pieces: [String] = []
        for (index, word) in words.enumerated() {
            var replaced = word.map { $0 == " " ? mark : $0 }
            let prepend = prependScheme == "always" || (prependScheme == "first" && index == 0 && atStart)
            if prepend && replaced.first != mark { replaced.insert(mark, at: 0) }
            var current: [Unicode.Scalar] = []
            for scalar in replaced {
                if scalar == mark && !current.isEmpty {
                    pieces.append(String(String.UnicodeScalarView(current)))
                    current = []
                }
                current.append(scalar)
            }
            if !current.isEmpty { pieces.append(String(String.UnicodeScalarView(current))) }
        }
        return pieces
    }

    /// Token ids without `</s>` or padding: special tokens split out of the raw text first (leftmost, longest), every
    /// other stretch normalised, pre-tokenised and segmented on its own.
    public func tokenIDs(_ text: String) -> [Int] {
        var ids: [Int] = []
        var pending: [UInt8] = []
        var atStart = true
        func flush() {
            guard !pending.isEmpty else { return }
            ids += preTokenized(normalized(String(decoding: pending, as: UTF8.self)), atStart: atStart).flatMap { segment($0) }
            pending.removeAll()
        }
        let bytes = Array(text.utf8)
        var i = 0
        scan: while i < bytes.count {
            for token in specialTokens where !token.text.isEmpty && bytes[i...].starts(with: token.text) {
                flush()
                ids.append(token.id)
                i += token.text.count
                atStart = false
                continue scan
            }
            if pending.isEmpty && i > 0 { atStart = false }
            pending.append(bytes[i])
            i += 1
        }
        flush()
        return ids
    }

    /// Viterbi over a Unigram lattice: the highest total score, ties to the candidate seen first (shorter pieces),
    /// unknown characters scoring the lowest piece minus 10 and consecutive unknowns fused into one.
    func segment(_ word: String) -> [Int] {
        // Positions are character (scalar) boundaries in the UTF-8 bytes.
        let bytes = Array(word.utf8)
        var boundaries: [Int] = []
        var offset = 0
        for scalar in word.unicodeScalars {
            boundaries.append(offset)
            offset += String(scalar).utf8.count
        }
        let n = bytes.count
        var bestScore = [Double](repeating: -.infinity, count: n + 1)
        var bestStart = [Int](repeating: -1, count: n + 1)
        var bestID = [Int](repeating: -1, count: n + 1)
        bestScore[0] = 0
        for (k, start) in boundaries.enumerated() {
            let characterEnd = k + 1 < boundaries.count ? boundaries[k + 1] : n
            var hasSingle = false
            for end in boundaries[(k + 1)...] + [n] where end - start <= maxPieceLength {
                guard let entry = pieces[Array(bytes[start..<end])] else { continue }
                let score = bestScore[start] + entry.score
                if bestStart[end] < 0 || score > bestScore[end] {
                    bestScore[end] = score
                    bestStart[end] = start
                    bestID[end] = entry.id
                }
                if end == characterEnd { hasSingle = true }
            }
            if !hasSingle {
                let score = bestScore[start] + unknownScore
                if bestStart[characterEnd] < 0 || score > bestScore[characterEnd] {
                    bestScore[characterEnd] = score
                    bestStart[characterEnd] = start
                    bestID[characterEnd] = unknownID
                }
            }
        }
        var ids: [Int] = []
        var end = n
        while end > 0 {
            let id = bestID[end]
            if !(id == unknownID && ids.last == unknownID) { ids.append(id) }
            end = bestStart[end]
        }
        return ids.reversed()
    }
}

extension UnigramTokenizer: PromptTokenizer {
    /// Ids and mask of exactly `maxLength`: truncated to leave room for `</s>`, then padded.
    public func encode(_ text: String, maxLength: Int) -> (ids: [Int64], mask: [Int64]) {
        var ids = tokenIDs(text).prefix(max(maxLength - 1, 0)).map { Int64($0) }
        ids.append(Int64(endOfSequenceID))
        let length = ids.count
        ids += [Int64](repeating: Int64(padID), count: max(maxLength - length, 0))
        return (ids, [Int64](repeating: 1, count: length) + [Int64](repeating: 0, count: max(maxLength - length, 0)))
    }
}

/// The sentencepiece normaliser blob: a 4-byte little-endian trie size, a Darts double-array trie over UTF-8 bytes, and
/// the NUL-terminated replacement strings its leaves point into.
struct PrecompiledCharsmap: Sendable {
    let units: [UInt32]
    let strings: [UInt8]

    init(_ blob: [UInt8], name: String) throws(ModelError) {
        guard blob.count >= 4 else { throw ModelError("\(name): the precompiled character map is truncated") }
        func word(_ i: Int) -> UInt32 {
            var value: UInt32 = 0
            for k in 0..<4 { value |= UInt32(blob[i + k]) << UInt32(8 * k) }
            return value
        }
        let size = Int(word(0))
        guard size % 4 == 0, size <= blob.count - 4 else { throw ModelError("\(name): the precompiled character map's trie size \(size) is invalid") }
        units = stride(from: 4, to: 4 + size, by: 4).map(word)
        strings = Array(blob[(4 + size)...])
    }

    /// Offsets of every key that is a prefix of `bytes`, shortest first (Darts' common-prefix search).
    func prefixMatches(_ bytes: ArraySlice<UInt8>) -> [Int] {
        guard !units.isEmpty else { return [] }
        var results: [Int] = []
        func offset(_ unit: UInt32) -> Int { Int((unit >> 10) << ((unit & (1 << 9)) >> 6)) }
        var position = offset(units[0])
        for byte in bytes {
            position ^= Int(byte)
            guard position >= 0 && position < units.count else { return results }
            let unit = units[position]
            guard unit & ((1 << 31) | 0xFF) == UInt32(byte) else { return results }
            position ^= offset(unit)
            guard position >= 0 && position < units.count else { return results }
            if (unit >> 8) & 1 == 1 { results.append(Int(units[position] & ((1 << 31) - 1))) }
        }
        return results
    }

    /// The replacement for a chunk whose start matches a key: the shortest match's string, replacing the whole chunk.
    func replacement(_ chunk: [UInt8]) -> [UInt8]? {
        guard let start = prefixMatches(chunk[...]).first, start < strings.count else { return nil }
        var end = start
        while end < strings.count && strings[end] != 0 { end += 1 }
        return Array(strings[start..<end])
    }

    func normalized(_ scalars: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var text = ""
        text.unicodeScalars.append(contentsOf: scalars)
        var out: [UInt8] = []
        for grapheme in text {
            let bytes = Array(String(grapheme).utf8)
            if bytes.count < 6, let r = replacement(bytes) {
                out += r
                continue
            }
            for scalar in grapheme.unicodeScalars {
                let piece = Array(String(scalar).utf8)
                out += replacement(piece) ?? piece
            }
        }
        return Array(String(decoding: out, as: UTF8.self).unicodeScalars)
    }
}

/// One normalisation step of `tokenizer.json`.
enum NormalizerStep: Sendable {
    case precompiled(PrecompiledCharsmap)
    case strip(left: Bool, right: Bool)
    case replace([Unicode.Scalar], [Unicode.Scalar])
    case replaceSpaceRuns(minimum: Int, [Unicode.Scalar])

    func apply(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] {
        switch self {
        case .precompiled(let map): return map.normalized(s)
        case .strip(let left, let right):
            var slice = s[...]
            if left { while let f = slice.first, f.properties.isWhitespace { slice = slice.dropFirst() } }
            if right { while let l = slice.last, l.properties.isWhitespace { slice = slice.dropLast() } }
            return Array(slice)
        case .replace(let pattern, let content):
            guard !pattern.isEmpty else { return s }
            var out: [Unicode.Scalar] = []
            var i = 0
            while i < s.count {
                if i + pattern.count <= s.count && Array(s[i..<(i + pattern.count)]) == pattern {
                    out += content
                    i += pattern.count
                } else {
                    out.append(s[i])
                    i += 1
                }
            }
            return out
        case .replaceSpaceRuns(let minimum, let content):
            var out: [Unicode.Scalar] = []
            var i = 0
            while i < s.count {
                var j = i
                while j < s.count && s[j] == " " { j += 1 }
                if j - i >= minimum {
                    out += content
                    i = j
                } else if j > i {
                    out += s[i..<j]
                    i = j
                } else {
                    out.append(s[i])
                    i += 1
                }
            }
            return out
        }
    }
}
