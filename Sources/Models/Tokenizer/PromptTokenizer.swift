/// Turns a prompt into token ids and an attention mask of exactly `maxLength` (padding with id 0, `</s>` = 1 last).
public protocol PromptTokenizer: Sendable {
    func encode(_ text: String, maxLength: Int) -> (ids: [Int64], mask: [Int64])
}

/// The built-in `tiny` model's tokenizer: one token per UTF-8 byte (ids 3…258 folded into the vocabulary), then `</s>`.
/// It has no relation to UMT5's vocabulary; real model folders use their `tokenizer.json`.
public struct ByteTokenizer: PromptTokenizer {
    public let vocabularySize: Int

    public init(vocabularySize: Int) { self.vocabularySize = vocabularySize }

    public func encode(_ text: String, maxLength: Int) -> (ids: [Int64], mask: [Int64]) {
        var ids = text.utf8.prefix(maxLength - 1).map { Int64(3 + Int($0) % max(vocabularySize - 3, 1)) }
        ids.append(1)
        let length = ids.count
        ids += [Int64](repeating: 0, count: maxLength - length)
        return (ids, [Int64](repeating: 1, count: length) + [Int64](repeating: 0, count: maxLength - length))
    }
}
