import Foundation
import Testing

@testable import Service

/// A seeded fuzz pass over everything that reads client input before a job exists: the FlashWorld request JSON (lenient
/// and strict), the video request, multipart forms and Range headers. Each input is accepted or refused with a 4xx
/// and a bounded message; nothing traps. The counts are in BENCHMARKS.md.
struct FuzzTests {
    /// SplitMix64: the same inputs on every run.
    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }
        mutating func pick<T>(_ options: [T]) -> T { options[below(options.count)] }
    }

    static let keys = ["text_prompt", "image_prompt", "resolution", "image_index", "seed", "cameras", "prompt", "negative_prompt", "image",
                       "frames", "width", "height", "steps", "guidance", "sampler", "teacache", "cfg_skip", "fps", "kind", "bogus"]

    static func value(_ r: inout Random, depth: Int = 0) -> String {
        switch r.below(depth > 2 ? 6 : 9) {
        case 0: return "null"
        case 1: return r.pick(["true", "false"])
        case 2: return r.pick(["0", "-1", "1", "3", "24", "480", "704", "4097", "1e300", "-1e300", "1.5", "9223372036854775807", "99999999999999999999"])
        case 3: return r.pick(["\"\"", "\"x\"", "\"unipc\"", "\"video\"", "\"data:image/png;base64,AAAA\"", "\"/etc/passwd\"", "\"\\u0000\"", "\"é😀\""])
        case 4: return "\"" + String(repeating: "a", count: r.below(3) == 0 ? 9000 : r.below(40)) + "\""
        case 5: return "[" + (0..<r.below(4)).map { _ in r.pick(["1", "0", "-5", "1e9", "2048", "\"a\""]) }.joined(separator: ",") + "]"
        case 6: return "[" + (0..<r.below(3)).map { _ in value(&r, depth: depth + 1) }.joined(separator: ",") + "]"
        case 7:
            let camera = #"{"quaternion": [\#(r.pick(["1, 0, 0, 0", "0, 0, 0, 0", "1e308, 1e308, 0, 0", "1"]))], "position": [\#(r.pick(["0, 0, 0", "1e400, 0, 0", "0"]))], "fx": \#(r.pick(["30", "1e-300", "-1", "0", "\"x\""])), "fy": 30, "cx": 32, "cy": 16}"#
            return "[" + Array(repeating: camera, count: r.below(3)).joined(separator: ",") + "]"
        default: return object(&r, depth: depth + 1)
        }
    }

    static func object(_ r: inout Random, depth: Int = 0) -> String {
        "{" + (0..<r.below(6)).map { _ in "\"\(r.pick(keys))\": \(value(&r, depth: depth))" }.joined(separator: ", ") + "}"
    }

    /// A body: an object, something else, or a valid one cut short or with a byte flipped.
    static func body(_ r: inout Random) -> [UInt8] {
        var bytes = Array((r.below(5) == 0 ? value(&r) : object(&r)).utf8)
        switch r.below(6) {
        case 0 where !bytes.isEmpty: bytes = Array(bytes.prefix(r.below(bytes.count)))
        case 1 where !bytes.isEmpty: bytes[r.below(bytes.count)] = UInt8(truncatingIfNeeded: r.next())
        case 2: bytes = (0..<r.below(64)).map { _ in UInt8(truncatingIfNeeded: r.next()) }
        default: break
        }
        return bytes
    }

    static func check(_ outcome: () throws(ServiceError) -> Void) -> Bool {
        do {
            try outcome()
            return true
        } catch {
            #expect((400..<500).contains(error.status) && !error.message.isEmpty, "\(error.status) \(error.message.prefix(200))")
            return false
        }
    }

    @Test func requestBodiesAreAcceptedOrRefusedNeverTrapped() {
        var r = Random(state: 2026_12_07)
        var counts = [String: (accepted: Int, refused: Int)]()
        let limits = ServiceLimits()
        for _ in 0..<4000 {
            let bytes = Self.body(&r)
            for (name, parse) in [
                ("flashworld", { () throws(ServiceError) in _ = try FlashWorldRequest.parse(bytes, limits: limits) }),
                ("flashworld strict", { () throws(ServiceError) in _ = try FlashWorldRequest.parse(bytes, limits: limits, strict: true) }),
                ("video", { () throws(ServiceError) in _ = try VideoJobParser.parse(bytes, defaults: .tiny, limits: limits) }),
            ] as [(String, () throws(ServiceError) -> Void)] {
                let ok = Self.check(parse)
                counts[name, default: (0, 0)].accepted += ok ? 1 : 0
                counts[name, default: (0, 0)].refused += ok ? 0 : 1
            }
        }
        for (name, c) in counts.sorted(by: { $0.key < $1.key }) { print("fuzz \(name): \(c.accepted) accepted, \(c.refused) refused") }
        #expect(counts.values.allSatisfy { $0.accepted > 0 && $0.refused > 0 }, "the generator reaches both outcomes")
    }

    @Test func multipartFormsAndRangesNeverTrap() {
        var r = Random(state: 7)
        var (parsed, refused) = (0, 0)
        for _ in 0..<3000 {
            let boundary = r.pick(["b", "----x", String(repeating: "-", count: 70), "", "a b", "\u{0}"])
            var body = Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"prompt_image_file\"\r\n\r\n".utf8)
            body += (0..<r.below(200)).map { _ in r.pick(Array("-\r\nab".utf8)) }
            if r.below(2) == 0 { body += Array("\r\n--\(boundary)--\r\n".utf8) }
            if r.below(4) == 0, !body.isEmpty { body = Array(body.prefix(r.below(body.count))) }
            do {
                _ = try MultipartForm(body: body, contentType: "multipart/form-data; boundary=\(boundary)")
                parsed += 1
            } catch {
                #expect(error.status == 400)
                refused += 1
            }
        }
        print("fuzz multipart: \(parsed) parsed, \(refused) refused")
        var served = 0
        for _ in 0..<3000 {
            let size = r.below(5000)
            let header = "bytes=" + r.pick(["", "-", "5-3", "0-", "-0", "-100", "99999999999999999999-", "1-99999999999999999999", "\(r.below(6000))-\(r.below(6000))", "a-b", "1-2,3-4", " 7 - 9 "])
            if case .some(.some(let range)) = HTTPResponses.byteRange(header, size: size) {
                #expect(range.lowerBound >= 0 && range.upperBound <= size && !range.isEmpty, "\(header) of \(size): \(range)")
                served += 1
            }
        }
        print("fuzz ranges: \(served) of 3000 served as ranges")
        #expect(parsed > 0 && refused > 0 && served > 0)
    }
}
