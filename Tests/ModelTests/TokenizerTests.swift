import Foundation
import Testing

@testable import Models

/// A small sentencepiece Unigram model converted by transformers exactly as `T5TokenizerFast` converts UMT5's
/// (`tools/models/make_tokenizer_fixtures.py`), with FlashWorld's calls (`"[Static] " + text`, padding and truncation
/// to 512) on tricky text: NFKC-changed characters, CJK, emoji, control whitespace, unknown characters, long prompts.
struct TokenizerCases: Decodable {
    struct Case: Decodable, Sendable, CustomTestStringConvertible {
        var name: String
        var text: String
        var length: Int
        var ids: [Int]
        var normalized: String
        var pre_tokens: [String]
        var variant_outputs: [String: Variant]?
        var testDescription: String { name }
        var variants: [String: [Int]] { (variant_outputs ?? [:]).mapValues(\.ids) }
    }
    struct Variant: Decodable, Sendable {
        var ids: [Int]
    }
    var prefix: String
    var max_length: Int
    var cases: [Case]

    static let shared: TokenizerCases = try! JSONDecoder().decode(
        TokenizerCases.self, from: Data(contentsOf: URL(fileURLWithPath: ModelFixtures.path("tokenizer-tiny/cases.json"))))
    static let tokenizer: UnigramTokenizer = try! UnigramTokenizer(
        json: [UInt8](Data(contentsOf: URL(fileURLWithPath: ModelFixtures.path("tokenizer-tiny/tokenizer.json")))), name: "tokenizer.json")
}

struct TokenizerTests {
    @Test(arguments: TokenizerCases.shared.cases)
    func idsMatchTheFastTokenizer(_ c: TokenizerCases.Case) {
        let tokenizer = TokenizerCases.tokenizer
        let text = TokenizerCases.shared.prefix + c.text
        // Compared as scalars: Swift string equality would accept a canonically equivalent but different string.
        #expect(Array(tokenizer.normalized(text).unicodeScalars) == Array(c.normalized.unicodeScalars), "normaliser")
        #expect(tokenizer.preTokenized(tokenizer.normalized(text)).map { Array($0.unicodeScalars) } == c.pre_tokens.map { Array($0.unicodeScalars) }, "pre-tokeniser")
        let (ids, mask) = tokenizer.encode(text, maxLength: TokenizerCases.shared.max_length)
        #expect(ids.count == 512 && mask.count == 512)
        #expect(Array(ids.prefix(c.length)).map(Int.init) == c.ids)
        #expect(ids.dropFirst(c.length).allSatisfy { $0 == 0 } && mask.reduce(0, +) == Int64(c.length))
    }

    @Test func malformedTokenizerFilesAreRefused() {
        for json in ["{}", "not json", "{\"model\": {\"type\": \"BPE\", \"vocab\": []}}"] {
            #expect(throws: ModelError.self) { try UnigramTokenizer(json: Array(json.utf8), name: "t.json") }
        }
    }
}

/// The same vocabulary and character map under the other layouts a real `tokenizer.json` may carry (transformers'
/// 4.x converter, with prepend "always" or "first", and the 2023-era one); the fixture lists the ids where they differ.
struct TokenizerLayoutTests {
    @Test(arguments: ["spm_converter", "spm_converter_first", "legacy_2023", "t5_2020"])
    func otherLayoutsMatchTheirReference(variant: String) throws {
        let base = try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: ModelFixtures.path("tokenizer-tiny/tokenizer.json")))) as! [String: Any]
        let manifest = try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: ModelFixtures.path("tokenizer-tiny/manifest.json")))) as! [String: Any]
        let layout = (manifest["variants"] as! [String: Any])[variant] as! [String: Any]
        let charsmap = (base["normalizer"] as! [String: Any])["precompiled_charsmap"] as! String
        func withCharsmap(_ value: Any) -> Any {
            if var dictionary = value as? [String: Any] {
                if dictionary["type"] as? String == "Precompiled" { dictionary["precompiled_charsmap"] = charsmap }
                return dictionary.mapValues(withCharsmap)
            }
            if let array = value as? [Any] { return array.map(withCharsmap) }
            return value
        }
        var file = base
        file["normalizer"] = withCharsmap(layout["normalizer"] as Any)
        file["pre_tokenizer"] = layout["pre_tokenizer"]
        let tokenizer = try UnigramTokenizer(json: [UInt8](try JSONSerialization.data(withJSONObject: file)), name: variant)
        for c in TokenizerCases.shared.cases {
            let expected = c.variants[variant] ?? c.ids
            let ids = tokenizer.encode(TokenizerCases.shared.prefix + c.text, maxLength: 512).ids
            #expect(Array(ids.prefix(expected.count)).map(Int.init) == expected, "\(variant): \(c.name)")
        }
    }
}
